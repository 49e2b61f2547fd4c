"""The three policies over a sequence of :class:`NodeState` in plain Python (the per-task hot path).

Each ``make_*`` function precomputes what does not change between decisions (weights, limits)
and returns a closure ``run(nodes, memory_mb, cpu) -> (index, value, slo_miss, budget_miss)``
with ``index == -1`` when no node is chosen. The closures read attributes straight into
locals and build no object per node: about 0.3 us per node on this machine (see
benchmarks/bench_scheduler.py). The formulas are those of :mod:`.components`, inlined with the same
order of floating-point operations, which :mod:`.vectorized` repeats for NumPy arrays: both paths
give bit-identical values and therefore the same choices, ties included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from carbonedge.accounting.units import J_PER_KWH, W_MS_PER_WH
from carbonedge.scheduling.components import LOAD_LIMIT
from carbonedge.scheduling.state import NodeState
from carbonedge.scheduling.weights import Weights

__all__ = [
    "Outcome",
    "PlainPolicy",
    "make_constrained",
    "make_fastest",
    "make_normalized",
    "make_paper",
]

#: (index of the chosen node or -1, its score or predicted carbon, slo_miss, budget_miss)
Outcome = tuple[int, float, bool, bool]
PlainPolicy = Callable[[Sequence[NodeState], float, float], Outcome]

_NAN = math.nan
_INF = math.inf


def make_paper(weights: Weights, latency_threshold_ms: float) -> PlainPolicy:
    """Algorithm 1 literally: filters of lines 3 and 6, Eq. 3 score, strict ``>`` from 0.

    Ties keep the first node in the given order (line 13's strict ``>``); a node whose score is
    not above the initial ``best_score = 0`` is never chosen (line 1).
    """
    wr, wl, wp, wb, wc = weights.as_tuple()
    thr = float(latency_threshold_ms)
    limit = LOAD_LIMIT

    def run(nodes: Sequence[NodeState], mem: float, cpu: float) -> Outcome:
        best = 0.0
        best_i = -1
        i = -1
        for n in nodes:
            i += 1
            load = n.load
            if load > limit or n.latency_ms > thr:
                continue
            fm = n.free_memory_mb
            fc = n.free_cpu
            if fm < mem or fc < cpu:
                continue
            t = n.avg_time_s
            s = (
                wr * (0.5 * (fc / n.cpu_quota + fm / n.memory_mb))
                + wl * (1.0 - load)
                + wp * (1.0 / (1.0 + t))
                + wb * (1.0 / (1.0 + 2.0 * n.tasks_in_flight))
                + wc
                * (1.0 / (1.0 + n.intensity_g_per_kwh * (n.power_w * (t * 1000.0) / W_MS_PER_WH)))
            )
            if s > best:
                best = s
                best_i = i
        if best_i < 0:
            return -1, _NAN, False, False
        return best_i, best, False, False

    return run


def make_normalized(weights: Weights, latency_threshold_ms: float) -> PlainPolicy:
    """Per-decision min-max normalisation of each component over the eligible nodes.

    Component ``x`` of node ``n`` becomes ``(x_n - min) / (max - min)``; a component equal on all
    eligible nodes becomes 0 for all (it carries no information). The score is
    ``sum_c w_c / (max_c - min_c) x (x_c - min_c)``, best first in order; any eligible node
    can win (there is no initial ``best_score = 0`` here).
    """
    wr, wl, wp, wb, wc = weights.as_tuple()
    thr = float(latency_threshold_ms)
    limit = LOAD_LIMIT

    def run(nodes: Sequence[NodeState], mem: float, cpu: float) -> Outcome:
        # One pass computes the components and their running minima and maxima; a second pass
        # over the eligible rows scores them. No zip/min/max calls: this is the per-task path.
        rows: list[tuple[int, float, float, float, float, float]] = []
        append = rows.append
        lr = ll = lp = lb = lc = _INF
        hr = hl = hp = hb = hc = -_INF
        i = -1
        for n in nodes:
            i += 1
            load = n.load
            if load > limit or n.latency_ms > thr:
                continue
            fm = n.free_memory_mb
            fc = n.free_cpu
            if fm < mem or fc < cpu:
                continue
            t = n.avg_time_s
            r = 0.5 * (fc / n.cpu_quota + fm / n.memory_mb)
            ld = 1.0 - load
            p = 1.0 / (1.0 + t)
            b = 1.0 / (1.0 + 2.0 * n.tasks_in_flight)
            c = 1.0 / (1.0 + n.intensity_g_per_kwh * (n.power_w * (t * 1000.0) / W_MS_PER_WH))
            append((i, r, ld, p, b, c))
            if r < lr:
                lr = r
            if r > hr:
                hr = r
            if ld < ll:
                ll = ld
            if ld > hl:
                hl = ld
            if p < lp:
                lp = p
            if p > hp:
                hp = p
            if b < lb:
                lb = b
            if b > hb:
                hb = b
            if c < lc:
                lc = c
            if c > hc:
                hc = c
        if not rows:
            return -1, _NAN, False, False
        if len(rows) == 1:
            return rows[0][0], 0.0, False, False
        gr = hr - lr
        kr = wr / gr if gr > 0.0 else 0.0
        gl = hl - ll
        kl = wl / gl if gl > 0.0 else 0.0
        gp = hp - lp
        kp = wp / gp if gp > 0.0 else 0.0
        gb = hb - lb
        kb = wb / gb if gb > 0.0 else 0.0
        gc = hc - lc
        kc = wc / gc if gc > 0.0 else 0.0
        best = -_INF
        best_i = -1
        for j, sr, sl, sp, sb, sc in rows:
            s = kr * (sr - lr) + kl * (sl - ll) + kp * (sp - lp) + kb * (sb - lb) + kc * (sc - lc)
            if s > best:
                best = s
                best_i = j
        return best_i, best, False, False

    return run


def make_constrained(
    latency_threshold_ms: float, slo_ms: float, carbon_budget_g: float
) -> PlainPolicy:
    """Least predicted carbon among eligible nodes that meet the latency SLO and the budget.

    Predicted latency (ms) = ``latency_ms + (tasks_in_flight + 1) x avg_time_s x 1000``;
    predicted carbon (gCO2) = ``I x P x avg_time_s / 3.6e6``. Fallbacks, in order: SLO met but
    no node within the budget -> least carbon among those meeting the SLO, ``budget_miss``;
    no node meets the SLO -> the fastest eligible node, ``slo_miss`` (and ``budget_miss`` if it
    is over the budget). Ties keep the first node in order.
    """
    thr = float(latency_threshold_ms)
    slo = float(slo_ms)
    budget = float(carbon_budget_g)
    limit = LOAD_LIMIT

    def run(nodes: Sequence[NodeState], mem: float, cpu: float) -> Outcome:
        best_c = _INF
        best_i = -1
        over_c = _INF
        over_i = -1
        fast_l = _INF
        fast_i = -1
        fast_c = _NAN
        i = -1
        for n in nodes:
            i += 1
            if n.load > limit or n.latency_ms > thr:
                continue
            if n.free_memory_mb < mem or n.free_cpu < cpu:
                continue
            t = n.avg_time_s
            lat = n.latency_ms + (n.tasks_in_flight + 1.0) * (t * 1000.0)
            c = n.intensity_g_per_kwh * (n.power_w * t / J_PER_KWH)
            if lat < fast_l:
                fast_l = lat
                fast_i = i
                fast_c = c
            if lat <= slo:
                if c <= budget:
                    if c < best_c:
                        best_c = c
                        best_i = i
                elif c < over_c:
                    over_c = c
                    over_i = i
        if best_i >= 0:
            return best_i, best_c, False, False
        if over_i >= 0:
            return over_i, over_c, False, True
        if fast_i >= 0:
            return fast_i, fast_c, True, fast_c > budget
        return -1, _NAN, False, False

    return run


def make_fastest(latency_threshold_ms: float) -> PlainPolicy:
    """Carbon-agnostic: the eligible node with the least predicted latency (network, the tasks
    in flight and the task itself; see :func:`.components.predicted_latency_ms`).

    The baseline a latency-first load balancer gives: the nearest node while it is idle, the
    next one as it fills. Ties keep the first node in order.
    """
    thr = float(latency_threshold_ms)
    limit = LOAD_LIMIT

    def run(nodes: Sequence[NodeState], mem: float, cpu: float) -> Outcome:
        best = _INF
        best_i = -1
        i = -1
        for n in nodes:
            i += 1
            if n.load > limit or n.latency_ms > thr:
                continue
            if n.free_memory_mb < mem or n.free_cpu < cpu:
                continue
            lat = n.latency_ms + (n.tasks_in_flight + 1.0) * (n.avg_time_s * 1000.0)
            if lat < best:
                best = lat
                best_i = i
        if best_i < 0:
            return -1, _NAN, False, False
        return best_i, best, False, False

    return run
