"""An in-process fleet for tests and demos: no processes, no torch, real telemetry.

:class:`InProcessFleet` implements :class:`~carbonedge.fleet.base.FleetBackend` with the real
:class:`~carbonedge.fleet.telemetry.NodeTelemetry` (so the scheduler sees exactly what a real
fleet would report), and "runs" each task by answering fixed logits after ``exec_s`` seconds
of a thread's sleep (0: at once, in the caller's thread). Faults are scripted: nodes in
``down`` refuse, nodes in ``die_once`` fail their next task with
:class:`~carbonedge.fleet.base.NodeDownError` and go down, nodes in ``hold`` keep their tasks
until :meth:`release` is called.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from carbonedge.fleet.base import NodeDownError, NodeHealth, TaskResult
from carbonedge.fleet.spec import FleetSpec
from carbonedge.fleet.telemetry import ExecTimeSource, NodeState, NodeTelemetry

__all__ = ["InProcessFleet"]


class InProcessFleet:
    """See the module docstring. ``cpu_s``: the CPU seconds every task reports; ``exec_ms``:
    the execution time it reports at least (ms; the sleep's, where longer).
    ``exec_time_source``: what the telemetry's ``avg_time_s`` samples: ``"wall"`` (the default:
    the reported ``exec_ms``, which tests set to script each node's execution time) or
    ``"cpu_share"`` (``cpu_s / quota``, what :class:`~carbonedge.fleet.local.LocalFleet`'s
    simulated nodes report)."""

    def __init__(
        self,
        spec: FleetSpec,
        *,
        exec_s: float = 0.0,
        cpu_s: float = 0.01,
        exec_ms: float = 10.0,
        classes: int = 1000,
        load_window_s: float = 0.0,
        exec_time_source: ExecTimeSource = "wall",
        max_in_flight: int = 1,
    ) -> None:
        self._spec = spec
        self.exec_s = exec_s
        self.cpu_s = cpu_s
        self.exec_ms = exec_ms
        self.down: set[str] = set()
        self.die_once: set[str] = set()
        self.hold: set[str] = set()
        self.submitted: list[str] = []
        self.batch_sizes: list[int] = []
        self._held: list[tuple[str, str, str, Future[TaskResult], float, int]] = []
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._logits = np.linspace(0.0, 1.0, classes, dtype=np.float32)[None]
        self.telemetry = {
            n.name: NodeTelemetry(
                n,
                window_s=load_window_s,
                exec_time_source=exec_time_source,
                max_in_flight=max_in_flight,
            )
            for n in spec.nodes
        }

    @property
    def spec(self) -> FleetSpec:
        return self._spec

    def start(self) -> None:
        """Nothing to start (the nodes live in this process)."""

    def deploy(self, model: Any, nodes: Sequence[str], runtime: str = "torch", **_: Any) -> str:
        return f"{getattr(model, 'name', 'fake')}/{runtime}"

    def submit(
        self, node: str, model_key: str, batch: Any, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        future: Future[TaskResult] = Future()
        task_id = task_id or f"t{next(self._seq)}"
        with self._lock:
            self.submitted.append(node)
            if node in self.die_once or node in self.down:
                self.die_once.discard(node)
                self.down.add(node)
                future.set_exception(NodeDownError(node, task_id, "killed by the test"))
                return future
            self.telemetry[node].submitted()
            n = int(getattr(batch, "shape", (1,))[0])
            self.batch_sizes.append(n)
            if node in self.hold:
                self._held.append((node, model_key, task_id, future, time.time(), n))
                return future
        args = (node, model_key, task_id, future, time.time(), n)
        if self.exec_s > 0:
            threading.Timer(self.exec_s, self._finish, args).start()
        else:
            self._finish(*args)
        return future

    def release(self) -> None:
        """Finish every held task (and stop holding)."""
        with self._lock:
            held, self._held = self._held, []
            self.hold.clear()
        for item in held:
            self._finish(*item)

    def _finish(
        self,
        node: str,
        model_key: str,
        task_id: str,
        future: Future[TaskResult],
        t0: float,
        n: int = 1,
    ) -> None:
        now = time.time()
        exec_ms = max((now - t0) * 1000.0, self.exec_ms)
        latency_ms = exec_ms + 1.0
        with self._lock:
            self.telemetry[node].finished(
                time.monotonic(), self.cpu_s, exec_ms, latency_ms, model_key
            )
        future.set_result(
            TaskResult(
                task_id=task_id,
                node=node,
                output=np.repeat(self._logits, n, axis=0),
                submitted_at=t0,
                started_at=t0,
                finished_at=now,
                latency_ms=latency_ms,
                exec_ms=exec_ms,
                cpu_s=self.cpu_s,
                model_key=model_key,
            )
        )

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        now = time.monotonic()
        with self._lock:
            return [
                t.state(now, model_key)
                for name, t in self.telemetry.items()
                if name not in self.down
            ]

    def set_intensity(self, node: str, intensity_g_per_kwh: float) -> None:
        self.telemetry[node].intensity_g_per_kwh = intensity_g_per_kwh

    def health(self) -> list[NodeHealth]:
        return [
            NodeHealth(
                n.name, n.name not in self.down, "none", None, 0.0, n.memory_mb, False, 0, ()
            )
            for n in self._spec.nodes
        ]

    def stop(self) -> None:
        self.release()

    def __enter__(self) -> InProcessFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
