"""Ray fleet backend: one actor per edge node of a Ray cluster (paper III.A (D), III.F).

The same interface as :class:`~carbonedge.fleet.local.LocalFleet` (``FleetBackend``), for real
multi-host fleets. Each edge node is an :class:`~carbonedge.fleet.ray_actor.EdgeNodeActor` pinned
to its Ray node (``carbonedge.fleet.ray_placement``), reserving ``num_cpus = cpu_quota`` and
``memory = memory_mb``, and measuring its own energy with its own meter. A pipeline's activations
go actor to actor through Ray's object store (``ObjectRef`` arguments), never through the driver.

Faults: when an actor dies (``ray.exceptions.RayActorError``, e.g. after ``ray.kill`` or a node
loss) its tasks fail with :class:`~carbonedge.fleet.base.NodeDownError`, the node is marked down
(left out of ``node_states()``) so the dispatcher re-dispatches them elsewhere, and with
``restart=True`` a new actor is started on the same pin and its models redeployed. A task running
longer than ``task_timeout_s`` gets its actor killed (hang detection).

Ray's own files: when this fleet starts Ray itself (``address=None``) it sets, unless already set,
``RAY_TMPDIR`` (a fresh folder under the system temp dir, removed on stop),
``RAY_USAGE_STATS_ENABLED=0`` and ``RAY_AUTH_MODE=disabled`` (no ``~/.ray/auth_token``; the local
cluster listens on this host only), and starts no dashboard.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self, cast

from carbonedge.fleet.base import (
    DeployError,
    Enforcement,
    FleetError,
    ModelPayload,
    ModuleBlob,
    NodeDownError,
    NodeHealth,
    Pipeline,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.ray_actor import METER_KINDS, EdgeNodeActor, MeterKind, StageMeta
from carbonedge.fleet.ray_placement import RESOURCE_SLIVER, Pin, Placement, resolve_placement
from carbonedge.fleet.spec import FleetSpec, NodeSpec, load_fleet
from carbonedge.fleet.telemetry import NodeState, NodeTelemetry

if TYPE_CHECKING:
    from carbonedge.carbon.energy import EnergyReading
    from carbonedge.fleet.base import Array
    from carbonedge.fleet.pipeline import PipelineResult

RayEnforcement = Literal["dilation", "none"]

__all__ = ["RayFleet", "RayTaskResult", "ray_available"]


@dataclass(frozen=True)
class RayTaskResult(TaskResult):
    """A :class:`TaskResult` that also says which Ray node ran it (``ray_node_id``, hex)."""

    ray_node_id: str = ""


def _empty_output() -> Array:
    import numpy as np

    return np.empty((0,), dtype=np.float32)


def ray_available() -> bool:
    """True if the ``ray`` extra is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FleetError("RayFleet needs Ray: pip install 'carbonedge[ray]'") from None
    return ray


@dataclass
class _Pending:
    task_id: str
    model_key: str
    future: Future[TaskResult]
    submitted_at: float
    submitted_perf: float


@dataclass
class _RayNode:
    """Driver-side handle of one edge node's actor (mutable; guarded by the fleet's lock)."""

    spec: NodeSpec
    pin: Pin
    meter: MeterKind
    telemetry: NodeTelemetry
    actor: Any = None
    generation: int = 0
    up: bool = False
    pid: int | None = None
    ray_node_id: str = ""
    pending: dict[int, _Pending] = field(default_factory=dict)
    deployments: dict[str, tuple[ModelPayload, RuntimeKind, int]] = field(default_factory=dict)
    restarts: int = 0
    detail: str = ""


