"""Local fleet backend: one OS process per edge node on this machine (paper III.F, IV.A.1).

Each node is a spawned process with one inference thread (``carbonedge.fleet.worker``), limited to
its CPU quota by a real cgroup quota where writable, else by time dilation (``enforcement``).
The parent keeps, per node, one duplex pipe, a reader thread that resolves futures, and cheap
telemetry. The shared watchdog (``carbonedge.fleet.core``) detects stuck tasks
(``task_timeout_s``); this backend adds dead nodes (pipe EOF) and hung nodes (no heartbeat for
``hang_timeout_s``): the node is killed and marked down, its in-flight futures fail with
:class:`NodeDownError` (the dispatcher re-dispatches them), and, with ``restart=True``, it is
started again and its models are redeployed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carbonedge.fleet.base import (
    Enforcement,
    EnforcementChoice,
    FleetError,
    ModelPayload,
    NodeHealth,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.cgroup import CgroupUnavailable, CpuQuotaGroup, sweep_stale
from carbonedge.fleet.core import DeployReply, FleetCore, NodeHandle
from carbonedge.fleet.spec import FleetSpec, NodeSpec
from carbonedge.fleet.telemetry import ExecTimeSource, NodeTelemetry, check_max_in_flight
from carbonedge.fleet.worker import node_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from carbonedge.fleet.base import Array

# What the telemetry's ``avg_time_s`` samples on these nodes (simulated slices of one host).
EXEC_TIME_SOURCE: ExecTimeSource = "cpu_share"


@dataclass(kw_only=True)
class _Node(NodeHandle):
    """Parent-side handle of one node process: its pipe, cgroup, control replies, heartbeat."""

    proc: BaseProcess | None = None
    conn: Connection | None = None
    cgroup: CpuQuotaGroup | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    control: dict[Any, Future[Any]] = field(default_factory=dict)
    last_hb: float = field(default_factory=time.monotonic)
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0


class LocalFleet(FleetCore[_Node]):
    """Nodes as local processes; implements :class:`carbonedge.fleet.base.FleetBackend`.

    ``enforcement``: ``"auto"`` (cgroup where writable, else dilation), ``"cgroup"`` (raise
    FleetError if not writable) or ``"dilation"``. ``restart``: restart a node after a fault.
    ``load_window_s``: the telemetry's load signal, a sliding window in seconds, or 0 (the
    default) for the node's occupancy at decision time (see :mod:`carbonedge.fleet.telemetry`).
    ``max_in_flight``: tasks a node may hold at once (1: one; 2: the next one waits in the node's
    own queue while it runs one, so the node never idles between tasks).
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
        load_window_s: float = 0.0,
        max_in_flight: int = 1,
    ) -> None:
        if not load_window_s >= 0:
            raise FleetError(f"load_window_s must be >= 0 (0 = occupancy), got {load_window_s}")
        self._max_in_flight = check_max_in_flight(max_in_flight)
        super().__init__(
            spec,
            restart=restart,
            task_timeout_s=task_timeout_s,
            start_timeout_s=start_timeout_s,
            watch_s=heartbeat_s,
        )
        self._load_window_s = load_window_s
        self._choice = enforcement
        self._heartbeat_s = heartbeat_s
        self._hang_timeout_s = hang_timeout_s
        self._ctx = mp.get_context("spawn")

    # -- transport: processes and pipes ----------------------------------------------------------

    def _prepare(self) -> None:
        sweep_stale()

    def _new_node(self, spec: NodeSpec) -> _Node:
        # Every node is a CPU-quota'd slice of this host (cgroup or dilation): its execution
        # time is a task's CPU time at its quota, not the wall time, which includes waiting
        # for the host's other processes (see carbonedge.fleet.telemetry).
        telemetry = NodeTelemetry(
            spec,
            window_s=self._load_window_s,
            exec_time_source=EXEC_TIME_SOURCE,
            max_in_flight=self._max_in_flight,
        )
        return _Node(spec=spec, telemetry=telemetry, enforcement=self._pick_enforcement(spec))

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

    def _launch(self, node: _Node, generation: int) -> None:
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
            node.proc, node.conn, node.pid = proc, parent, proc.pid
            node.control = {"ready": Future()}
            node.last_hb = time.monotonic()
        threading.Thread(
            target=self._read,
            args=(node, generation, parent),
            name=f"fleet-reader-{spec.name}",
            daemon=True,
        ).start()

    def _wait_ready(self, node: _Node) -> None:
        try:
            node.control["ready"].result(timeout=self._start_timeout_s)
        except Exception as exc:
            raise FleetError(f"node {node.spec.name!r} did not start: {exc}") from None
        node.last_hb = time.monotonic()

    def _send(self, node: _Node, msg: tuple[Any, ...]) -> None:
        assert node.conn is not None
        with node.send_lock:
            node.conn.send(msg)

    def _send_deploy(
        self, node: _Node, key: str, payload: ModelPayload, runtime: RuntimeKind, budget_bytes: int
    ) -> Future[DeployReply]:
        fut: Future[DeployReply] = Future()
        node.control[("deploy", key)] = fut
        self._send(node, ("deploy", key, payload, runtime, budget_bytes))
        return fut

    def _send_probe(self, node: _Node, duration_s: float) -> Future[tuple[float, float]]:
        seq = next(self._seq)
        fut: Future[tuple[float, float]] = Future()
        node.control[("probe", seq)] = fut
        self._send(node, ("probe", seq, duration_s))
        return fut

    def _stop_begin(self) -> None:
        for node in self._nodes.values():  # all at once, so that they exit in parallel
            if node.conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._send(node, ("stop",))

    def _release(self, node: _Node, grace_s: float) -> None:
        """Join the process for ``grace_s`` s, then kill it; close the pipe, remove the cgroup."""
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

    def _hang_reason(self, node: _Node, now_s: float) -> str | None:
        return "hung: no heartbeat" if now_s - node.last_hb > self._hang_timeout_s else None

    def _fail_all(self, node: _Node, reason: str) -> None:
        with self._lock:
            control, node.control = node.control, {}
        super()._fail_all(node, reason)
        for fut in control.values():
            if not fut.done():
                fut.set_exception(FleetError(f"node {node.spec.name!r} is down ({reason})"))

    # -- messages from nodes (see carbonedge.fleet.worker) ---------------------------------------

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
                self._fail_pending(node, msg[1], FleetError(f"node {node.spec.name!r}: {msg[2]}"))
            elif kind == "ready":
                node.last_hb = time.monotonic()
                node.control["ready"].set_result(msg[1])
            elif kind == "probe":
                self._reply(node, ("probe", msg[1]), (msg[2], msg[3]))
            else:  # "deployed" or "deploy_err"
                self._reply(
                    node, ("deploy", msg[1]), ("ok" if kind == "deployed" else "err", msg[2])
                )

    @staticmethod
    def _reply(node: _Node, key: tuple[str, Any], value: tuple[Any, Any]) -> None:
        fut = node.control.pop(key, None)
        if fut is not None:
            fut.set_result(value)

    def _on_result(self, node: _Node, msg: tuple[Any, ...]) -> None:
        _, seq, output, started, finished, exec_ms, cpu_s, queued_ms = msg
        p = self._finish(node, seq, cpu_s, exec_ms, queued_ms)
        if p is None:  # already failed over (timeout): never record a task twice
            return
        p.future.set_result(
            TaskResult(
                task_id=p.task_id,
                node=node.spec.name,
                output=output,
                submitted_at=p.submitted_at,
                started_at=started,
                finished_at=finished,
                latency_ms=p.latency_ms,
                exec_ms=exec_ms,
                cpu_s=cpu_s,
                model_key=p.model_key,
            )
        )

    # -- execution and health --------------------------------------------------------------------

    def submit(
        self, node: str, model_key: str, batch: Array, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Queue ``batch`` for ``model_key`` on ``node``; see FleetBackend.submit."""
        n = self._node(node)
        p = self._register(n, task_id or uuid.uuid4().hex[:12], model_key)
        if p.seq >= 0:
            try:
                self._send(n, ("run", p.seq, model_key, batch))
            # TypeError: the reader thread closed the pipe while this thread was sending
            # (multiprocessing then finds its handle None mid-call).
            except (OSError, ValueError, TypeError):
                self._node_failed(n, n.generation, "pipe closed")
        return p.future

    def health(self) -> list[NodeHealth]:
        """Per-node health; peak RSS from the node's last heartbeat."""
        return [self._health(n, n.peak_rss_mb, n.detail) for n in self._nodes.values()]

    def node_pids(self) -> dict[str, int | None]:
        """Current OS pid of each node process (for CPU-time attribution with psutil)."""
        return {name: n.pid if n.up else None for name, n in self._nodes.items()}
