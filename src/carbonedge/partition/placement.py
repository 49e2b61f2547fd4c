"""Carbon-aware placement: which node runs which segment, and where to cut.

This is the "energy-aware partitioning" the paper leaves for future work (Section V.A). For a
chain of units with cost shares, nodes with a capacity, grid intensity, power and PUE, and a
latency SLO, it minimises predicted gCO2 per inference subject to predicted latency <= SLO.

Prediction model (all per inference, batch as analysed):

- segment time ``t_s = share_s x whole_model_ms / capacity_node`` (ms), where
  ``whole_model_ms`` is the model's measured time on one full core (capacity 1.0);
- transfer time per cut ``bytes / bandwidth + link_latency_ms`` (ms);
- latency ``L = sum_s t_s + sum_cuts transfer`` (ms), a single request passing the pipeline;
- energy of a used node ``E = (t_s x power_w + (L - t_s) x idle_power_w) / 3.6e9`` (kWh; W x ms
  / 3.6e9 = kWh): active power while it computes, idle power while it waits for the others;
- carbon ``C = sum_nodes E x intensity_g_per_kwh x pue`` (Eq. 2), in g.

Unused nodes are not charged (they serve other requests or sleep). Network energy is not
modelled. Latency and carbon are both sums over segments and cuts once the set of used nodes is
fixed, so the search is exact: every ordered choice of 1..K nodes (``sum K!/(K-k)!`` orders), and
for each a DP over cut positions keeping the Pareto front of (latency, carbon).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, permutations
from math import isfinite

from carbonedge.accounting.units import MJ_PER_KWH
from carbonedge.partition.errors import PartitionError
from carbonedge.partition.planner import plan_boundaries


@dataclass(frozen=True)
class NodeProfile:
    """A node as the placement model sees it.

    Attributes:
        capacity: CPU capacity (quota; 1.0 = one full core), > 0.
        intensity_g_per_kwh: grid carbon intensity, gCO2/kWh.
        power_w: power drawn while computing at that capacity, W.
        idle_power_w: power drawn while waiting during an inference it takes part in, W.
        pue: power usage effectiveness (Eq. 2), >= 1.
    """

    name: str
    capacity: float
    intensity_g_per_kwh: float
    power_w: float
    idle_power_w: float = 0.0
    pue: float = 1.0


@dataclass(frozen=True)
class PlacedSegment:
    """Units ``[start, stop)`` on ``node``: predicted compute time (ms) and carbon (g)."""

    node: str
    start: int
    stop: int
    share: float
    compute_ms: float
    bytes_out: int
    energy_kwh: float
    carbon_g: float


@dataclass(frozen=True)
class PlacedPlan:
    """A placement: predicted single-request latency (ms) and carbon (g) per inference.

    ``bottleneck_ms`` is the slowest stage (compute or transfer), which bounds the pipeline's
    throughput at ``1000 / bottleneck_ms`` inferences per second.
    """

    segments: tuple[PlacedSegment, ...]
    latency_ms: float
    transfer_ms: float
    bottleneck_ms: float
    energy_kwh: float
    carbon_g: float

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(s.node for s in self.segments)


@dataclass(frozen=True)
class PlacementResult:
    """The carbon-optimal placement within the SLO, beside the balanced plan on all nodes."""

    chosen: PlacedPlan
    balanced: PlacedPlan
    slo_ms: float
    balanced_meets_slo: bool


@dataclass(frozen=True)
class LinkModel:
    """Network between nodes: ``bandwidth_bytes_per_s`` (> 0) and a fixed per-cut delay (ms)."""

    bandwidth_bytes_per_s: float = 125e6  # 1 Gbit/s
    latency_ms: float = 0.0

    def transfer_ms(self, size_bytes: int) -> float:
        return size_bytes / self.bandwidth_bytes_per_s * 1e3 + self.latency_ms


def _check_nodes(nodes: Sequence[NodeProfile]) -> None:
    if not nodes:
        raise PartitionError("no nodes given for placement")
    for node in nodes:
        if not isfinite(node.capacity) or node.capacity <= 0:
            raise PartitionError(f"node {node.name!r}: capacity = {node.capacity!r} must be > 0")
        for field, value in (
            ("intensity_g_per_kwh", node.intensity_g_per_kwh),
            ("power_w", node.power_w),
            ("idle_power_w", node.idle_power_w),
        ):
            if not isfinite(value) or value < 0:
                raise PartitionError(f"node {node.name!r}: {field} = {value!r} must be >= 0")
        if not isfinite(node.pue) or node.pue < 1.0:
            raise PartitionError(f"node {node.name!r}: pue = {node.pue!r} must be >= 1")


def evaluate(
    shares: Sequence[float],
    comm_bytes: Sequence[int],
    boundaries: Sequence[int],
    nodes: Sequence[NodeProfile],
    whole_model_ms: float,
    link: LinkModel,
) -> PlacedPlan:
    """Predict latency and carbon of running ``shares`` cut at ``boundaries`` on ``nodes``."""
    n = len(shares)
    edges = [0, *boundaries, n]
    raw = []
    for node, start, stop in zip(nodes, edges[:-1], edges[1:], strict=True):
        share = float(sum(shares[start:stop]))
        sent = int(comm_bytes[stop - 1]) if stop < n else 0
        raw.append((node, start, stop, share, share * whole_model_ms / node.capacity, sent))
    transfers = [link.transfer_ms(r[5]) for r in raw[:-1]]
    latency = sum(r[4] for r in raw) + sum(transfers)
    segments = []
    for node, start, stop, share, compute_ms, sent in raw:
        energy = (compute_ms * node.power_w + (latency - compute_ms) * node.idle_power_w) / (
            MJ_PER_KWH
        )
        carbon = energy * node.intensity_g_per_kwh * node.pue
        segments.append(
            PlacedSegment(node.name, start, stop, share, compute_ms, sent, energy, carbon)
        )
    return PlacedPlan(
        segments=tuple(segments),
        latency_ms=latency,
        transfer_ms=sum(transfers),
        bottleneck_ms=max([s.compute_ms for s in segments] + transfers),
        energy_kwh=sum(s.energy_kwh for s in segments),
        carbon_g=sum(s.carbon_g for s in segments),
    )


# Front entry: (latency ms, carbon g, previous cut m, index into the previous front).
_Entry = tuple[float, float, int, int]


def _front(entries: list[_Entry]) -> list[_Entry]:
    entries.sort(key=lambda e: (e[0], e[1]))
    kept: list[_Entry] = []
    for entry in entries:
        if not kept or entry[1] < kept[-1][1]:
            kept.append(entry)
    return kept


def _best_cuts(
    prefix: list[float],
    comm_bytes: Sequence[int],
    order: Sequence[NodeProfile],
    whole_model_ms: float,
    link: LinkModel,
    slo_ms: float,
) -> tuple[float, list[int]] | None:
    """Least-carbon cut positions for nodes in ``order`` within ``slo_ms``, or None."""
    n, k = len(prefix) - 1, len(order)
    # With the set of nodes fixed, idle power adds (sum of idle carbon rates) x latency:
    # fold it into a per-ms carbon rate so that carbon stays additive.
    idle_rate = sum(nd.idle_power_w * nd.intensity_g_per_kwh * nd.pue for nd in order)
    idle_rate /= MJ_PER_KWH
    fronts: list[list[list[_Entry]]] = [[[] for _ in range(n + 1)] for _ in range(k + 1)]
    fronts[0][0] = [(0.0, 0.0, -1, -1)]
    for i in range(1, k + 1):
        node = order[i - 1]
        rate = (node.power_w - node.idle_power_w) * node.intensity_g_per_kwh * node.pue
        rate /= MJ_PER_KWH
        for j in range(i, n - (k - i) + 1):
            candidates: list[_Entry] = []
            for m in range(i - 1, j):
                t = (prefix[j] - prefix[m]) * whole_model_ms / node.capacity
                hop = link.transfer_ms(int(comm_bytes[m - 1])) if m > 0 else 0.0
                for p, (lat, carbon, _, _) in enumerate(fronts[i - 1][m]):
                    new_lat = lat + hop + t
                    if new_lat <= slo_ms:
                        new_carbon = carbon + t * rate + (t + hop) * idle_rate
                        candidates.append((new_lat, new_carbon, m, p))
            fronts[i][j] = _front(candidates)
    final = fronts[k][n]
    if not final:
        return None
    best = min(range(len(final)), key=lambda p: (final[p][1], final[p][0]))
    cuts: list[int] = []
    j, p = n, best
    for i in range(k, 0, -1):
        _, _, m, p = fronts[i][j][p]
        if i > 1:
            cuts.append(m)
        j = m
    return final[best][1], cuts[::-1]


def place(
    costs: Sequence[float],
    comm_bytes: Sequence[int],
    nodes: Sequence[NodeProfile],
    whole_model_ms: float,
    slo_ms: float,
    link: LinkModel | None = None,
    *,
    max_nodes: int | None = None,
) -> PlacementResult:
    """Least-carbon placement of the unit chain within ``slo_ms``, beside the balanced plan.

    Args:
        costs: per-unit cost in forward order (any unit; only shares matter).
        comm_bytes: bytes sent when cutting after unit j (length n-1 or n).
        nodes: candidate nodes; the balanced plan uses all of them in this order.
        whole_model_ms: measured latency of the whole model on capacity 1.0, ms.
        slo_ms: predicted single-request latency must not exceed this, ms.
        link: network model (default 1 Gbit/s, no fixed delay).
        max_nodes: use at most this many nodes (default: all).

    Raises:
        PartitionError: bad nodes or inputs, or no placement meets the SLO (the message gives
            the fastest predicted latency).
    """
    _check_nodes(nodes)
    link = link or LinkModel()
    if not isfinite(whole_model_ms) or whole_model_ms <= 0:
        raise PartitionError(f"whole_model_ms = {whole_model_ms!r}: must be > 0")
    if not slo_ms > 0:
        raise PartitionError(f"slo_ms = {slo_ms!r}: must be > 0")
    if link.bandwidth_bytes_per_s <= 0 or link.latency_ms < 0:
        raise PartitionError(f"link {link!r}: bandwidth must be > 0 and latency >= 0")
    k_nodes = min(len(nodes), len(costs))
    balanced_k = k_nodes
    balanced_plan = plan_boundaries(costs, [nd.capacity for nd in nodes[:balanced_k]], comm_bytes)
    total = float(sum(costs))
    shares = [c / total for c in costs]
    prefix = [0.0, *accumulate(shares)]
    balanced = evaluate(
        shares, comm_bytes, balanced_plan.boundaries, nodes[:balanced_k], whole_model_ms, link
    )
    best: tuple[float, tuple[NodeProfile, ...], list[int]] | None = None
    limit = min(k_nodes, max_nodes or k_nodes)
    for k in range(1, limit + 1):
        for order in permutations(nodes, k):
            found = _best_cuts(prefix, comm_bytes, order, whole_model_ms, link, slo_ms)
            if found is not None and (best is None or found[0] < best[0] - 1e-18):
                best = (found[0], order, found[1])
    if best is None:
        fastest = min(
            evaluate(shares, comm_bytes, [], [nd], whole_model_ms, link).latency_ms for nd in nodes
        )
        raise PartitionError(
            f"no placement meets slo_ms={slo_ms:g}; the fastest single node needs "
            f"{fastest:.2f} ms and the balanced plan {balanced.latency_ms:.2f} ms"
        )
    chosen = evaluate(shares, comm_bytes, best[2], best[1], whole_model_ms, link)
    return PlacementResult(
        chosen=chosen,
        balanced=balanced,
        slo_ms=slo_ms,
        balanced_meets_slo=balanced.latency_ms <= slo_ms,
    )
