"""Ray fleet backend: one actor per edge node of a Ray cluster (paper III.A (D), III.F).

The same interface as :class:`~carbonedge.fleet.local.LocalFleet` (``FleetBackend``) and the same
bookkeeping (:class:`~carbonedge.fleet.core.FleetCore`), for real multi-host fleets. Each edge
node is an :class:`~carbonedge.fleet.ray_actor.EdgeNodeActor` pinned to its Ray node
(``carbonedge.fleet.ray_placement``), reserving ``num_cpus = cpu_quota`` and
``memory = memory_mb``, and measuring its own energy with its own meter. A pipeline's activations
go actor to actor through Ray's object store (``ObjectRef`` arguments), never through the driver.

Faults: when an actor dies (``ray.exceptions.RayActorError``, e.g. after ``ray.kill`` or a node
loss) its tasks fail with :class:`~carbonedge.fleet.base.NodeDownError`, the node is marked down
(left out of ``node_states()``) so the dispatcher re-dispatches them elsewhere, and with
``restart=True`` a new actor is started on the same pin and its models redeployed. A task running
longer than ``task_timeout_s`` gets its actor killed (hang detection).

Ray's own files and settings when this fleet starts Ray: see :mod:`carbonedge.fleet.ray_setup`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from carbonedge.fleet.base import (
    FleetError,
    ModelPayload,
    NodeDownError,
    NodeHealth,
    Pipeline,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.core import DeployReply, FleetCore, NodeHandle
from carbonedge.fleet.ray_actor import (
    METER_KINDS,
    EdgeNodeActor,
    MeterSpec,
    StageMeta,
    is_meter_spec,
)
from carbonedge.fleet.ray_placement import RESOURCE_SLIVER, Pin, Placement, resolve_placement
from carbonedge.fleet.ray_setup import (
    RaySession,
    import_ray,
    join_or_start_ray,
    leave_ray,
    ray_available,
)
from carbonedge.fleet.spec import FleetSpec, NodeSpec
from carbonedge.fleet.telemetry import (
    MAX_IN_FLIGHT,
    ExecTimeSource,
    NodeTelemetry,
    check_max_in_flight,
)

if TYPE_CHECKING:
    from carbonedge.accounting import EnergyReading
    from carbonedge.fleet.base import Array
    from carbonedge.fleet.pipeline import PipelineResult

RayEnforcement = Literal["dilation", "none"]

__all__ = ["RayEnforcement", "RayFleet", "RayTaskResult", "ray_available"]


@dataclass(frozen=True)
class RayTaskResult(TaskResult):
    """A :class:`TaskResult` that also says which Ray node ran it (``ray_node_id``, hex)."""

    ray_node_id: str = ""


def _empty_output() -> Array:
    import numpy as np

    return np.empty((0,), dtype=np.float32)


@dataclass(kw_only=True)
class _RayNode(NodeHandle):
    """Driver-side handle of one edge node's actor: its pin, meter kind and actor handle."""

    pin: Pin
    meter: MeterSpec
    actor: Any = None
    ray_node_id: str = ""


