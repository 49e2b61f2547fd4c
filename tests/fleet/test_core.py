"""FleetCore, the bookkeeping both backends share, on an in-process fake transport (fast).

The real transports (processes + pipes, Ray actors) are tested in test_local.py and test_ray.py;
here the fake records what the core asks of a transport and completes tasks on demand.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from carbonedge.fleet.base import (
    DeployError,
    FleetBackend,
    FleetError,
    ModelPayload,
    ModelRef,
    ModuleBlob,
    NodeDownError,
    NodeHealth,
    RuntimeKind,
    TaskResult,
)
from carbonedge.fleet.core import FleetCore, NodeHandle, deployment_key, memory_budget_bytes
from carbonedge.fleet.spec import FleetSpec, NodeSpec
from carbonedge.fleet.telemetry import NodeTelemetry

from .conftest import small_fleet

MIB = 2**20


@dataclass(kw_only=True)
class _FakeNode(NodeHandle):
    sent: list[int] = field(default_factory=list)


class FakeFleet(FleetCore[_FakeNode]):
    """A transport that launches nothing: deploys answer at once with ``footprint_bytes``.

    Tasks time out after ``task_timeout_s``: long by default, so that the watchdog cannot fail
    a task that a test on a slow or busy host has not completed yet; short where a test wants
    the timeout.
    """

    def __init__(
        self,
        spec: FleetSpec,
        *,
        restart: bool = False,
        hang: bool = False,
        task_timeout_s: float = 120.0,
    ) -> None:
        super().__init__(
            spec,
            restart=restart,
            task_timeout_s=task_timeout_s,
            start_timeout_s=5.0,
            watch_s=0.02,
        )
        self.footprint_bytes = 10 * MIB
        self.deploy_error: str | None = None
        self.hang = hang
        self.echo_on_release = False  # like a pipe's EOF: releasing a node reports it again
        self.launches: list[tuple[str, int]] = []
        self.released: list[tuple[str, float]] = []
        self.deploys: list[tuple[str, str, int]] = []

    def _prepare(self) -> None:
        pass

    def _new_node(self, spec: NodeSpec) -> _FakeNode:
        return _FakeNode(spec=spec, telemetry=NodeTelemetry(spec), enforcement="none")

    def _launch(self, node: _FakeNode, generation: int) -> None:
        self.launches.append((node.spec.name, generation))

    def _wait_ready(self, node: _FakeNode) -> None:
        node.pid = 1000 + node.generation

    def _send_deploy(
        self,
        node: _FakeNode,
        key: str,
        payload: ModelPayload,
        runtime: RuntimeKind,
        budget_bytes: int,
    ) -> Future[tuple[str, Any]]:
        self.deploys.append((node.spec.name, key, budget_bytes))
        fut: Future[tuple[str, Any]] = Future()
        if self.deploy_error is not None:
            fut.set_result(("err", self.deploy_error))
        else:
            fut.set_result(("ok", self.footprint_bytes))
        return fut

    def _send_probe(self, node: _FakeNode, duration_s: float) -> Future[tuple[float, float]]:
        fut: Future[tuple[float, float]] = Future()
        fut.set_result((node.spec.cpu_quota * duration_s, duration_s))
        return fut

    def _release(self, node: _FakeNode, grace_s: float) -> None:
        self.released.append((node.spec.name, grace_s))
        if self.echo_on_release:
            self._node_failed(node, node.generation, "process exited (EOF)")

    def _hang_reason(self, node: _FakeNode, now_s: float) -> str | None:
        return "hung: fake" if self.hang else None

    def submit(
        self, node: str, model_key: str, batch: Any, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        n = self._node(node)
        p = self._register(n, task_id or "t", model_key)
        if p.seq >= 0:
            n.sent.append(p.seq)
        return p.future

    def health(self) -> list[NodeHealth]:
        return [self._health(n, 300.0, n.detail) for n in self._nodes.values()]

    # test helpers
    def complete(self, node: str, seq: int, cpu_s: float = 0.01, exec_ms: float = 10.0) -> bool:
        n = self._node(node)
        p = self._finish(n, seq, cpu_s, exec_ms)
        if p is None:
            return False
        out = np.zeros((1, 2), np.float32)
        now = time.time()
        p.future.set_result(
            TaskResult(p.task_id, node, out, p.submitted_at, now, now, p.latency_ms, exec_ms, cpu_s)
        )
        return True

    def fail(self, node: str, reason: str, generation: int | None = None) -> None:
        n = self._node(node)
        self._node_failed(n, n.generation if generation is None else generation, reason)


def _wait(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_key_and_budget_helpers() -> None:
    assert deployment_key(ModelRef("mobilenet_v2"), "onnx") == "mobilenet_v2/onnx"
    assert deployment_key(ModuleBlob(b"x", "seg0"), "torch") == "seg0/torch"
    spec = small_fleet(1.0, memory_mb=100).nodes[0]
    node = NodeHandle(spec=spec, telemetry=NodeTelemetry(spec), enforcement="dilation")
    node.deployments = {"a": (ModelRef("a"), "torch", 30 * MIB), "b": (ModelRef("b"), "torch", 20)}
    assert memory_budget_bytes(node, "a") == 100 * MIB - 20  # its own footprint not counted
    assert memory_budget_bytes(node, "c") == 70 * MIB - 20


def test_deploy_submit_finish_and_telemetry() -> None:
    with FakeFleet(small_fleet(1.0, 0.5, memory_mb=100)) as fleet:
        assert isinstance(fleet, FleetBackend)
        key = fleet.deploy(ModelRef("m"), ["n0", "n1"])
        assert key == "m/torch"
        assert [b for _, _, b in fleet.deploys] == [100 * MIB, 100 * MIB]
        states = {s.name: s for s in fleet.node_states()}
        assert states["n0"].free_memory_mb == pytest.approx(90.0)
        fut = fleet.submit("n0", key, None, task_id="a")
        assert fleet.node_states()[0].tasks_in_flight == 1
        (seq,) = fleet._nodes["n0"].sent
        assert fleet.complete("n0", seq, cpu_s=0.02, exec_ms=20.0)
        result = fut.result(timeout=1)
        assert result.task_id == "a" and result.node == "n0" and result.latency_ms >= 0
        assert not fleet.complete("n0", seq), "a second result for one task must be dropped"
        state = fleet.node_states(key)[0]
        assert state.tasks_in_flight == 0 and state.avg_time_s == pytest.approx(0.02)
        with pytest.raises(FleetError, match="not deployed on node 'n1'"):
            fleet.submit("n1", "other/torch", None)
        assert fleet.measure_speed(1.0) == {"n0": 1.0, "n1": 0.5}
        assert [h.models for h in fleet.health()] == [(key,), (key,)]
        assert fleet.health()[0].enforcement == "none"


def test_deploy_refusals_name_node_and_sizes() -> None:
    with FakeFleet(small_fleet(1.0, memory_mb=1)) as fleet:
        blob = ModuleBlob(b"x" * (2 * MIB), "big")
        with pytest.raises(DeployError, match=r"'big/torch' to node 'n0'.*2\.0 MiB.*1\.0 MiB"):
            fleet.deploy(blob, ["n0"])
        assert fleet.deploys == []  # refused before anything was sent
        fleet.deploy_error = "MemoryError: model needs about 5.0 MiB"
        with pytest.raises(DeployError, match="node 'n0': MemoryError"):
            fleet.deploy(ModelRef("m"), ["n0"])
        with pytest.raises(DeployError, match="runtime must be"):
            fleet.deploy(ModelRef("m"), ["n0"], "tflite")  # type: ignore[arg-type]
        assert fleet.health()[0].models == ()


def test_node_failure_fails_pending_once_and_restarts() -> None:
    with FakeFleet(small_fleet(1.0, 1.0), restart=True) as fleet:
        key = fleet.deploy(ModelRef("m"), ["n0", "n1"])
        futures = [fleet.submit("n0", key, None, task_id=f"t{i}") for i in range(3)]
        seqs = list(fleet._nodes["n0"].sent)
        generation = fleet._nodes["n0"].generation
        fleet.fail("n0", "process exited", generation)
        fleet.fail("n0", "second report of the same failure", generation)  # handled once
        for i, fut in enumerate(futures):
            with pytest.raises(NodeDownError, match=rf"'n0' is down \(process exited\).*'t{i}'"):
                fut.result(timeout=1)
        assert not fleet.complete("n0", seqs[0]), "a late result after fail-over is dropped"
        assert fleet.released == [("n0", 0.0)]
        _wait(lambda: fleet.health()[0].restarts == 1)
        health = fleet.health()[0]
        assert health.up and health.detail == "restarted after: process exited"
        assert fleet.launches.count(("n0", 2)) == 1 and len(fleet.launches) == 3
        assert fleet.deploys[-1][:2] == ("n0", key)  # its model was redeployed
        assert [s.tasks_in_flight for s in fleet.node_states()] == [0, 0]


def test_failure_reported_again_while_releasing_is_ignored() -> None:
    with FakeFleet(small_fleet(1.0)) as fleet:
        key = fleet.deploy(ModelRef("m"), ["n0"])
        fut = fleet.submit("n0", key, None)
        fleet.echo_on_release = True
        fleet.fail("n0", "hung: no heartbeat")
        with pytest.raises(NodeDownError, match="hung: no heartbeat"):
            fut.result(timeout=1)
        assert fleet.released == [("n0", 0.0)]
        assert fleet.health()[0].detail == "hung: no heartbeat"
        fleet.echo_on_release = False


def test_down_node_refuses_tasks_and_leaves_node_states() -> None:
    with FakeFleet(small_fleet(1.0, 1.0)) as fleet:
        key = fleet.deploy(ModelRef("m"), ["n0", "n1"])
        fleet.fail("n1", "gone")
        assert [s.name for s in fleet.node_states()] == ["n0"]
        with pytest.raises(NodeDownError, match="gone"):
            fleet.submit("n1", key, None).result(timeout=1)
        with pytest.raises(FleetError, match="'n1' is down"):
            fleet.deploy(ModelRef("x"), ["n1"])
        assert fleet.health()[1].up is False and fleet.health()[1].restarts == 0


def test_watchdog_task_timeout_and_transport_hang() -> None:
    with FakeFleet(small_fleet(1.0, 1.0), task_timeout_s=0.3) as fleet:
        key = fleet.deploy(ModelRef("m"), ["n0"])
        fut = fleet.submit("n0", key, None)
        with pytest.raises(NodeDownError, match="hung: task timed out"):
            fut.result(timeout=60)
    with FakeFleet(small_fleet(1.0), hang=True) as fleet:
        _wait(lambda: not fleet.health()[0].up)
        assert fleet.health()[0].detail == "hung: fake"


def test_stop_fails_pending_and_is_idempotent() -> None:
    fleet = FakeFleet(small_fleet(1.0))
    with fleet:
        key = fleet.deploy(ModelRef("m"), ["n0"])
        fut = fleet.submit("n0", key, None)
    with pytest.raises(NodeDownError, match="fleet stopped"):
        fut.result(timeout=1)
    fleet.stop()
    assert fleet.released == [("n0", 2.0), ("n0", 2.0)]
    assert fleet.node_states() == []
