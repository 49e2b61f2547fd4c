"""Local fleet backend: one OS process per edge node on this machine (paper III.F, IV.A.1).

Each node is a spawned process with one inference thread (``carbonedge.fleet.worker``), limited to
its CPU quota by a real cgroup quota where writable, else by time dilation (``enforcement``).
The parent keeps, per node, one duplex pipe, a reader thread that resolves futures, and cheap
telemetry. A monitor thread detects dead nodes (pipe EOF), hung nodes (no heartbeat for
``hang_timeout_s``) and stuck tasks (``task_timeout_s``): the node is killed and marked down, its
in-flight futures fail with :class:`NodeDownError` (the dispatcher re-dispatches them), and, with
``restart=True``, it is started again and its models are redeployed.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from carbonedge.fleet.base import (
    DeployError,
    Enforcement,
    EnforcementChoice,
    FleetError,
    ModelPayload,
    ModuleBlob,
    NodeDownError,
    NodeHealth,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.cgroup import CgroupUnavailable, CpuQuotaGroup, sweep_stale
from carbonedge.fleet.spec import FleetSpec, NodeSpec, load_fleet
from carbonedge.fleet.telemetry import NodeState, NodeTelemetry
from carbonedge.fleet.worker import node_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from carbonedge.fleet.base import Array


@dataclass
class _Pending:
    task_id: str
    model_key: str
    future: Future[TaskResult]
    submitted_at: float
    submitted_perf: float


class _Node:
    """Parent-side handle of one node process (mutable; guarded by the fleet's lock)."""

    def __init__(self, spec: NodeSpec, enforcement: Enforcement, load_window_s: float) -> None:
        self.spec = spec
        self.enforcement: Enforcement = enforcement
        self.telemetry = NodeTelemetry(spec, window_s=load_window_s)
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.cgroup: CpuQuotaGroup | None = None
        self.send_lock = threading.Lock()
        self.generation = 0
        self.up = False
        self.pid: int | None = None
        self.pending: dict[int, _Pending] = {}
        self.control: dict[Any, Future[Any]] = {}
        self.deployments: dict[str, tuple[ModelPayload, RuntimeKind, int]] = {}
        self.last_hb = time.monotonic()
        self.rss_mb = 0.0
        self.peak_rss_mb = 0.0
        self.restarts = 0
        self.detail = ""


class LocalFleet:
    """Nodes as local processes; implements :class:`carbonedge.fleet.base.FleetBackend`.

    ``enforcement``: ``"auto"`` (cgroup where writable, else dilation), ``"cgroup"`` (raise
    FleetError if not writable) or ``"dilation"``. ``restart``: restart a node after a fault.
    ``load_window_s``: the telemetry's load signal, a sliding window in seconds, or 0 for the
    node's occupancy at decision time (see :mod:`carbonedge.fleet.telemetry`).
    """

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        enforcement: EnforcementChoice = "auto",
        restart: bool = False,
        heartbeat_s: float = 0.25,
        hang_timeout_s: float = 5.0,
        task_timeout_s: float = 120.0,
        start_timeout_s: float = 120.0,
        load_window_s: float = 5.0,
    ) -> None:
        if not load_window_s >= 0:
            raise FleetError(f"load_window_s must be >= 0 (0 = occupancy), got {load_window_s}")
        self._spec = spec or load_fleet(None)
        self._load_window_s = load_window_s
        self._choice = enforcement
        self._restart = restart
        self._heartbeat_s = heartbeat_s
        self._hang_timeout_s = hang_timeout_s
        self._task_timeout_s = task_timeout_s
        self._start_timeout_s = start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._nodes: dict[str, _Node] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

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
        """Start every node and wait until each has imported torch and is ready."""
        sweep_stale()
        atexit.register(self.stop)
        try:
            for spec in self._spec.nodes:
                self._nodes[spec.name] = _Node(
                    spec, self._pick_enforcement(spec), self._load_window_s
                )
            for node in self._nodes.values():
                self._spawn(node)
            for node in self._nodes.values():
                self._wait_ready(node)
        except BaseException:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, name="fleet-monitor", daemon=True)
        self._monitor.start()

    def _pick_enforcement(self, spec: NodeSpec) -> Enforcement:
        if self._choice == "dilation":
            return "dilation"
        try:
            group = CpuQuotaGroup(spec.name, spec.cpu_quota)
            group.create()
            group.remove()
        except CgroupUnavailable as exc:
            if self._choice == "cgroup":
                raise FleetError(
                    f"node {spec.name!r}: cgroup CPU quota not available: {exc}"
                ) from None
            return "dilation"
        return "cgroup"

    def _spawn(self, node: _Node) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        spec = node.spec
        dilate = node.enforcement == "dilation"
        proc = self._ctx.Process(
            target=node_main,
            args=(child, spec.name, spec.cpu_quota, dilate, os.getpid(), self._heartbeat_s),
            name=f"carbonedge-{spec.name}",
            daemon=True,
        )
        proc.start()
        child.close()
        if node.enforcement == "cgroup":
            node.cgroup = CpuQuotaGroup(spec.name, spec.cpu_quota)
            node.cgroup.create()
            assert proc.pid is not None
            node.cgroup.add(proc.pid)
        with self._lock:
            node.generation += 1
            node.proc, node.conn, node.pid = proc, parent, proc.pid
            node.control = {"ready": Future()}
            node.last_hb = time.monotonic()
        threading.Thread(
            target=self._read,
            args=(node, node.generation, parent),
            name=f"fleet-reader-{spec.name}",
            daemon=True,
        ).start()

    def _wait_ready(self, node: _Node) -> None:
        try:
            node.control["ready"].result(timeout=self._start_timeout_s)
        except Exception as exc:
            raise FleetError(f"node {node.spec.name!r} did not start: {exc}") from None
        with self._lock:
            node.up = True
            node.last_hb = time.monotonic()

    def stop(self) -> None:
        """Stop all nodes (graceful, then terminate, then kill); idempotent."""
        self._stopping.set()
        atexit.unregister(self.stop)
        for node in self._nodes.values():
            if node.conn is not None:
                with contextlib.suppress(OSError, ValueError), node.send_lock:
                    node.conn.send(("stop",))
        for node in self._nodes.values():
            node.up = False
            self._kill(node, grace_s=2.0)
            self._fail_all(node, "fleet stopped")
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=2.0)

    def _kill(self, node: _Node, grace_s: float) -> None:
        proc = node.proc
        if proc is not None:
            proc.join(timeout=grace_s)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5.0)
        if node.conn is not None:
            with contextlib.suppress(OSError):
                node.conn.close()
        group, node.cgroup = node.cgroup, None
        if group is not None:
            group.remove()

    # -- messages from nodes ---------------------------------------------------------------------

    def _read(self, node: _Node, generation: int, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                code = node.proc.exitcode if node.proc is not None else None
                self._node_failed(node, generation, f"process exited (code {code})")
                return
            kind = msg[0]
            if kind == "hb":
                node.last_hb = time.monotonic()
                node.rss_mb, node.peak_rss_mb = msg[1], max(node.peak_rss_mb, msg[2])
            elif kind == "result":
                self._on_result(node, msg)
            elif kind == "task_err":
                with self._lock:
                    p = node.pending.pop(msg[1], None)
                    node.telemetry.failed()
                if p is not None:
                    p.future.set_exception(FleetError(f"node {node.spec.name!r}: {msg[2]}"))
            elif kind == "ready":
                node.last_hb = time.monotonic()
                node.control["ready"].set_result(msg[1])
            else:  # deployed / deploy_err / probe replies, keyed by (kind-group, key)
                fut = node.control.pop((kind if kind == "probe" else "deploy", msg[1]), None)
                if fut is not None:
                    fut.set_result(msg)

    def _on_result(self, node: _Node, msg: tuple[Any, ...]) -> None:
        _, seq, output, started, finished, exec_ms, cpu_s = msg
        now = time.perf_counter()
        with self._lock:
            p = node.pending.pop(seq, None)
            if p is None:  # already failed over (timeout): never record a task twice
                return
            latency_ms = (now - p.submitted_perf) * 1000.0
            node.telemetry.finished(time.monotonic(), cpu_s, exec_ms, latency_ms, p.model_key)
        p.future.set_result(
            TaskResult(
                task_id=p.task_id,
                node=node.spec.name,
                output=output,
                submitted_at=p.submitted_at,
                started_at=started,
                finished_at=finished,
                latency_ms=latency_ms,
                exec_ms=exec_ms,
                cpu_s=cpu_s,
                model_key=p.model_key,
            )
        )

    # -- faults ----------------------------------------------------------------------------------

    def _fail_all(self, node: _Node, reason: str) -> None:
        with self._lock:
            pending, node.pending = node.pending, {}
            control, node.control = node.control, {}
            for _ in pending:
                node.telemetry.failed()
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(NodeDownError(node.spec.name, p.task_id, reason))
        for fut in control.values():
            if not fut.done():
                fut.set_exception(FleetError(f"node {node.spec.name!r} is down ({reason})"))

    def _node_failed(self, node: _Node, generation: int, reason: str) -> None:
        with self._lock:
            if generation != node.generation or (not node.up and "ready" not in node.control):
                return
            node.up = False
            node.detail = reason
        if node.proc is not None and node.proc.is_alive():
            node.proc.kill()
        self._fail_all(node, reason)
        self._kill(node, grace_s=0.0)
        if self._restart and not self._stopping.is_set():
            threading.Thread(target=self._restart_node, args=(node,), daemon=True).start()

    def _restart_node(self, node: _Node) -> None:
        try:
            self._spawn(node)
            self._wait_ready(node)
            for key, (payload, runtime, _) in list(node.deployments.items()):
                self._deploy_one(node, key, payload, runtime, force=True).result(
                    timeout=self._start_timeout_s
                )
            node.restarts += 1
            node.detail = f"restarted after: {node.detail}"
        except Exception as exc:
            with self._lock:
                node.up = False
            node.detail = f"restart failed: {exc}"

    def _watch(self) -> None:
        while not self._stopping.wait(self._heartbeat_s):
            now = time.monotonic()
            perf = time.perf_counter()
            for node in list(self._nodes.values()):
                if not node.up:
                    continue
                if now - node.last_hb > self._hang_timeout_s:
                    self._node_failed(node, node.generation, "hung: no heartbeat")
                    continue
                with self._lock:
                    oldest = min((p.submitted_perf for p in node.pending.values()), default=perf)
                if perf - oldest > self._task_timeout_s:
                    self._node_failed(node, node.generation, "hung: task timed out")

    # -- deployment and execution ----------------------------------------------------------------

    def _node(self, name: str) -> _Node:
        node = self._nodes.get(name)
        if node is None:
            self._spec.node(name)  # raises ConfigError naming the known nodes
            raise FleetError(f"fleet not started (node {name!r})")
        return node

    def _deploy_one(
        self,
        node: _Node,
        key: str,
        payload: ModelPayload,
        runtime: RuntimeKind,
        force: bool = False,
    ) -> Future[Any]:
        used = sum(f for k, (_, _, f) in node.deployments.items() if k != key)
        budget = node.spec.memory_mb * 2**20 - used
        fut: Future[Any] = Future()
        if isinstance(payload, ModuleBlob) and len(payload.data) > budget:
            msg = (
                f"serialised module alone is {len(payload.data) / 2**20:.1f} MiB but only"
                f" {budget / 2**20:.1f} MiB of the node's memory_mb is free"
            )
            fut.set_result(("deploy_err", key, msg))
            return fut
        if not node.up and not force:
            raise FleetError(f"node {node.spec.name!r} is down ({node.detail})")
        node.control[("deploy", key)] = fut
        assert node.conn is not None
        with node.send_lock:
            node.conn.send(("deploy", key, payload, runtime, budget))
        return fut

    def deploy(
        self,
        model: ModelPayload,
        nodes: Sequence[str],
        runtime: RuntimeKind = "torch",
        *,
        key: str | None = None,
    ) -> str:
        """Deploy ``model`` on ``nodes`` in parallel; see FleetBackend.deploy."""
        if runtime not in ("torch", "onnx"):
            raise DeployError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        key = key or f"{getattr(model, 'name', None) or getattr(model, 'label', 'model')}/{runtime}"
        targets = [self._node(n) for n in nodes]
        futures = [(n, self._deploy_one(n, key, model, runtime)) for n in targets]
        for node, fut in futures:
            reply = fut.result(timeout=self._start_timeout_s)
            if reply[0] == "deploy_err":
                raise DeployError(f"cannot deploy {key!r} to node {node.spec.name!r}: {reply[2]}")
            with self._lock:
                node.deployments[key] = (model, runtime, int(reply[2]))
                node.telemetry.used_memory_mb = (
                    sum(f for _, _, f in node.deployments.values()) / 2**20
                )
        return key

    def submit(
        self, node: str, model_key: str, batch: Array, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Queue ``batch`` for ``model_key`` on ``node``; see FleetBackend.submit."""
        n = self._node(node)
        task_id = task_id or uuid.uuid4().hex[:12]
        fut: Future[TaskResult] = Future()
        if model_key not in n.deployments:
            raise FleetError(f"model {model_key!r} is not deployed on node {node!r}")
        seq = next(self._seq)
        with self._lock:
            if not n.up:
                fut.set_exception(NodeDownError(node, task_id, n.detail or "not started"))
                return fut
            n.pending[seq] = _Pending(task_id, model_key, fut, time.time(), time.perf_counter())
            n.telemetry.submitted()
        try:
            assert n.conn is not None
            with n.send_lock:
                n.conn.send(("run", seq, model_key, batch))
        except (OSError, ValueError):
            self._node_failed(n, n.generation, "pipe closed")
        return fut

    # -- telemetry -------------------------------------------------------------------------------

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        """Telemetry of nodes that are up (down nodes are left out, so no scheduler picks one);
        ``avg_time_s`` is ``model_key``'s average execution time where the node has run it."""
        now = time.monotonic()
        with self._lock:
            return [n.telemetry.state(now, model_key) for n in self._nodes.values() if n.up]

    def record_power(self, node: str, power_w: float) -> None:
        """Push a measured power (W) for a ``power = "measured"`` node."""
        self._node(node).telemetry.measured_power_w = power_w

    def health(self) -> list[NodeHealth]:
        return [
            NodeHealth(
                name=n.spec.name,
                up=n.up,
                enforcement=n.enforcement,
                pid=n.pid,
                peak_rss_mb=n.peak_rss_mb,
                memory_mb=n.spec.memory_mb,
                over_memory=n.peak_rss_mb > n.spec.memory_mb,
                restarts=n.restarts,
                models=tuple(n.deployments),
                detail=n.detail,
            )
            for n in self._nodes.values()
        ]

    def node_pids(self) -> dict[str, int | None]:
        """Current OS pid of each node process (for CPU-time attribution with psutil)."""
        return {name: n.pid if n.up else None for name, n in self._nodes.items()}

    def measure_speed(self, duration_s: float = 1.0) -> dict[str, float]:
        """Effective cores per node: CPU s / wall s of a busy loop run on all nodes at once."""
        futures = {}
        for name, node in self._nodes.items():
            if node.up and node.conn is not None:
                seq = next(self._seq)
                futures[name] = fut = Future[Any]()
                node.control[("probe", seq)] = fut
                with node.send_lock:
                    node.conn.send(("probe", seq, duration_s))
        out = {}
        for name, fut in futures.items():
            _, _, cpu_s, wall_s = fut.result(timeout=duration_s * 20 + 10)
            out[name] = cpu_s / wall_s
        return out
