"""Boundary planning: split a chain of units into contiguous segments (paper Section III.E).

The paper says boundaries are chosen "to balance workload across nodes while minimizing
communication overhead". Two objectives are offered, both solved exactly by dynamic programming
over cut positions (never greedily):

``bottleneck`` (default)
    ``max_i(share_i / capacity_i) + comm_weight x bytes_cut``. ``share_i`` is segment i's
    fraction of the model's total cost (costs are normalised to sum to 1), so ``1.0`` means "the
    whole model on a node of capacity 1.0" and the first term is the pipeline's slowest stage in
    those units. ``comm_weight`` is in the same unit per byte sent across all cuts (for example
    ``ms_per_byte / whole_model_ms``). Segment i runs on node i: capacities are taken in the
    order given (:mod:`carbonedge.partition.placement` chooses the order).
``paper``
    The literal "balance workload": ``sum_i (share_i - 1/k)^2 + comm_weight x bytes_cut``,
    i.e. equal work per node whatever its capacity (the variance of the shares, times k).

Because the bottleneck objective mixes a maximum with a sum, the DP keeps, for every prefix and
segment count, the Pareto front of (largest load so far, bytes sent so far); the final objective
is increasing in both, so the optimum lies on the front. Cost: ``O(k n^2 x front)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from math import isfinite
from typing import Literal

from carbonedge.partition.errors import PartitionError

Objective = Literal["bottleneck", "paper"]
OBJECTIVES: tuple[Objective, ...] = ("bottleneck", "paper")


@dataclass(frozen=True)
class SegmentPlan:
    """One contiguous segment ``units[start:stop]`` assigned to the node at ``index``.

    Attributes:
        cost: summed unit cost (in the caller's cost unit).
        share: fraction of the model's total cost (0..1).
        capacity: the node's capacity (CPU quota; 1.0 = one full core).
        load: ``share / capacity``; 1.0 = the whole model's time on a capacity-1 node.
        bytes_out: activation bytes sent to the next segment (0 for the last one).
    """

    index: int
    start: int
    stop: int
    cost: float
    share: float
    capacity: float
    load: float
    bytes_out: int


@dataclass(frozen=True)
class Plan:
    """A partition of ``n`` units into ``len(segments)`` contiguous segments.

    Attributes:
        boundaries: start index of every segment but the first (the cut positions).
        bottleneck: largest segment load (see :class:`SegmentPlan`), dimensionless.
        comm_bytes: total activation bytes sent across all cuts per inference.
        objective: the objective's name; ``objective_value`` its minimised value.
    """

    segments: tuple[SegmentPlan, ...]
    boundaries: tuple[int, ...]
    bottleneck: float
    comm_bytes: int
    objective: Objective
    objective_value: float
    comm_weight: float


def _validate(
    costs: Sequence[float], capacities: Sequence[float], comm_bytes: Sequence[int]
) -> list[int]:
    n, k = len(costs), len(capacities)
    if n == 0:
        raise PartitionError("costs is empty: there are no units to partition")
    if k == 0:
        raise PartitionError("capacities is empty: at least one node is needed")
    if k > n:
        raise PartitionError(f"cannot split {n} units over {k} nodes: k={k} > units={n}")
    for i, cost in enumerate(costs):
        if not isfinite(cost) or cost < 0:
            raise PartitionError(f"costs[{i}] = {cost!r}: unit costs must be finite and >= 0")
    if sum(costs) <= 0:
        raise PartitionError("all unit costs are 0: nothing to balance")
    for i, capacity in enumerate(capacities):
        if not isfinite(capacity) or capacity <= 0:
            raise PartitionError(f"capacities[{i}] = {capacity!r}: capacity must be > 0")
    if len(comm_bytes) not in (n - 1, n):
        raise PartitionError(
            f"comm_bytes has {len(comm_bytes)} entries; expected {n - 1} (one per cut) or {n}"
        )
    for i, size in enumerate(comm_bytes):
        if size < 0:
            raise PartitionError(f"comm_bytes[{i}] = {size!r}: bytes must be >= 0")
    return [int(b) for b in comm_bytes[: n - 1]]


# A front entry: (largest load, bytes sent, previous cut m, index into the previous front).
_Entry = tuple[float, int, int, int]


def _pareto(entries: list[_Entry]) -> list[_Entry]:
    """Keep the entries not dominated in (load, bytes); ties keep the first found."""
    entries.sort(key=lambda e: (e[0], e[1]))
    front: list[_Entry] = []
    best_bytes: int | None = None
    for entry in entries:
        if best_bytes is None or entry[1] < best_bytes:
            front.append(entry)
            best_bytes = entry[1]
    return front


def _bottleneck_cuts(
    shares: list[float], prefix: list[float], caps: Sequence[float], cut_bytes: list[int], w: float
) -> list[int]:
    n, k = len(shares), len(caps)
    # fronts[i][j]: Pareto front for units[:j] on the first i nodes (i segments, all non-empty).
    fronts: list[list[list[_Entry]]] = [[[] for _ in range(n + 1)] for _ in range(k + 1)]
    fronts[0][0] = [(0.0, 0, -1, -1)]
    for i in range(1, k + 1):
        # Leave at least one unit for each of the k - i later nodes.
        for j in range(i, n - (k - i) + 1):
            candidates: list[_Entry] = []
            for m in range(i - 1, j):
                load = (prefix[j] - prefix[m]) / caps[i - 1]
                sent = cut_bytes[m - 1] if m > 0 else 0
                for p, (prev_load, prev_bytes, _, _) in enumerate(fronts[i - 1][m]):
                    candidates.append((max(prev_load, load), prev_bytes + sent, m, p))
            fronts[i][j] = _pareto(candidates)
    final = fronts[k][n]
    best = min(range(len(final)), key=lambda p: (final[p][0] + w * final[p][1], final[p][1]))
    cuts: list[int] = []
    j, p = n, best
    for i in range(k, 0, -1):
        _, _, m, p = fronts[i][j][p]
        if i > 1:
            cuts.append(m)
        j = m
    return cuts[::-1]


def _paper_cuts(prefix: list[float], k: int, cut_bytes: list[int], w: float) -> list[int]:
    n = len(prefix) - 1
    target = 1.0 / k
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[-1] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for i in range(1, k + 1):
        for j in range(i, n - (k - i) + 1):
            for m in range(i - 1, j):
                if best[i - 1][m] == inf:
                    continue
                sent = cut_bytes[m - 1] if m > 0 else 0
                value = best[i - 1][m] + (prefix[j] - prefix[m] - target) ** 2 + w * sent
                if value < best[i][j]:
                    best[i][j], back[i][j] = value, m
    cuts: list[int] = []
    j = n
    for i in range(k, 1, -1):
        j = back[i][j]
        cuts.append(j)
    return cuts[::-1]


def plan_from_boundaries(
    costs: Sequence[float],
    capacities: Sequence[float],
    comm_bytes: Sequence[int],
    boundaries: Sequence[int],
    *,
    comm_weight: float = 0.0,
    objective: Objective = "bottleneck",
) -> Plan:
    """Describe a given partition (cut positions ``boundaries``) with its loads and objective."""
    cut_bytes = _validate(costs, capacities, comm_bytes)
    n, k = len(costs), len(capacities)
    edges = [0, *boundaries, n]
    if len(boundaries) != k - 1 or any(a >= b for a, b in pairwise(edges)):
        raise PartitionError(
            f"boundaries {list(boundaries)} must be {k - 1} increasing cut positions in 1..{n - 1}"
        )
    total = float(sum(costs))
    segments = []
    for i, (start, stop) in enumerate(pairwise(edges)):
        cost = float(sum(costs[start:stop]))
        share = cost / total
        segments.append(
            SegmentPlan(
                index=i,
                start=start,
                stop=stop,
                cost=cost,
                share=share,
                capacity=float(capacities[i]),
                load=share / capacities[i],
                bytes_out=cut_bytes[stop - 1] if stop < n else 0,
            )
        )
    sent = sum(s.bytes_out for s in segments)
    bottleneck = max(s.load for s in segments)
    if objective == "bottleneck":
        value = bottleneck + comm_weight * sent
    else:
        value = sum((s.share - 1.0 / k) ** 2 for s in segments) + comm_weight * sent
    return Plan(
        segments=tuple(segments),
        boundaries=tuple(boundaries),
        bottleneck=bottleneck,
        comm_bytes=sent,
        objective=objective,
        objective_value=value,
        comm_weight=comm_weight,
    )


def plan_boundaries(
    costs: Sequence[float],
    capacities: Sequence[float],
    comm_bytes: Sequence[int],
    comm_weight: float = 0.0,
    objective: Objective = "bottleneck",
) -> Plan:
    """Split ``len(costs)`` units into ``len(capacities)`` non-empty contiguous segments.

    Args:
        costs: per-unit cost in forward order, any unit (Eq. 5, MACs, ms); normalised here.
        capacities: node capacities (CPU quota, 1.0 = one core); segment i runs on node i.
        comm_bytes: bytes sent when cutting after unit j, for j in ``0..n-2`` (a list of
            length n, such as every unit's output size, is accepted; its last entry is unused).
        comm_weight: objective units per byte sent (see the module docstring); >= 0.
        objective: ``"bottleneck"`` (capacity-aware, default) or ``"paper"`` (equal shares).

    Raises:
        PartitionError: empty costs, more nodes than units, a capacity <= 0, a negative or
            non-finite cost, bytes or weight, or an unknown objective.
    """
    cut_bytes = _validate(costs, capacities, comm_bytes)
    if not isfinite(comm_weight) or comm_weight < 0:
        raise PartitionError(f"comm_weight = {comm_weight!r}: must be finite and >= 0")
    if objective not in OBJECTIVES:
        raise PartitionError(f"objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    total = float(sum(costs))
    shares = [c / total for c in costs]
    prefix = [0.0, *accumulate(shares)]
    if objective == "bottleneck":
        cuts = _bottleneck_cuts(shares, prefix, capacities, cut_bytes, comm_weight)
    else:
        cuts = _paper_cuts(prefix, len(capacities), cut_bytes, comm_weight)
    return plan_from_boundaries(
        costs, capacities, comm_bytes, cuts, comm_weight=comm_weight, objective=objective
    )
