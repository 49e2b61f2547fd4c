"""The fleet backend interface (paper III.A (D), Model Deployer) shared by all backends.

``LocalFleet`` (one OS process per node on this machine) and ``RayFleet`` (one actor per node of a
Ray cluster) implement :class:`FleetBackend`, sharing their bookkeeping through
``carbonedge.fleet.core.FleetCore``. Callers (dispatcher, experiments) never branch on the
concrete backend. Timestamps are ``time.time()`` seconds (wall clock, comparable across hosts up to
their clock skew); durations carry their unit in the name.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from carbonedge.errors import CarbonEdgeError
from carbonedge.fleet.spec import FleetSpec, NodeSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from carbonedge.fleet.telemetry import NodeState

    Array = npt.NDArray[np.float32]

RuntimeKind = Literal["torch", "onnx"]
# How a node's CPU quota is enforced: a real cgroup CPU quota, time dilation (the node sleeps
# (1/q - 1) x task CPU time), or "none" (a real device is its own limit; RayFleet only).
Enforcement = Literal["cgroup", "dilation", "none"]
EnforcementChoice = Literal["auto", "cgroup", "dilation"]

__all__ = [
    "DeployError",
    "Enforcement",
    "EnforcementChoice",
    "FleetBackend",
    "FleetError",
    "FleetSpec",
    "ModelPayload",
    "ModelRef",
    "ModuleBlob",
    "NodeDownError",
    "NodeHealth",
    "NodeSpec",
    "Pipeline",
    "RuntimeKind",
    "TaskResult",
]


class FleetError(CarbonEdgeError):
    """A fleet cannot start, deploy or run; the message names the node."""


class DeployError(FleetError):
    """A model cannot be deployed to a node (does not fit its memory, cannot be built, ...)."""


class NodeDownError(FleetError):
    """The node running a task died or hung; the task was not completed and may be retried."""

    def __init__(self, node: str, task_id: str, reason: str) -> None:
        super().__init__(f"node {node!r} is down ({reason}); task {task_id!r} not completed")
        self.node = node
        self.task_id = task_id
        self.reason = reason


@dataclass(frozen=True)
class ModelRef:
    """A registry model built on the node itself: ``carbonedge.models.build_model(name, ...)``."""

    name: str
    weights: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class ModuleBlob:
    """A torch module serialised with ``torch.save`` (segments, user models).

    ``input_shape`` is the shape of one batch it expects, e.g. ``(1, 32, 112, 112)`` for a middle
    segment; it is used for the ONNX export and for the activation-memory estimate.
    """

    data: bytes = field(repr=False)
    label: str
    input_shape: tuple[int, ...] = (1, 3, 224, 224)


ModelPayload = ModelRef | ModuleBlob


@dataclass(frozen=True)
class TaskResult:
    """One completed task.

    ``latency_ms``: submit to result, as seen by the caller. ``exec_ms``: wall time of the
    inference on the node including quota throttling (cgroup) or dilation sleep. ``cpu_s``: CPU
    seconds the node's process spent in the inference (``time.process_time`` delta), the input of
    CPU-time attribution. ``attempts``: 1 + the number of re-dispatches after node faults.
    Timestamps are ``time.time()`` seconds.
    """

    task_id: str
    node: str
    output: Array = field(repr=False)
    submitted_at: float
    started_at: float
    finished_at: float
    latency_ms: float
    exec_ms: float
    cpu_s: float
    attempts: int = 1
    model_key: str = ""


@dataclass(frozen=True)
class Pipeline:
    """A partitioned model deployed as stages: ``stages[i] = (node, model_key)`` in order."""

    stages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NodeHealth:
    """What ``fleet check`` prints per node.

    ``enforcement``: how the CPU quota is enforced (``"cgroup"``, ``"dilation"``, or ``"none"``
    for a real device that is its own limit). ``peak_rss_mb``: peak resident memory (MiB) of
    the node's process. ``over_memory``: peak RSS exceeded ``memory_mb``. ``restarts``: how many
    times the node was restarted after a fault.
    """

    name: str
    up: bool
    enforcement: Enforcement
    pid: int | None
    peak_rss_mb: float
    memory_mb: int
    over_memory: bool
    restarts: int
    models: tuple[str, ...]
    detail: str = ""


@runtime_checkable
class FleetBackend(Protocol):
    """A fleet of edge nodes that runs inference tasks (paper III.A (D), III.F).

    Context manager: ``__enter__`` starts the nodes, ``__exit__`` stops them (no orphans).
    """

    @property
    def spec(self) -> FleetSpec: ...

    def deploy(
        self,
        model: ModelPayload,
        nodes: Sequence[str],
        runtime: RuntimeKind = "torch",
        *,
        key: str | None = None,
    ) -> str:
        """Deploy ``model`` on every node in ``nodes`` (kept warm); returns its model key.

        Raises :class:`DeployError` if it does not fit a node's memory or cannot be built.
        """
        ...

    def submit(
        self, node: str, model_key: str, batch: Array, *, task_id: str | None = None
    ) -> Future[TaskResult]:
        """Run ``model_key`` on ``batch`` on ``node``; fails with NodeDownError on a node fault."""
        ...

    def node_states(self, model_key: str | None = None) -> list[NodeState]:
        """Telemetry of the nodes that are up, for the scheduler (cheap: microseconds).

        ``model_key``: the model the next task will run; ``avg_time_s`` is then that model's
        average execution time on each node that has run it.
        """
        ...

    def set_intensity(self, node: str, intensity_g_per_kwh: float) -> None:
        """The node's grid intensity now (gCO2/kWh), reported by the next ``node_states()``."""
        ...

    def health(self) -> list[NodeHealth]:
        """Per-node health, enforcement and memory, for every node (up or down)."""
        ...

    def stop(self) -> None:
        """Stop every node; idempotent."""
        ...

    def __enter__(self) -> FleetBackend: ...

    def __exit__(self, *exc: object) -> None: ...
