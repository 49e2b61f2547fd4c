"""An in-process fleet for the service's unit tests (no processes, no torch)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from carbonedge.fleet import FleetSpec, NodeDownError, NodeHealth, NodeState, TaskResult
from carbonedge.fleet.spec import parse_fleet


def fake_spec(n: int = 2) -> FleetSpec:
    nodes: list[dict[str, Any]] = [
        {
            "name": f"n{i}",
            "cpu_quota": 1.0,
            "memory_mb": 512,
            "intensity_g_per_kwh": 400 - 100 * i,
            "idle_w": 1.0,
            "max_w": 5.0,
        }
        for i in range(n)
    ]
    return parse_fleet({"nodes": nodes}, "fake-fleet")


class FakeFleet:
    """Answers every task at once with fixed logits; ``down`` nodes fail with NodeDownError.

    ``die_once``: nodes that fail their next task with NodeDownError, then are down.
    ``break_pipe``: nodes whose ``submit`` raises as LocalFleet's does when the node's pipe is
    closed by its dying node while the task is sent.
    """

    def __init__(self, spec: FleetSpec, classes: int = 1000) -> None:
        self._spec = spec
        self.down: set[str] = set()
        self.die_once: set[str] = set()
        self.break_pipe: set[str] = set()  # submit raises TypeError, the node is then down
        self.loads: dict[str, float] = {}
        self.submitted: list[str] = []
        self._seq = itertools.count()
        self._logits = np.linspace(0.0, 1.0, classes, dtype=np.float32)[None]

    @property
    def spec(self) -> FleetSpec:
        return self._spec

    def deploy(self, model: Any, nodes: Sequence[str], runtime: str = "torch", **_: Any) -> str:
        return "fake/torch"

    def submit(
        self, node: str, model_key: str, batch: Any, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        self.submitted.append(node)
        if node in self.break_pipe:
            self.down.add(node)
            raise TypeError("'NoneType' object cannot be interpreted as an integer")
        future: Future[TaskResult] = Future()
        if node in self.die_once or node in self.down:
            self.die_once.discard(node)
            self.down.add(node)
            future.set_exception(NodeDownError(node, task_id or "", "killed by the test"))
            return future
        now = time.time()
        future.set_result(
            TaskResult(
                task_id=task_id or f"t{next(self._seq)}",
                node=node,
                output=self._logits,
                submitted_at=now,
                started_at=now,
                finished_at=now + 0.01,
                latency_ms=12.0,
                exec_ms=10.0,
                cpu_s=0.01,
                model_key=model_key,
            )
        )
        return future

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        return [
            NodeState(
                name=n.name,
                cpu_quota=n.cpu_quota,
                memory_mb=n.memory_mb,
                free_cpu=n.cpu_quota * (1 - self.loads.get(n.name, 0.0)),
                free_memory_mb=n.memory_mb,
                load=self.loads.get(n.name, 0.0),
                latency_ms=1.0,
                avg_time_s=0.01,
                tasks_in_flight=0,
                power_w=3.0,
                intensity_g_per_kwh=n.intensity_g_per_kwh or 0.0,
            )
            for n in self._spec.nodes
            if n.name not in self.down
        ]

    def health(self) -> list[NodeHealth]:
        return [
            NodeHealth(
                n.name, n.name not in self.down, "none", None, 0.0, n.memory_mb, False, 0, ()
            )
            for n in self._spec.nodes
        ]

    def stop(self) -> None:
        pass

    def __enter__(self) -> FakeFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