class RayFleet(FleetCore[_RayNode]):
    """Edge nodes as pinned Ray actors; implements :class:`~carbonedge.fleet.base.FleetBackend`.

    ``address``: ``None`` starts a local Ray (advertising ``edge:<node>`` for every node),
    ``"auto"`` joins the cluster on this host, ``"ray://host:10001"`` uses Ray Client, any other
    value is passed to ``ray.init``. If Ray is already initialised in this process, that
    connection is used and left open on stop. ``placement``: see ``ray_placement``.
    ``meter``: ``"profile"``, ``"codecarbon"``, ``"auto"`` (the best power sensor of each
    actor's own host) or ``"auto:<root>"`` (sensors under a root directory, e.g. a fixture), or
    a mapping node -> one of these.
    ``enforcement``: ``"dilation"`` (nodes with a quota below one core sleep
    ``(1/q - 1) x cpu_s`` after each task, for single-host simulations) or ``"none"`` (real
    devices: the device is the quota; Ray's ``num_cpus`` is a reservation, not a limit).
    ``load_window_s``: the telemetry's load signal (0: occupancy, see ``fleet.telemetry``).
    ``max_in_flight``: tasks a node may hold at once (see ``fleet.telemetry``; an actor runs
    them one after another).
    """

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        address: str | None = None,
        placement: Placement = "resource",
        meter: MeterSpec | Mapping[str, MeterSpec] = "profile",
        enforcement: RayEnforcement = "dilation",
        restart: bool = False,
        task_timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
        object_store_mb: int = 256,
        max_concurrency: int = MAX_IN_FLIGHT + 2,
        load_window_s: float = 0.0,
        max_in_flight: int = 1,
    ) -> None:
        if not load_window_s >= 0:
            raise FleetError(f"load_window_s must be >= 0 (0 = occupancy), got {load_window_s}")
        self._load_window_s = load_window_s
        self._max_in_flight = check_max_in_flight(max_in_flight)
        if max_concurrency <= max_in_flight:  # a task waiting outside the actor is not queued_ms
            raise FleetError(
                f"max_concurrency ({max_concurrency}) must exceed max_in_flight "
                f"({max_in_flight}): the actor's threads hold its tasks and its control calls"
            )
        super().__init__(
            spec,
            restart=restart,
            task_timeout_s=task_timeout_s,
            start_timeout_s=start_timeout_s,
            watch_s=0.25,
        )
        self._address = address
        self._placement = placement
        self._meters = self._meter_kinds(meter)
        if enforcement not in ("dilation", "none"):
            raise FleetError(f"enforcement must be 'dilation' or 'none', got {enforcement!r}")
        self._enforcement: RayEnforcement = enforcement
        self._object_store_mb = object_store_mb
        self._max_concurrency = max_concurrency
        # Ray runs ObjectRef-future callbacks on its own I/O thread, where calling Ray (kill,
        # remote, get) can deadlock; callbacks only enqueue, and this thread delivers results.
        self._events: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._deliverer: threading.Thread | None = None
        self._session = RaySession()
        self._remote_cls: Any = None
        self._pins: dict[str, Pin] = {}
        self.final_readings: dict[str, EnergyReading] = {}

    @property
    def exec_time_source(self) -> ExecTimeSource:
        """What the telemetry's ``avg_time_s`` samples: ``"cpu_share"`` (CPU time at the
        quota) for dilated nodes, which simulate quotas on a shared host, ``"wall"`` for
        ``enforcement="none"`` (real devices; see carbonedge.fleet.telemetry)."""
        return "cpu_share" if self._enforcement == "dilation" else "wall"

    def _meter_kinds(self, meter: MeterSpec | Mapping[str, MeterSpec]) -> dict[str, MeterSpec]:
        kinds = {n: meter for n in self._spec.names} if isinstance(meter, str) else dict(meter)
        for name, kind in kinds.items():
            self._spec.node(name)  # ConfigError naming the known nodes
            if not is_meter_spec(kind):
                raise FleetError(
                    f"meter[{name!r}] must be one of {METER_KINDS} or 'auto:<root>', got {kind!r}"
                )
        return {n: kinds.get(n, "profile") for n in self._spec.names}

    # -- transport: actors and object refs -------------------------------------------------------

    def _prepare(self) -> None:
        ray = import_ray()
        self._deliverer = threading.Thread(
            target=self._deliver, name="ray-fleet-results", daemon=True
        )
        self._deliverer.start()
        self._session = join_or_start_ray(ray, self._address, self._spec, self._object_store_mb)
        self._remote_cls = ray.remote(EdgeNodeActor)
        self._pins = resolve_placement(self._spec, self._placement, ray.nodes())

    def _new_node(self, spec: NodeSpec) -> _RayNode:
        return _RayNode(
            spec=spec,
            telemetry=NodeTelemetry(
                spec,
                window_s=self._load_window_s,
                exec_time_source=self.exec_time_source,
                max_in_flight=self._max_in_flight,
            ),
            enforcement=self._enforcement,
            pin=self._pins[spec.name],
            meter=self._meters[spec.name],
        )

    def _launch(self, node: _RayNode, generation: int) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        spec, pin = node.spec, node.pin
        options: dict[str, Any] = {
            "num_cpus": spec.cpu_quota,
            "memory": spec.memory_mb * 2**20,
            "max_concurrency": self._max_concurrency,
        }
        if pin.kind == "resource":
            options["resources"] = {pin.value: RESOURCE_SLIVER}
        else:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(pin.value, soft=False)
        actor = self._remote_cls.options(**options).remote(
            spec.name,
            spec.cpu_quota,
            self._enforcement == "dilation",
            node.meter,
            spec.power.idle_w,
            spec.power.max_w,
        )
        with self._lock:
            node.actor = actor

    def _wait_ready(self, node: _RayNode) -> None:
        try:
            info = import_ray().get(node.actor.info.remote(), timeout=self._start_timeout_s)
        except Exception as exc:
            raise FleetError(f"node {node.spec.name!r}: actor did not start: {exc}") from None
        with self._lock:
            node.pid, node.ray_node_id = info["pid"], info["ray_node_id"]

    def _send_deploy(
        self,
        node: _RayNode,
        key: str,
        payload: ModelPayload,
        runtime: RuntimeKind,
        budget_bytes: int,
    ) -> Future[DeployReply]:
        return cast(
            "Future[DeployReply]",
            node.actor.deploy.remote(key, payload, runtime, budget_bytes).future(),
        )

    def _send_probe(self, node: _RayNode, duration_s: float) -> Future[tuple[float, float]]:
        return cast("Future[tuple[float, float]]", node.actor.probe.remote(duration_s).future())

    def _release(self, node: _RayNode, grace_s: float) -> None:
        """Kill the actor (no graceful exit: its meter is read before, on stop)."""
        with self._lock:
            actor, node.actor = node.actor, None
        if actor is not None:
            with contextlib.suppress(Exception):
                import_ray().kill(actor, no_restart=True)

    def _stop_begin(self) -> None:
        if any(n.up for n in self._nodes.values()):
            with contextlib.suppress(Exception):
                self.final_readings.update(self.energy_readings(timeout_s=30.0))

    def _stop_end(self) -> None:
        deliverer, self._deliverer = self._deliverer, None
        if deliverer is not None and deliverer is not threading.current_thread():
            self._events.put(None)
            deliverer.join(timeout=5.0)
        ray = None
        with contextlib.suppress(FleetError):
            ray = import_ray()
        session, self._session = self._session, RaySession()
        leave_ray(ray, session)

    # -- execution -------------------------------------------------------------------------------

    def submit(
        self, node: str, model_key: str, batch: Array | Any, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Run ``model_key`` on ``batch`` (an array or an ObjectRef) on ``node``'s actor."""
        n = self._node(node)
        p = self._register(n, task_id or uuid.uuid4().hex[:12], model_key)
        if p.seq >= 0:
            generation, seq = n.generation, p.seq
            ref = n.actor.run.remote(model_key, batch)
            ref.future().add_done_callback(
                lambda rf: self._events.put((n, generation, seq, rf, True))
            )
        return p.future

    def _deliver(self) -> None:
        while (item := self._events.get()) is not None:
            try:
                self._on_done(*item[:4], with_output=item[4])
            except Exception as exc:  # never let one bad result stop delivery
                node = item[0]
                self._fail_pending(node, item[2], FleetError(f"node {node.spec.name!r}: {exc}"))

    def _on_done(
        self, n: _RayNode, generation: int, seq: int, rf: Future[Any], *, with_output: bool
    ) -> None:
        from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

        exc = rf.exception()
        if isinstance(exc, RayActorError | WorkerCrashedError | ObjectLostError):
            dead = getattr(exc, "actor_id", None)
            mine = n.actor is not None and dead in (None, n.actor._actor_id.hex())
            if mine or not isinstance(exc, RayActorError):
                self._node_failed(n, generation, type(exc).__name__)
                self._fail_pending(n, seq, NodeDownError(n.spec.name, "", type(exc).__name__))
            else:  # a pipeline stage whose upstream stage's actor died: this node is fine
                self._fail_pending(n, seq, FleetError(f"upstream actor {dead} died"))
            return
        if exc is not None:
            cause = getattr(exc, "cause", None) or exc
            self._fail_pending(n, seq, FleetError(f"node {n.spec.name!r}: {cause!r}"))
            return
        # An intermediate pipeline stage's activation stays on the object store: empty output.
        output, meta = rf.result() if with_output else (_empty_output(), rf.result())
        meta = cast(StageMeta, meta)
        p = self._finish(n, seq, meta.cpu_s, meta.exec_ms, meta.queued_ms)
        if p is None:  # already failed over: never record a task twice
            return
        p.future.set_result(
            RayTaskResult(
                task_id=p.task_id,
                node=n.spec.name,
                output=output,
                submitted_at=p.submitted_at,
                started_at=meta.started_at,
                finished_at=meta.finished_at,
                latency_ms=p.latency_ms,
                exec_ms=meta.exec_ms,
                cpu_s=meta.cpu_s,
                model_key=p.model_key,
                ray_node_id=meta.ray_node_id,
            )
        )

    def submit_pipeline(
        self, pipeline: Pipeline, batch: Array, *, task_id: str | None = None
    ) -> Future[PipelineResult]:
        """Run ``batch`` through the stages; activations pass actor to actor as ObjectRefs.

        Every stage is submitted at once: stage ``i + 1`` receives stage ``i``'s output
        ObjectRef and Ray starts it when that object exists on the object store. Only the
        stages' small timing records and the last output come back to the driver.
        """
        task_id = task_id or uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        stage_futures: list[Future[TaskResult]] = []
        x: Any = batch
        last = len(pipeline.stages) - 1
        for i, (name, key) in enumerate(pipeline.stages):
            n = self._node(name)
            p = self._register(n, f"{task_id}/{i}", key)
            stage_futures.append(p.future)
            if p.seq < 0:
                break
            event = (n, n.generation, p.seq)
            if i == last:
                ref = n.actor.run.remote(key, x)
                ref.future().add_done_callback(lambda rf, e=event: self._events.put((*e, rf, True)))
            else:
                x, meta_ref = n.actor.run.options(num_returns=2).remote(key, x)
                meta_ref.future().add_done_callback(
                    lambda rf, e=event: self._events.put((*e, rf, False))
                )
        return _gather_stages(task_id, stage_futures, len(pipeline.stages), t0)

    # -- telemetry and energy --------------------------------------------------------------------

    def energy_readings(self, timeout_s: float = 60.0) -> dict[str, EnergyReading]:
        """Each up node's energy since its previous reading (kWh, with its method), by node."""
        ray = import_ray()
        refs = {n.spec.name: n.actor.read_energy.remote() for n in self._up_nodes()}
        return {name: ray.get(ref, timeout=timeout_s) for name, ref in refs.items()}

    def placement(self) -> dict[str, str]:
        """The Ray node id (hex) hosting each node's actor, as reported by the actor."""
        return {name: n.ray_node_id for name, n in self._nodes.items()}

    def actor(self, node: str) -> Any:
        """The Ray actor handle of ``node`` (for fault-injection tests and advanced use)."""
        return self._node(node).actor

    def health(self) -> list[NodeHealth]:
        """Per-node health; asks each up actor for its RSS (a control call, not the hot path)."""
        ray = import_ray()
        infos: dict[str, Any] = {}
        for n in self._up_nodes():
            with contextlib.suppress(Exception):
                infos[n.spec.name] = ray.get(n.actor.info.remote(), timeout=10.0)
        return [
            self._health(
                n,
                float(infos.get(name, {}).get("peak_rss_mb", 0.0)),
                n.detail or f"ray node {n.ray_node_id[:12]} ({n.pin.kind} pin)",
            )
            for name, n in self._nodes.items()
        ]


def _gather_stages(
    task_id: str, stage_futures: list[Future[TaskResult]], n_stages: int, t0: float
) -> Future[PipelineResult]:
    """One future for a pipelined task: its PipelineResult once every stage is done, or the
    first stage's NodeDownError (else its error) if any failed. ``t0``: perf_counter s."""
    from carbonedge.fleet.pipeline import PipelineResult

    done: Future[PipelineResult] = Future()
    remaining = [len(stage_futures)]
    lock = threading.Lock()

    def on_stage(_: Future[TaskResult]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] or done.done():
                return
        errors = [f.exception() for f in stage_futures if f.exception() is not None]
        if errors or len(stage_futures) < n_stages:
            down = [e for e in errors if isinstance(e, NodeDownError)]
            done.set_exception((down or errors)[0] if errors else FleetError("stage missing"))
            return
        results = tuple(f.result() for f in stage_futures)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        done.set_result(PipelineResult(task_id, results, results[-1].output, latency_ms))

    for f in stage_futures:
        f.add_done_callback(on_stage)
    return done
