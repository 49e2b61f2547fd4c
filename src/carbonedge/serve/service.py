"""The inference path, without HTTP: image -> scheduler -> fleet -> top-5, energy, carbon, ledger.

Per request (paper Fig. 1's flow): the Carbon-Aware Scheduler (III.C-D) picks a node from the
fleet's live telemetry (``node_states(model_key)``), the Model Deployer's node runs the model
(III.F), and the Carbon Monitor's figures (III.B) come from the latest closed meter window:
``energy = rate(node) x cpu_s`` kWh (:mod:`carbonedge.serve.rates`) and Eq. 2,
``gCO2 = energy x I x PUE``. A node that dies mid-request (``NodeDownError``) is left out and
the request is placed once more on another node.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carbonedge.carbon import ComponentEnergy, IntensityReading, carbon_g, task_row
from carbonedge.errors import CarbonEdgeError
from carbonedge.fleet import FleetBackend, FleetError, NodeDownError, NodeState, TaskResult
from carbonedge.scheduling import Scheduler, Task
from carbonedge.serve.config import ServeConfig
from carbonedge.serve.decode import decode_body
from carbonedge.serve.errors import BadGateway, GatewayTimeout, NoEligibleNode
from carbonedge.serve.ledger_writer import LedgerWriter
from carbonedge.serve.metrics import ServeMetrics
from carbonedge.serve.rates import EnergyWindows

__all__ = ["METHOD_PROFILE", "METHOD_WINDOW", "InferenceOutcome", "InferenceService", "top_k"]

METHOD_WINDOW = "window-cputime"
METHOD_PROFILE = "power-profile"
TOP_K = 5


def top_k(logits: NDArray[np.float32], k: int = TOP_K) -> tuple[tuple[int, float], ...]:
    """Softmax of one row of logits; the ``k`` most probable (class index, probability).

    Ranked on the logits themselves (softmax keeps the order), most probable first.
    """
    row = np.asarray(logits).reshape(-1)
    z = np.exp(row - row.max())
    total = float(z.sum())
    k = min(k, row.size)
    idx = np.argpartition(row, row.size - k)[row.size - k :]
    idx = idx[np.argsort(-row[idx], kind="stable")]
    return tuple((int(i), float(z[i]) / total) for i in idx)


@dataclass(frozen=True)
class InferenceOutcome:
    """One answered request. Times in ms unless named otherwise; energy in kWh; carbon in g.

    ``latency_ms``: server-side, from the request's arrival to the answer being ready.
    ``exec_ms``: the node's wall time of the inference (quota throttling included);
    ``dispatch_ms``: fleet submit-to-result minus ``exec_ms`` (pipes, queueing).
    ``schedule_us``: the scheduler's decision(s); ``top5_us``: softmax and top-5;
    ``account_us``: energy, carbon, ledger row (queued) and metrics.
    """

    request_id: str
    node: str
    attempts: int
    failed_nodes: tuple[str, ...]
    top5: tuple[tuple[int, float], ...]
    latency_ms: float
    exec_ms: float
    dispatch_ms: float
    decode_ms: float
    schedule_us: float
    top5_us: float
    account_us: float
    cpu_s: float
    energy: ComponentEnergy
    gco2: float
    method: str
    energy_note: str
    energy_method: Mapping[str, str]
    intensity: IntensityReading
    pue: float

    def to_dict(self, model: str, runtime: str, weights_note: str) -> dict[str, Any]:
        """The JSON response body."""
        return {
            "request_id": self.request_id,
            "model": model,
            "runtime": runtime,
            "node": self.node,
            "attempts": self.attempts,
            "failed_nodes": list(self.failed_nodes),
            "top5": [{"class": c, "probability": p} for c, p in self.top5],
            "latency_ms": self.latency_ms,
            "exec_ms": self.exec_ms,
            "cpu_s": self.cpu_s,
            "energy_kwh": self.energy.energy_kwh,
            "energy_kwh_by_component": {
                "cpu": self.energy.cpu_energy_kwh,
                "gpu": self.energy.gpu_energy_kwh,
                "ram": self.energy.ram_energy_kwh,
            },
            "gco2": self.gco2,
            "estimate": True,
            "energy_method": self.method,
            "energy_note": self.energy_note,
            "meter_method": dict(self.energy_method),
            "intensity_g_per_kwh": self.intensity.g_per_kwh,
            "intensity_source": self.intensity.source
            + ("+fallback" if self.intensity.fallback else ""),
            "pue": self.pue,
            "timings": {
                "decode_ms": self.decode_ms,
                "schedule_us": self.schedule_us,
                "dispatch_ms": self.dispatch_ms,
                "top5_us": self.top5_us,
                "account_us": self.account_us,
            },
            "weights_note": weights_note,
        }


class InferenceService:
    """Serves inference requests on a fleet where ``model_key`` is deployed on every node.

    The fleet, meter windows, ledger writer and metrics are passed in and owned by the caller.
    ``intensities``: each node's grid intensity (gCO2/kWh) with its source; ``pues`` its PUE.
    """

    def __init__(
        self,
        *,
        config: ServeConfig,
        fleet: FleetBackend,
        model_key: str,
        scheduler: Scheduler,
        windows: EnergyWindows,
        ledger: LedgerWriter,
        metrics: ServeMetrics,
        intensities: Mapping[str, IntensityReading],
        run_id: str,
        task_timeout_s: float = 120.0,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.model_key = model_key
        self.scheduler = scheduler
        self.windows = windows
        self.ledger = ledger
        self.metrics = metrics
        self.intensities = dict(intensities)
        self.pues = {n.name: n.pue for n in fleet.spec.nodes}
        self.run_id = run_id
        self.task_timeout_s = task_timeout_s
        # Telemetry fills intensity from the fleet file's static value; zone-only nodes get
        # theirs (CodeCarbon's country mix) here, so the scheduler sees every node's real value.
        self._override = {
            n.name: self.intensities[n.name].g_per_kwh
            for n in fleet.spec.nodes
            if n.intensity_g_per_kwh is None
        }

    def states(self) -> list[NodeState]:
        """Live telemetry of the nodes that are up, with each node's intensity filled in."""
        states = self.fleet.node_states(self.model_key)
        if not self._override:
            return states
        return [
            replace(s, intensity_g_per_kwh=self._override[s.name])
            if s.name in self._override
            else s
            for s in states
        ]

    def infer_bytes(
        self, body: bytes, content_type: str, request_id: str, received_s: float
    ) -> InferenceOutcome:
        """Decode ``body`` (see :func:`decode_body`) and :meth:`infer` it.

        ``received_s``: ``time.perf_counter()`` when the request arrived.
        """
        t0 = time.perf_counter()
        batch = decode_body(body, content_type)  # (1, 3, 224, 224)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        return self.infer(batch, request_id, received_s, decode_ms=decode_ms)

    def _place(self, task: Task, failed: tuple[str, ...]) -> tuple[str, float]:
        states = self.states()
        if failed:
            states = [s for s in states if s.name not in failed]
        t0 = time.perf_counter_ns()
        decision = self.scheduler.select(task, states)
        schedule_us = (time.perf_counter_ns() - t0) / 1000.0
        if decision.node is None:
            if not states:
                down = ", ".join(failed) if failed else "all nodes"
                raise NoEligibleNode(f"no node is up to run the request ({down} down)")
            rows = decision.explain().to_dict()["nodes"]
            reasons = [
                {"node": r["name"], "reasons": r["reasons"], "note": r["note"]} for r in rows
            ]
            text = "; ".join(
                f"{r['node']}: {', '.join(r['reasons']) or r['note'] or 'not chosen'}"  # type: ignore[arg-type]
                for r in reasons
            )
            raise NoEligibleNode(f"no eligible node ({text})", reasons)
        return decision.node, schedule_us

    def _submit(self, node: str, task_id: str, batch: NDArray[np.float32]) -> Future[TaskResult]:
        """``fleet.submit``; a send that fails because the node is going down counts as
        NodeDownError (re-dispatched) rather than as a server error."""
        try:
            return self.fleet.submit(node, self.model_key, batch, task_id=task_id)
        except CarbonEdgeError:
            raise
        except Exception as exc:
            # LocalFleet's pipe can be closed by its reader thread (node died) while this thread
            # writes to it; that surfaces as OSError or TypeError from multiprocessing.
            if any(s.name == node for s in self.fleet.node_states()):
                raise
            failed: Future[TaskResult] = Future()
            reason = f"send failed: {type(exc).__name__}: {exc}"
            failed.set_exception(NodeDownError(node, task_id, reason))
            return failed

    def _run(
        self, task: Task, batch: NDArray[np.float32]
    ) -> tuple[TaskResult, tuple[str, ...], float]:
        failed: tuple[str, ...] = ()
        schedule_us = 0.0
        while True:
            node, us = self._place(task, failed)
            schedule_us += us
            future = self._submit(node, str(task.task_id), batch)
            try:
                return future.result(timeout=self.task_timeout_s), failed, schedule_us
            except NodeDownError as exc:
                failed = (*failed, node)
                if len(failed) > 1:  # re-dispatch once only
                    raise NoEligibleNode(
                        f"nodes {', '.join(failed)} went down while running the request "
                        f"(last: {exc.reason})"
                    ) from exc
            except FutureTimeout as exc:
                raise GatewayTimeout(
                    f"node {node!r} did not answer within {self.task_timeout_s:g} s"
                ) from exc
            except FleetError as exc:
                raise BadGateway(f"node {node!r} failed the request: {exc}") from exc

    def infer(
        self,
        batch: NDArray[np.float32],
        request_id: str,
        received_s: float,
        *,
        decode_ms: float = 0.0,
    ) -> InferenceOutcome:
        """Place and run one preprocessed image (1, 3, 224, 224); account for it."""
        result, failed, schedule_us = self._run(Task(request_id), batch)
        t0 = time.perf_counter()
        top5 = top_k(result.output)
        t1 = time.perf_counter()
        node = result.node
        snapshot = self.windows.snapshot
        rate = snapshot.rates[node]
        cpu_s = result.cpu_s
        energy = ComponentEnergy(rate[0] * cpu_s, rate[1] * cpu_s, rate[2] * cpu_s)
        intensity = self.intensities[node]
        pue = self.pues[node]
        gco2 = carbon_g(energy.energy_kwh, intensity.g_per_kwh, pue)
        method = METHOD_WINDOW if snapshot.source == "window" else METHOD_PROFILE
        self.windows.record(node, cpu_s)
        now = time.perf_counter()
        latency_ms = (now - received_s) * 1000.0
        self.ledger.append(
            task_row(
                task_id=request_id,
                run_id=self.run_id,
                node=node,
                model=self.config.model,
                runtime=self.config.runtime,
                started_at=datetime.fromtimestamp(result.started_at, UTC),
                finished_at=datetime.fromtimestamp(result.finished_at, UTC),
                latency_ms=latency_ms,
                cpu_s=cpu_s,
                energy=energy,
                intensity=intensity,
                pue=pue,
                energy_method=snapshot.method_label,
                attribution_method=method,
            )
        )
        attempts = len(failed) + 1
        self.metrics.observe(
            node, latency_ms, result.exec_ms, cpu_s, energy.energy_kwh, gco2, method, attempts
        )
        account_us = (time.perf_counter() - t1) * 1e6
        return InferenceOutcome(
            request_id=request_id,
            node=node,
            attempts=attempts,
            failed_nodes=failed,
            top5=top5,
            latency_ms=latency_ms,
            exec_ms=result.exec_ms,
            dispatch_ms=max(0.0, result.latency_ms - result.exec_ms),
            decode_ms=decode_ms,
            schedule_us=schedule_us,
            top5_us=(t1 - t0) * 1e6,
            account_us=account_us,
            cpu_s=cpu_s,
            energy=energy,
            gco2=gco2 if math.isfinite(gco2) else 0.0,
            method=method,
            energy_note=snapshot.describe(node, time.monotonic()),
            energy_method=snapshot.energy_method,
            intensity=intensity,
            pue=pue,
        )