class RayFleet:
    """Edge nodes as pinned Ray actors; implements :class:`~carbonedge.fleet.base.FleetBackend`.

    ``address``: ``None`` starts a local Ray (advertising ``edge:<node>`` for every node),
    ``"auto"`` joins the cluster on this host, ``"ray://host:10001"`` uses Ray Client, any other
    value is passed to ``ray.init``. If Ray is already initialised in this process, that
    connection is used and left open on stop. ``placement``: see ``ray_placement``.
    ``meter``: ``"profile"`` or ``"codecarbon"``, or a mapping node -> kind.
    ``enforcement``: ``"dilation"`` (nodes with a quota below one core sleep
    ``(1/q - 1) x cpu_s`` after each task, for single-host simulations) or ``"none"`` (real
    devices: the device is the quota; Ray's ``num_cpus`` is a reservation, not a limit).
    """

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        address: str | None = None,
        placement: Placement = "resource",
        meter: MeterKind | Mapping[str, MeterKind] = "profile",
        enforcement: RayEnforcement = "dilation",
        restart: bool = False,
        task_timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
        object_store_mb: int = 256,
        max_concurrency: int = 4,
    ) -> None:
        self._spec = spec or load_fleet(None)
        self._address = address
        self._placement = placement
        self._meters = self._meter_kinds(meter)
        if enforcement not in ("dilation", "none"):
            raise FleetError(f"enforcement must be 'dilation' or 'none', got {enforcement!r}")
        self._enforcement: RayEnforcement = enforcement
        self._restart = restart
        self._task_timeout_s = task_timeout_s
        self._start_timeout_s = start_timeout_s
        self._object_store_mb = object_store_mb
        self._max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._nodes: dict[str, _RayNode] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        # Ray runs ObjectRef-future callbacks on its own I/O thread, where calling Ray (kill,
        # remote, get) can deadlock; callbacks only enqueue, and this thread delivers results.
        self._events: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._deliverer: threading.Thread | None = None
        self._owns_ray = False
        self._tmp_dir: str | None = None
        self._remote_cls: Any = None
        self.final_readings: dict[str, EnergyReading] = {}

    def _meter_kinds(self, meter: MeterKind | Mapping[str, MeterKind]) -> dict[str, MeterKind]:
        kinds = {n: meter for n in self._spec.names} if isinstance(meter, str) else dict(meter)
        for name, kind in kinds.items():
            self._spec.node(name)  # ConfigError naming the known nodes
            if kind not in METER_KINDS:
                raise FleetError(f"meter[{name!r}] must be one of {METER_KINDS}, got {kind!r}")
        return {n: kinds.get(n, "profile") for n in self._spec.names}

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def spec(self) -> FleetSpec:
        return self._spec

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _init_ray(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self._address is None:
            if "RAY_TMPDIR" not in os.environ:
                self._tmp_dir = tempfile.mkdtemp(prefix="carbonedge-ray-")
                os.environ["RAY_TMPDIR"] = self._tmp_dir
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            temp_dir = os.path.join(os.environ["RAY_TMPDIR"], "ray")
            os.makedirs(temp_dir, exist_ok=True)
            cpus = max(os.cpu_count() or 1, int(self._spec.total_quota + 0.999))
            kwargs.update(
                num_cpus=cpus,
                resources={f"edge:{n}": 1.0 for n in self._spec.names},
                object_store_memory=self._object_store_mb * 2**20,
                _temp_dir=temp_dir,
            )
        else:
            kwargs["address"] = self._address
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise FleetError(f"cannot start or join Ray at {self._address!r}: {exc}") from None
        self._owns_ray = True

    def start(self) -> None:
        """Connect to Ray, pin one actor per node and wait until every actor is ready."""
        ray = _ray()
        atexit.register(self.stop)
        self._deliverer = threading.Thread(
            target=self._deliver, name="ray-fleet-results", daemon=True
        )
        self._deliverer.start()
        try:
            self._init_ray(ray)
            self._remote_cls = ray.remote(EdgeNodeActor)
            pins = resolve_placement(self._spec, self._placement, ray.nodes())
            for spec in self._spec.nodes:
                self._nodes[spec.name] = _RayNode(
                    spec, pins[spec.name], self._meters[spec.name], NodeTelemetry(spec)
                )
            for node in self._nodes.values():
                self._spawn(node)
            for node in self._nodes.values():
                self._wait_ready(node)
        except BaseException:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, name="ray-fleet-monitor", daemon=True)
        self._monitor.start()

    def _spawn(self, node: _RayNode) -> None:
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
            node.generation += 1
            node.actor = actor

    def _wait_ready(self, node: _RayNode) -> None:
        ray = _ray()
        try:
            info = ray.get(node.actor.info.remote(), timeout=self._start_timeout_s)
        except Exception as exc:
            raise FleetError(f"node {node.spec.name!r}: actor did not start: {exc}") from None
        with self._lock:
            node.pid, node.ray_node_id, node.up = info["pid"], info["ray_node_id"], True

    def stop(self) -> None:
        """Read each node's final energy, kill the actors, disconnect; idempotent."""
        self._stopping.set()
        atexit.unregister(self.stop)
        if self._nodes and any(n.up for n in self._nodes.values()):
            with contextlib.suppress(Exception):
                self.final_readings.update(self.energy_readings(timeout_s=30.0))
        ray = None
        with contextlib.suppress(FleetError):
            ray = _ray()
        for node in self._nodes.values():
            with self._lock:
                node.up = False
                actor, node.actor = node.actor, None
            if actor is not None and ray is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
            self._fail_all(node, "fleet stopped")
        for thread in (self._monitor, self._deliverer):
            if thread is not None and thread is not threading.current_thread():
                if thread is self._deliverer:
                    self._events.put(None)
                thread.join(timeout=5.0)
        self._monitor = self._deliverer = None
        if self._owns_ray and ray is not None:
            ray.shutdown()
            self._owns_ray = False
        if self._tmp_dir is not None:
            if os.environ.get("RAY_TMPDIR") == self._tmp_dir:
                del os.environ["RAY_TMPDIR"]
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    # -- faults ----------------------------------------------------------------------------------

    def _fail_all(self, node: _RayNode, reason: str) -> None:
        with self._lock:
            pending, node.pending = node.pending, {}
            for _ in pending:
                node.telemetry.failed()
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(NodeDownError(node.spec.name, p.task_id, reason))

    def _node_failed(self, node: _RayNode, generation: int, reason: str) -> None:
        with self._lock:
            if generation != node.generation or not node.up:
                return
            node.up = False
            node.detail = reason
            actor = node.actor
        with contextlib.suppress(Exception):
            _ray().kill(actor, no_restart=True)
        self._fail_all(node, reason)
        if self._restart and not self._stopping.is_set():
            threading.Thread(target=self._restart_node, args=(node,), daemon=True).start()

    def _restart_node(self, node: _RayNode) -> None:
        ray = _ray()
        try:
            self._spawn(node)
            for key, (payload, runtime, _) in list(node.deployments.items()):
                budget = node.spec.memory_mb * 2**20
                ref = node.actor.deploy.remote(key, payload, runtime, budget)
                status, detail = ray.get(ref, timeout=self._start_timeout_s)
                if status != "ok":
                    raise DeployError(f"redeploy of {key!r} failed: {detail}")
            self._wait_ready(node)
            node.restarts += 1
            node.detail = f"restarted after: {node.detail}"
        except Exception as exc:
            node.detail = f"restart failed: {exc}"

    def _watch(self) -> None:
        while not self._stopping.wait(0.25):
            perf = time.perf_counter()
            for node in list(self._nodes.values()):
                with self._lock:
                    oldest = min((p.submitted_perf for p in node.pending.values()), default=perf)
                if node.up and perf - oldest > self._task_timeout_s:
                    self._node_failed(node, node.generation, "hung: task timed out")

    # -- deployment and execution ----------------------------------------------------------------

    def _node(self, name: str) -> _RayNode:
        node = self._nodes.get(name)
        if node is None:
            self._spec.node(name)  # raises ConfigError naming the known nodes
            raise FleetError(f"fleet not started (node {name!r})")
        return node

    def deploy(
        self,
        model: ModelPayload,
        nodes: Sequence[str],
        runtime: RuntimeKind = "torch",
        *,
        key: str | None = None,
    ) -> str:
        """Deploy ``model`` on ``nodes`` in parallel (kept warm); see FleetBackend.deploy."""
        ray = _ray()
        if runtime not in ("torch", "onnx"):
            raise DeployError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        key = key or f"{getattr(model, 'name', None) or getattr(model, 'label', 'model')}/{runtime}"
        refs = []
        for node in (self._node(n) for n in nodes):
            if not node.up:
                raise FleetError(f"node {node.spec.name!r} is down ({node.detail})")
            used = sum(f for k, (_, _, f) in node.deployments.items() if k != key)
            budget = node.spec.memory_mb * 2**20 - used
            if isinstance(model, ModuleBlob) and len(model.data) > budget:
                raise DeployError(
                    f"cannot deploy {key!r} to node {node.spec.name!r}: serialised module is"
                    f" {len(model.data) / 2**20:.1f} MiB, {budget / 2**20:.1f} MiB free"
                )
            refs.append((node, node.actor.deploy.remote(key, model, runtime, budget)))
        for node, ref in refs:
            try:
                status, detail = ray.get(ref, timeout=self._start_timeout_s)
            except Exception as exc:
                raise FleetError(f"node {node.spec.name!r}: deploy of {key!r}: {exc}") from None
            if status != "ok":
                raise DeployError(f"cannot deploy {key!r} to node {node.spec.name!r}: {detail}")
            with self._lock:
                node.deployments[key] = (model, runtime, int(detail))
                node.telemetry.used_memory_mb = (
                    sum(f for _, _, f in node.deployments.values()) / 2**20
                )
        return key

    def _register(
        self, n: _RayNode, task_id: str, model_key: str
    ) -> tuple[int, Future[TaskResult]]:
        if model_key not in n.deployments:
            raise FleetError(f"model {model_key!r} is not deployed on node {n.spec.name!r}")
        fut: Future[TaskResult] = Future()
        seq = next(self._seq)
        with self._lock:
            if not n.up:
                fut.set_exception(NodeDownError(n.spec.name, task_id, n.detail or "not started"))
                return -1, fut
            n.pending[seq] = _Pending(task_id, model_key, fut, time.time(), time.perf_counter())
            n.telemetry.submitted()
        return seq, fut

    def submit(
        self, node: str, model_key: str, batch: Array | Any, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Run ``model_key`` on ``batch`` (an array or an ObjectRef) on ``node``'s actor."""
        n = self._node(node)
        seq, fut = self._register(n, task_id or uuid.uuid4().hex[:12], model_key)
        if seq >= 0:
            generation = n.generation
            ref = n.actor.run.remote(model_key, batch)
            ref.future().add_done_callback(
                lambda rf: self._events.put((n, generation, seq, rf, True))
            )
        return fut

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
        now = time.perf_counter()
        with self._lock:
            p = n.pending.pop(seq, None)
            if p is None:  # already failed over: never record a task twice
                return
            if exc is not None:
                n.telemetry.failed()
        if exc is not None:
            cause = getattr(exc, "cause", None) or exc
            p.future.set_exception(FleetError(f"node {n.spec.name!r}: {cause!r}"))
            return
        # An intermediate pipeline stage's activation stays on the object store: empty output.
        output, meta = rf.result() if with_output else (_empty_output(), rf.result())
        meta = cast(StageMeta, meta)
        latency_ms = (now - p.submitted_perf) * 1000.0
        with self._lock:
            n.telemetry.finished(
                time.monotonic(), meta.cpu_s, meta.exec_ms, latency_ms, p.model_key
            )
        p.future.set_result(
            RayTaskResult(
                task_id=p.task_id,
                node=n.spec.name,
                output=output,
                submitted_at=p.submitted_at,
                started_at=meta.started_at,
                finished_at=meta.finished_at,
                latency_ms=latency_ms,
                exec_ms=meta.exec_ms,
                cpu_s=meta.cpu_s,
                model_key=p.model_key,
                ray_node_id=meta.ray_node_id,
            )
        )

    def _fail_pending(self, n: _RayNode, seq: int, error: Exception) -> None:
        with self._lock:
            p = n.pending.pop(seq, None)
            if p is not None:
                n.telemetry.failed()
        if p is None or p.future.done():
            return
        if isinstance(error, NodeDownError):
            error = NodeDownError(error.node, p.task_id, error.reason)
        p.future.set_exception(error)

    def submit_pipeline(
        self, pipeline: Pipeline, batch: Array, *, task_id: str | None = None
    ) -> Future[PipelineResult]:
        """Run ``batch`` through the stages; activations pass actor to actor as ObjectRefs.

        Every stage is submitted at once: stage ``i + 1`` receives stage ``i``'s output
        ObjectRef and Ray starts it when that object exists on the object store. Only the
        stages' small timing records and the last output come back to the driver.
        """
        from carbonedge.fleet.pipeline import PipelineResult

        task_id = task_id or uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        stage_futures: list[Future[TaskResult]] = []
        x: Any = batch
        last = len(pipeline.stages) - 1
        for i, (name, key) in enumerate(pipeline.stages):
            n = self._node(name)
            seq, fut = self._register(n, f"{task_id}/{i}", key)
            stage_futures.append(fut)
            if seq < 0:
                break
            generation = n.generation
            if i == last:
                ref = n.actor.run.remote(key, x)
                ref.future().add_done_callback(
                    lambda rf, n=n, g=generation, s=seq: self._events.put((n, g, s, rf, True))
                )
            else:
                x, meta_ref = n.actor.run.options(num_returns=2).remote(key, x)
                meta_ref.future().add_done_callback(
                    lambda rf, n=n, g=generation, s=seq: self._events.put((n, g, s, rf, False))
                )
        done: Future[PipelineResult] = Future()
        remaining = [len(stage_futures)]
        lock = threading.Lock()

        def on_stage(_: Future[TaskResult]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] or done.done():
                    return
            errors = [f.exception() for f in stage_futures if f.exception() is not None]
            if errors or len(stage_futures) < len(pipeline.stages):
                down = [e for e in errors if isinstance(e, NodeDownError)]
                done.set_exception((down or errors)[0] if errors else FleetError("stage missing"))
                return
            results = tuple(f.result() for f in stage_futures)
            latency_ms = (time.perf_counter() - t0) * 1000.0
            done.set_result(PipelineResult(task_id, results, results[-1].output, latency_ms))

        for f in stage_futures:
            f.add_done_callback(on_stage)
        return done

    # -- telemetry and energy --------------------------------------------------------------------

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        """Telemetry of nodes that are up (down nodes are left out, so no scheduler picks one);
        ``avg_time_s`` is ``model_key``'s average execution time where the node has run it."""
        now = time.monotonic()
        with self._lock:
            return [n.telemetry.state(now, model_key) for n in self._nodes.values() if n.up]

    def record_power(self, node: str, power_w: float) -> None:
        """Push a measured power (W) for a ``power = "measured"`` node."""
        self._node(node).telemetry.measured_power_w = power_w

    def energy_readings(self, timeout_s: float = 60.0) -> dict[str, EnergyReading]:
        """Each up node's energy since its previous reading (kWh, with its method), by node."""
        ray = _ray()
        refs = {n.spec.name: n.actor.read_energy.remote() for n in self._nodes.values() if n.up}
        return {name: ray.get(ref, timeout=timeout_s) for name, ref in refs.items()}

    def placement(self) -> dict[str, str]:
        """The Ray node id (hex) hosting each node's actor, as reported by the actor."""
        return {name: n.ray_node_id for name, n in self._nodes.items()}

    def actor(self, node: str) -> Any:
        """The Ray actor handle of ``node`` (for fault-injection tests and advanced use)."""
        return self._node(node).actor

    def measure_speed(self, duration_s: float = 1.0) -> dict[str, float]:
        """Effective cores per node: CPU s / wall s of a dilated busy loop on all nodes at once."""
        ray = _ray()
        refs = {n.spec.name: n.actor.probe.remote(duration_s) for n in self._nodes.values() if n.up}
        out = {}
        for name, ref in refs.items():
            cpu_s, wall_s = ray.get(ref, timeout=duration_s * 20 + 10)
            out[name] = cpu_s / wall_s
        return out

    def health(self) -> list[NodeHealth]:
        """Per-node health; asks each up actor for its RSS (a control call, not the hot path)."""
        ray = _ray()
        infos: dict[str, Any] = {}
        for name, n in self._nodes.items():
            if n.up:
                with contextlib.suppress(Exception):
                    infos[name] = ray.get(n.actor.info.remote(), timeout=10.0)
        enforcement = cast(Enforcement, self._enforcement)  # "none" is Ray-only; see docs
        out = []
        for name, n in self._nodes.items():
            info = infos.get(name, {})
            peak = float(info.get("peak_rss_mb", 0.0))
            out.append(
                NodeHealth(
                    name=name,
                    up=n.up,
                    enforcement=enforcement,
                    pid=n.pid,
                    peak_rss_mb=peak,
                    memory_mb=n.spec.memory_mb,
                    over_memory=peak > n.spec.memory_mb,
                    restarts=n.restarts,
                    models=tuple(n.deployments),
                    detail=n.detail or f"ray node {n.ray_node_id[:12]} ({n.pin.kind} pin)",
                )
            )
        return out
