"""What every fleet backend does the same way (paper III.A (D), III.F), whatever its transport.

:class:`FleetCore` keeps the driver-side bookkeeping that ``LocalFleet`` (pipes to OS processes)
and ``RayFleet`` (Ray actors and object refs) share: node lookup, deployment keys and the memory
budget of a deployment, pending tasks and their telemetry, failing a dead node's tasks with
:class:`NodeDownError`, restarts, the watchdog, health and the start/stop skeleton. A backend
subclasses it once and fills in its transport: how a node is launched, waited for, sent a
deployment or a probe, released, and (optionally) judged hung.

Per-task path (``_register`` at submit, ``_finish`` / ``_fail_pending`` when a task returns,
``node_states``): one fleet lock held for a few dictionary operations and telemetry updates; the
only objects made per task are its :class:`Pending` record and its future. Timestamps follow
``carbonedge.fleet.base``: ``time.time()`` seconds for stamps, ``perf_counter`` for durations.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from carbonedge.fleet.base import (
    DeployError,
    Enforcement,
    FleetError,
    ModelPayload,
    ModuleBlob,
    NodeDownError,
    NodeHealth,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.spec import FleetSpec, NodeSpec, load_fleet
from carbonedge.fleet.telemetry import NodeState, NodeTelemetry

if TYPE_CHECKING:
    from carbonedge.fleet.base import Array

__all__ = ["FleetCore", "NodeHandle", "Pending", "deployment_key", "memory_budget_bytes"]

MIB = 2**20
DeployReply = tuple[str, Any]  # ("ok", footprint_bytes) or ("err", message)


@dataclass(slots=True)
class Pending:
    """One submitted task awaiting its result (mutable; guarded by the fleet's lock).

    ``seq`` is the per-fleet attempt number the transport tags the task with (``-1``: refused,
    the node was down). ``submitted_perf`` is ``time.perf_counter()`` s; ``latency_ms`` is set
    when the result arrives.
    """

    seq: int
    task_id: str
    model_key: str
    future: Future[TaskResult]
    submitted_at: float
    submitted_perf: float
    latency_ms: float = 0.0


@dataclass(kw_only=True)
class NodeHandle:
    """Driver-side state of one node that every backend keeps (guarded by the fleet's lock).

    ``generation`` counts launches; events of an older generation are ignored. ``armed``: a
    failure of this generation is still to be handled (set at launch, cleared once its pending
    tasks are failed). ``deployments``: key -> (payload, runtime, footprint bytes), kept so a
    restarted node gets its models back.
    """

    spec: NodeSpec
    telemetry: NodeTelemetry
    enforcement: Enforcement
    generation: int = 0
    armed: bool = False
    up: bool = False
    pid: int | None = None
    pending: dict[int, Pending] = field(default_factory=dict)
    deployments: dict[str, tuple[ModelPayload, RuntimeKind, int]] = field(default_factory=dict)
    restarts: int = 0
    detail: str = ""


def deployment_key(model: ModelPayload, runtime: RuntimeKind) -> str:
    """The default key of a deployment: ``<model name or blob label>/<runtime>``."""
    return f"{getattr(model, 'name', None) or getattr(model, 'label', 'model')}/{runtime}"


def memory_budget_bytes(node: NodeHandle, key: str) -> int:
    """Bytes of the node's ``memory_mb`` not taken by its other deployments' footprints."""
    used = sum(f for k, (_, _, f) in node.deployments.items() if k != key)
    return node.spec.memory_mb * MIB - used


def _check_blob_fits(node: NodeHandle, key: str, payload: ModelPayload, budget: int) -> None:
    """Refuse a ModuleBlob whose serialised bytes alone exceed the budget, before sending it."""
    if isinstance(payload, ModuleBlob) and len(payload.data) > budget:
        raise DeployError(
            f"cannot deploy {key!r} to node {node.spec.name!r}: serialised module alone is"
            f" {len(payload.data) / MIB:.1f} MiB but only {budget / MIB:.1f} MiB of the node's"
            " memory_mb is free"
        )


N = TypeVar("N", bound=NodeHandle)


class FleetCore(ABC, Generic[N]):
    """The shared half of a fleet backend; see the module docstring for what a backend adds.

    ``restart``: launch a failed node again and redeploy its models. ``task_timeout_s``: a task
    older than this marks its node hung. ``watch_s``: the watchdog's period (s).
    """

    def __init__(
        self,
        spec: FleetSpec | None,
        *,
        restart: bool,
        task_timeout_s: float,
        start_timeout_s: float,
        watch_s: float,
    ) -> None:
        self._spec = spec or load_fleet(None)
        self._restart = restart
        self._task_timeout_s = task_timeout_s
        self._start_timeout_s = start_timeout_s
        self._watch_s = watch_s
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._nodes: dict[str, N] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- transport (each backend) ----------------------------------------------------------------

    @abstractmethod
    def _prepare(self) -> None:
        """Whatever the transport needs before nodes launch (sweep stale groups, join Ray)."""

    @abstractmethod
    def _new_node(self, spec: NodeSpec) -> N:
        """The handle of a node that is not launched yet."""

    @abstractmethod
    def _launch(self, node: N, generation: int) -> None:
        """Start the node's process or actor (not waiting for it)."""

    @abstractmethod
    def _wait_ready(self, node: N) -> None:
        """Block until the launched node answers; FleetError naming it otherwise."""

    @abstractmethod
    def _send_deploy(
        self, node: N, key: str, payload: ModelPayload, runtime: RuntimeKind, budget_bytes: int
    ) -> Future[DeployReply]:
        """Ask the node to build and keep ``payload`` under ``key`` within ``budget_bytes``."""

    @abstractmethod
    def _send_probe(self, node: N, duration_s: float) -> Future[tuple[float, float]]:
        """Run the busy-loop probe on the node; the future gives (cpu_s, wall_s)."""

    @abstractmethod
    def _release(self, node: N, grace_s: float) -> None:
        """Stop the node's process or actor (after ``grace_s`` s for a graceful exit)."""

    @abstractmethod
    def submit(
        self, node: str, model_key: str, batch: Array, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Send one task (``_register`` it first); see FleetBackend.submit."""

    @abstractmethod
    def health(self) -> list[NodeHealth]:
        """Per-node health (``_health``); see FleetBackend.health."""

    def _stop_begin(self) -> None:
        """Before nodes are released on stop (ask them to exit, read final meters)."""

    def _stop_end(self) -> None:
        """After every node is released on stop (disconnect the transport)."""

    def _hang_reason(self, node: N, now_s: float) -> str | None:
        """A transport's own hang check (``now_s``: ``time.monotonic()``); None if fine."""
        return None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def spec(self) -> FleetSpec:
        return self._spec

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Launch every node in parallel and wait until each is ready; stops all on failure."""
        atexit.register(self.stop)
        try:
            self._prepare()
            for spec in self._spec.nodes:
                self._nodes[spec.name] = self._new_node(spec)
            for node in self._nodes.values():
                self._spawn(node)
            for node in self._nodes.values():
                self._wait_ready(node)
            with self._lock:
                for node in self._nodes.values():
                    node.up = True
        except BaseException:
            self.stop()
            raise
        name = f"{type(self).__name__}-monitor"
        self._monitor = threading.Thread(target=self._watch, name=name, daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """Release every node and fail what was pending; idempotent."""
        self._stopping.set()
        atexit.unregister(self.stop)
        self._stop_begin()
        for node in self._nodes.values():
            with self._lock:
                node.up = False
            self._release(node, 2.0)
            self._fail_all(node, "fleet stopped")
        monitor, self._monitor = self._monitor, None
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout=5.0)
        self._stop_end()

    def _spawn(self, node: N) -> None:
        with self._lock:
            node.generation += 1
            node.armed = True
            generation = node.generation
        self._launch(node, generation)

    # -- faults ----------------------------------------------------------------------------------

    def _fail_all(self, node: N, reason: str) -> None:
        """Fail every pending task of ``node`` with NodeDownError (the dispatcher retries them)."""
        with self._lock:
            pending, node.pending = node.pending, {}
            node.armed = False
            for _ in pending:
                node.telemetry.failed()
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(NodeDownError(node.spec.name, p.task_id, reason))

    def _node_failed(self, node: N, generation: int, reason: str) -> None:
        """Mark ``node`` down once per generation, release it, fail its tasks, maybe restart."""
        with self._lock:
            if generation != node.generation or not node.armed:
                return
            node.armed = False  # handled once: releasing the node makes it report more failures
            node.up = False
            node.detail = reason
        self._release(node, 0.0)
        self._fail_all(node, reason)
        if self._restart and not self._stopping.is_set():
            threading.Thread(target=self._restart_node, args=(node,), daemon=True).start()

    def _restart_node(self, node: N) -> None:
        """Launch the node again, redeploy its models, then mark it up (NodeHealth.restarts)."""
        try:
            self._spawn(node)
            self._wait_ready(node)
            for key, (payload, runtime, _) in list(node.deployments.items()):
                budget = memory_budget_bytes(node, key)
                fut = self._send_deploy(node, key, payload, runtime, budget)
                status, detail = fut.result(timeout=self._start_timeout_s)
                if status != "ok":
                    raise DeployError(f"redeploy of {key!r} failed: {detail}")
            with self._lock:
                node.up = True
            node.restarts += 1
            node.detail = f"restarted after: {node.detail}"
        except Exception as exc:
            with self._lock:
                node.up = False
            node.detail = f"restart failed: {exc}"

    def _watch(self) -> None:
        """Every ``watch_s``: a node whose oldest task exceeds ``task_timeout_s`` is hung."""
        while not self._stopping.wait(self._watch_s):
            now = time.monotonic()
            perf = time.perf_counter()
            for node in list(self._nodes.values()):
                if not node.up:
                    continue
                reason = self._hang_reason(node, now)
                if reason is None:
                    with self._lock:
                        oldest = min(
                            (p.submitted_perf for p in node.pending.values()), default=perf
                        )
                    if perf - oldest > self._task_timeout_s:
                        reason = "hung: task timed out"
                if reason is not None:
                    self._node_failed(node, node.generation, reason)

    # -- deployment ------------------------------------------------------------------------------

    def _node(self, name: str) -> N:
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
        """Deploy ``model`` on ``nodes`` in parallel (kept warm); see FleetBackend.deploy.

        Budget per node: ``memory_mb`` MiB minus the footprints of its other deployments; the
        node refuses a model whose estimated footprint exceeds it (``carbonedge.fleet.memory``).
        """
        if runtime not in ("torch", "onnx"):
            raise DeployError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        key = key or deployment_key(model, runtime)
        sent = []
        for node in [self._node(n) for n in nodes]:
            if not node.up:
                raise FleetError(f"node {node.spec.name!r} is down ({node.detail})")
            budget = memory_budget_bytes(node, key)
            _check_blob_fits(node, key, model, budget)
            sent.append((node, self._send_deploy(node, key, model, runtime, budget)))
        for node, fut in sent:
            try:
                status, detail = fut.result(timeout=self._start_timeout_s)
            except Exception as exc:
                raise FleetError(f"node {node.spec.name!r}: deploy of {key!r}: {exc}") from None
            if status != "ok":
                raise DeployError(f"cannot deploy {key!r} to node {node.spec.name!r}: {detail}")
            with self._lock:
                node.deployments[key] = (model, runtime, int(detail))
                footprints = sum(f for _, _, f in node.deployments.values())
                node.telemetry.used_memory_mb = footprints / MIB
        return key

    # -- per task --------------------------------------------------------------------------------

    def _register(self, node: N, task_id: str, model_key: str) -> Pending:
        """Record a task about to be sent; ``seq == -1`` (future failed) if the node is down."""
        if model_key not in node.deployments:
            raise FleetError(f"model {model_key!r} is not deployed on node {node.spec.name!r}")
        p = Pending(next(self._seq), task_id, model_key, Future(), time.time(), time.perf_counter())
        with self._lock:
            if node.up:
                node.pending[p.seq] = p
                node.telemetry.submitted()
                return p
        p.seq = -1
        p.future.set_exception(NodeDownError(node.spec.name, task_id, node.detail or "not started"))
        return p

    def _finish(
        self, node: N, seq: int, cpu_s: float, exec_ms: float, queued_ms: float = 0.0
    ) -> Pending | None:
        """Take a returned task off ``node`` and record its telemetry; None if already failed
        over (a late result is never recorded twice). Sets ``latency_ms`` (submit to now).
        ``queued_ms``: time the task waited in the node's own queue (not dispatch latency)."""
        now = time.perf_counter()
        with self._lock:
            p = node.pending.pop(seq, None)
            if p is None:
                return None
            p.latency_ms = (now - p.submitted_perf) * 1000.0
            node.telemetry.finished(
                time.monotonic(), cpu_s, exec_ms, p.latency_ms, p.model_key, queued_ms
            )
        return p

    def _fail_pending(self, node: N, seq: int, error: Exception) -> None:
        """Fail one task with ``error`` (a NodeDownError gets the task's id)."""
        with self._lock:
            p = node.pending.pop(seq, None)
            if p is not None:
                node.telemetry.failed()
        if p is None or p.future.done():
            return
        if isinstance(error, NodeDownError):
            error = NodeDownError(error.node, p.task_id, error.reason)
        p.future.set_exception(error)

    # -- telemetry -------------------------------------------------------------------------------

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        """Telemetry of nodes that are up (down nodes are left out, so no scheduler picks one);
        ``avg_time_s`` is ``model_key``'s average execution time where the node has run it."""
        now = time.monotonic()
        with self._lock:
            return [n.telemetry.state(now, model_key) for n in self._nodes.values() if n.up]

    def set_intensity(self, node: str, intensity_g_per_kwh: float) -> None:
        """The node's grid intensity now (gCO2/kWh), from the engine's intensity feed; the next
        ``node_states()`` reports it."""
        self._node(node).telemetry.intensity_g_per_kwh = intensity_g_per_kwh

    def record_power(self, node: str, power_w: float) -> None:
        """Push a measured power (W) for a ``power = "measured"`` node."""
        self._node(node).telemetry.measured_power_w = power_w

    def measure_speed(self, duration_s: float = 1.0) -> dict[str, float]:
        """Effective cores per up node: CPU s / wall s of a busy loop run on all nodes at once
        (dilated like tasks where the node uses dilation)."""
        futures = {n.spec.name: self._send_probe(n, duration_s) for n in self._up_nodes()}
        out = {}
        for name, fut in futures.items():
            cpu_s, wall_s = fut.result(timeout=duration_s * 20 + 10)
            out[name] = cpu_s / wall_s
        return out

    def _up_nodes(self) -> list[N]:
        return [n for n in self._nodes.values() if n.up]

    def _health(self, node: N, peak_rss_mb: float, detail: str) -> NodeHealth:
        return NodeHealth(
            name=node.spec.name,
            up=node.up,
            enforcement=node.enforcement,
            pid=node.pid,
            peak_rss_mb=peak_rss_mb,
            memory_mb=node.spec.memory_mb,
            over_memory=peak_rss_mb > node.spec.memory_mb,
            restarts=node.restarts,
            models=tuple(node.deployments),
            detail=detail,
        )
