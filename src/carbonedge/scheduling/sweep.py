"""Weight sweep of wC (paper Fig. 3): which node wins as the carbon weight grows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from carbonedge.errors import ConfigError
from carbonedge.scheduling.scheduler import DEFAULT_LATENCY_THRESHOLD_MS, Scheduler
from carbonedge.scheduling.state import NodeState, Task
from carbonedge.scheduling.vectorized import FleetArrays
from carbonedge.scheduling.weights import Weights, resolve_weights

__all__ = ["SweepPoint", "sweep_wc"]


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One step of the sweep: the weights used and the node chosen (None: no node)."""

    w_c: float
    weights: Weights
    node: str | None
    score: float


def sweep_wc(
    nodes: Sequence[NodeState] | FleetArrays,
    base: str | Weights | Sequence[float] = "performance",
    steps: int = 21,
    *,
    policy: str = "paper",
    task: Task | None = None,
    latency_threshold_ms: float | None = DEFAULT_LATENCY_THRESHOLD_MS,
) -> tuple[SweepPoint, ...]:
    """Decide once per wC in ``linspace(0, 1, steps)`` with weights derived from ``base``.

    At each step wC takes the step's value and wR, wL, wP, wB keep ``base``'s proportions,
    scaled to sum to ``1 - wC`` (:meth:`Weights.with_carbon`). At wC = 1 only SC counts.
    ``task`` defaults to a task needing no memory or CPU.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"steps: must be an integer >= 2, got {steps!r}")
    base_w = resolve_weights(base)
    task = task if task is not None else Task("sweep")
    points = []
    for k in range(steps):
        w_c = k / (steps - 1)
        weights = base_w.with_carbon(w_c)
        d = Scheduler(policy, weights, latency_threshold_ms=latency_threshold_ms).select(
            task, nodes
        )
        points.append(SweepPoint(w_c=w_c, weights=weights, node=d.node, score=d.score))
    return tuple(points)
