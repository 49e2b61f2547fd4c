"""The offline optimum: the least carbon any placement could reach, with perfect knowledge.

Constraints, those every policy is held to: a request goes to a site within Algorithm 1's
latency threshold of its region; no site-hour takes more than its capacity (all its nodes at
100%); a deferrable request runs between its arrival and its deadline, an interactive one in
its hour. The SLO optimum also keeps every interactive request within the SLO on an idle node
(round trip + service time <= SLO) wherever some site can; it bounds the policies held to
the SLO, the plain optimum bounds all.

Exact argument first: without capacity limits, each request's best option is its cheapest
allowed (site, hour), and if those choices fit every capacity they are optimal. Days whose
choices do not fit are solved as a linear program (HiGHS) over that day's arrivals, with
every site-hour's full capacity: a relaxation (another day's requests may use the same
hours), so the total is still a lower bound, and exact when no capacity binds across days.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linprog

from carbonedge.simulate.world import World

__all__ = ["Optimum", "solve_optimum"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Optimum:
    """``work`` and ``carbon`` (S, H) of the optimal placement; ``lp_days`` days needed the
    LP; ``unserved`` requests did not fit any allowed capacity."""

    name: str
    work: Array
    carbon: Array
    lp_days: int
    unserved: float
    wall_s: float


def _allowed(world: World, slo: bool) -> npt.NDArray[np.bool_]:
    """(R, S) sites an interactive request of each region may use."""
    sc = world.scenario
    near = world.rtt <= sc.latency_threshold_ms
    if not slo:
        return near
    service_ms = world.site_array("service_s") * 1000.0
    fast = near & (world.rtt + service_ms[None, :] <= sc.slo_ms)
    return np.where(fast.any(axis=1, keepdims=True), fast, near)


def solve_optimum(world: World, *, slo: bool, same_as: Optimum | None = None) -> Optimum:
    """The optimum (``slo``: the SLO optimum) of ``world``; see the module docstring.
    ``same_as``: the other optimum, reused when the SLO excludes no site the threshold allows."""
    started = time.perf_counter()
    sc = world.scenario
    cost = world.cost_g()  # (S, H) gCO2 per request
    allowed = _allowed(world, slo)
    reach = world.rtt <= sc.latency_threshold_ms
    name = "optimum (SLO)" if slo else "optimum"
    if same_as is not None and np.array_equal(allowed, _allowed(world, not slo)):
        return Optimum(name, same_as.work, same_as.carbon, same_as.lp_days, same_as.unserved, 0.0)
    cap = world.site_array("capacity_per_h") * np.array([s.nodes for s in sc.sites])
    work, unserved = _cheapest(world, cost, allowed, reach, skip=frozenset())
    over = work > cap[:, None] * (1.0 + 1e-12)
    lp_days = frozenset(int(h) // 24 for h in np.flatnonzero(over.any(axis=0)))
    if lp_days:
        work, unserved = _cheapest(world, cost, allowed, reach, skip=lp_days)
        for day in sorted(lp_days):
            unserved += _solve_day(world, day, cost, cap, allowed, reach, work)
    carbon = world.charge_g(work)
    return Optimum(name, work, carbon, len(lp_days), unserved, time.perf_counter() - started)


def _cheapest(
    world: World,
    cost: Array,
    allowed: npt.NDArray[np.bool_],
    reach: npt.NDArray[np.bool_],
    skip: frozenset[int],
) -> tuple[Array, float]:
    """Every request (but those arriving on the ``skip`` days) at its cheapest allowed option,
    capacity ignored: the (S, H) work and the requests with no allowed site."""
    sc = world.scenario
    n_sites, hours = cost.shape
    work = np.zeros((n_sites, hours))
    unserved = 0.0
    keep = np.array([h // 24 not in skip for h in range(hours)])
    for r in range(len(sc.regions)):
        sites = np.flatnonzero(allowed[r])
        demand = np.where(keep, world.interactive[r], 0)
        if len(sites):
            best = sites[np.argmin(cost[sites], axis=0)]  # (H,)
            np.add.at(work, (best, np.arange(hours)), demand)
        else:
            unserved += float(demand.sum())
        sites = np.flatnonzero(reach[r])
        late = np.flatnonzero(np.where(keep, world.deferrable[r], 0))
        if not len(sites):
            unserved += float(world.deferrable[r, late].sum())
            continue
        for h in map(int, late):
            block = cost[sites, h : world.last_hour(r, h) + 1]
            s, t = np.unravel_index(int(np.argmin(block)), block.shape)
            work[sites[s], h + t] += world.deferrable[r, h]
    return work, unserved


def _solve_day(
    world: World,
    day: int,
    cost: Array,
    cap: Array,
    allowed: npt.NDArray[np.bool_],
    reach: npt.NDArray[np.bool_],
    work: Array,
) -> float:
    """Place the arrivals of ``day`` by an LP into ``work`` (in place); return the unserved."""
    sc = world.scenario
    n_sites, hours = cost.shape
    first, end = 24 * day, min(24 * day + 24, hours)
    columns: list[tuple[int, int, int]] = []  # (demand row, site, hour)
    demand: list[float] = []
    for h in range(first, end):
        for r in range(len(sc.regions)):
            n = float(world.interactive[r, h])
            if n:
                columns.extend((len(demand), int(s), h) for s in np.flatnonzero(allowed[r]))
                demand.append(n)
            n = float(world.deferrable[r, h])
            if n:
                columns.extend(
                    (len(demand), int(s), t)
                    for s in np.flatnonzero(reach[r])
                    for t in range(h, world.last_hour(r, h) + 1)
                )
                demand.append(n)
    if not demand:
        return 0.0
    rows, site, hour = (np.array(v, dtype=np.int64) for v in zip(*columns, strict=True))
    n_rows, n_x = len(demand), len(columns)
    span = min(end + 24, hours) - first  # the hours this day's requests can reach
    penalty = 10.0 * float(cost.max()) + 1.0  # per unserved request: never cheaper than a site
    c = np.concatenate([cost[site, hour], np.full(n_rows, penalty)])
    x_cols = np.arange(n_x)
    eq = sparse.hstack(
        [sparse.csr_matrix((np.ones(n_x), (rows, x_cols)), shape=(n_rows, n_x)),
         sparse.identity(n_rows, format="csr")]
    )  # fmt: skip
    ub = sparse.hstack(
        [sparse.csr_matrix((np.ones(n_x), (site * span + hour - first, x_cols)),
                           shape=(n_sites * span, n_x)),
         sparse.csr_matrix((n_sites * span, n_rows))]
    )  # fmt: skip
    result = linprog(c, A_ub=ub, b_ub=np.repeat(cap, span), A_eq=eq, b_eq=demand,
                     bounds=(0, None), method="highs")  # fmt: skip
    if result.status != 0:  # pragma: no cover - the slack keeps the LP feasible
        raise RuntimeError(f"optimum LP for day {day} failed: {result.message}")
    np.add.at(work, (site, hour), result.x[:n_x])
    return float(result.x[n_x:].sum())
