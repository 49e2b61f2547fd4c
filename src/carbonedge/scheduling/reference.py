"""Algorithm 1 written the straightforward way: the oracle for tests, the baseline for benchmarks.

It builds a :class:`Components` tuple per node and takes the dot product with the weights, the
way one would first write the paper's pseudocode. The fast path in :mod:`.policies` must agree
with it; it is not used per task.
"""

from __future__ import annotations

from collections.abc import Sequence

from carbonedge.scheduling.components import components, filter_reasons
from carbonedge.scheduling.state import NodeState, Task
from carbonedge.scheduling.weights import Weights

__all__ = ["reference_paper_select"]


def reference_paper_select(
    task: Task, nodes: Sequence[NodeState], weights: Weights, latency_threshold_ms: float
) -> tuple[NodeState | None, float]:
    """Algorithm 1, line by line: returns (best node or None, its Eq. 3 score or 0.0)."""
    best_score = 0.0
    best: NodeState | None = None
    w = weights.as_tuple()
    for n in nodes:
        if filter_reasons(n, task, latency_threshold_ms):
            continue
        c = components(n)
        score = sum(wx * x for wx, x in zip(w, c, strict=True))
        if score > best_score:
            best_score = score
            best = n
    return best, best_score
