"""Time per scheduling decision at 3, 100, 1,000 and 10,000 nodes, for each policy.

Three implementations are measured side by side in one run, on the same random fleet:

- naive:  Algorithm 1 written straightforwardly over NodeState objects (a Components tuple and a
          dot product per node; carbonedge.scheduling.reference and two loops below);
- plain:  Scheduler.select(task, list_of_NodeState), the per-task hot path;
- numpy:  Scheduler.select(task, FleetArrays), the vectorised path.

Every timed call is checked to choose the same node. Figures are the best of several repeats
(least disturbed by other processes on the machine), in microseconds per decision.

    .venv/bin/python benchmarks/bench_scheduler.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import timeit
from collections.abc import Callable, Sequence
from functools import partial

from carbonedge.scheduling import (
    FleetArrays,
    NodeState,
    Scheduler,
    Task,
    Weights,
    components,
    filter_reasons,
    predicted_carbon_g,
    predicted_latency_ms,
    reference_paper_select,
)

SIZES = (3, 100, 1_000, 10_000)
POLICIES = ("paper", "normalized", "constrained")
THRESHOLD_MS = 100.0
SLO_MS = 800.0


def random_fleet(n: int, seed: int) -> list[NodeState]:
    """Nodes like the paper's three kinds, with random load, queue and telemetry.

    The 3-node fleet is the paper's (one node of each kind) with every node eligible, the most
    work per decision; larger fleets mix kinds and include filtered nodes (load, latency).
    """
    rng = random.Random(seed)
    kinds = ((1.0, 1024.0, 620.0), (0.6, 512.0, 530.0), (0.4, 512.0, 380.0))
    nodes = []
    for i in range(n):
        q, mem, intensity = kinds[i % 3] if n == 3 else rng.choice(kinds)
        load = rng.uniform(0.0, 0.7 if n == 3 else 0.9)
        nodes.append(
            NodeState(
                name=f"node-{i}",
                cpu_quota=q,
                memory_mb=mem,
                free_cpu=q * (1.0 - load),
                free_memory_mb=mem * rng.uniform(0.3, 1.0),
                load=load,
                latency_ms=rng.uniform(0.5, 5.0 if n == 3 else 120.0),
                avg_time_s=rng.uniform(0.25, 0.7) / q * 0.4,
                tasks_in_flight=rng.randint(0, 3),
                power_w=3.0 * q,
                intensity_g_per_kwh=intensity * rng.uniform(0.8, 1.2),
            )
        )
    return nodes


def naive_normalized(task: Task, nodes: Sequence[NodeState], w: Weights) -> str | None:
    eligible = [n for n in nodes if not filter_reasons(n, task, THRESHOLD_MS)]
    if not eligible:
        return None
    table = {n.name: components(n) for n in eligible}
    cols = list(zip(*table.values(), strict=True))
    lows = [min(c) for c in cols]
    gaps = [max(c) - lo for c, lo in zip(cols, lows, strict=True)]
    best, best_score = None, -float("inf")
    for name, comps in table.items():
        norm = [(x - lo) / g if g > 0 else 0.0 for x, lo, g in zip(comps, lows, gaps, strict=True)]
        score = sum(wx * x for wx, x in zip(w.as_tuple(), norm, strict=True))
        if score > best_score:
            best, best_score = name, score
    return best


def naive_constrained(task: Task, nodes: Sequence[NodeState]) -> str | None:
    eligible = [n for n in nodes if not filter_reasons(n, task, THRESHOLD_MS)]
    if not eligible:
        return None
    meeting = [n for n in eligible if predicted_latency_ms(n) <= SLO_MS]
    if meeting:
        return min(meeting, key=predicted_carbon_g).name
    return min(eligible, key=predicted_latency_ms).name


def best_us(fn: Callable[[], object], budget_s: float) -> float:
    """Best-of-5 microseconds per call, each repeat sized to about ``budget_s / 5``."""
    t0 = timeit.default_timer()
    fn()
    once = max(timeit.default_timer() - t0, 1e-7)
    number = max(1, int(budget_s / 5 / once))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def measure(
    policy: str, task: Task, nodes: list[NodeState], arrays: FleetArrays, budget_s: float
) -> tuple[float, float, float, str | None] | None:
    """(naive us, plain us, numpy us, chosen node), or None if the three disagree."""
    w = Weights(0.20, 0.20, 0.15, 0.15, 0.30)
    s = Scheduler(policy, w, latency_threshold_ms=THRESHOLD_MS, slo_ms=SLO_MS)
    naive: Callable[[], str | None]
    if policy == "paper":

        def naive() -> str | None:
            best, _ = reference_paper_select(task, nodes, w, THRESHOLD_MS)
            return None if best is None else best.name

    elif policy == "normalized":
        naive = partial(naive_normalized, task, nodes, w)
    else:
        naive = partial(naive_constrained, task, nodes)
    chosen = {naive(), s.select(task, nodes).node, s.select(task, arrays).node}
    if len(chosen) != 1:
        print(f"MISMATCH at {len(nodes)} nodes, {policy}: {chosen}", file=sys.stderr)
        return None
    return (
        best_us(naive, budget_s),
        best_us(partial(s.select, task, nodes), budget_s),
        best_us(partial(s.select, task, arrays), budget_s),
        chosen.pop(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing budget")
    args = parser.parse_args()
    budget_s = 0.1 if args.quick else 0.5
    print(f"python {platform.python_version()} on {platform.machine()}, best of 5 repeats")
    print(
        f"{'nodes':>6} {'policy':<12} {'naive us':>10} {'plain us':>10} {'numpy us':>10} "
        f"{'naive/plain':>11} {'naive/numpy':>11}  chosen"
    )
    task = Task("bench", memory_mb=60.0)
    for n in SIZES:
        nodes = random_fleet(n, seed=n)
        arrays = FleetArrays(nodes)
        eligible = sum(not filter_reasons(x, task, THRESHOLD_MS) for x in nodes)
        for policy in POLICIES:
            row = measure(policy, task, nodes, arrays, budget_s)
            if row is None:
                return 1
            t_naive, t_plain, t_numpy, chosen = row
            print(
                f"{n:>6} {policy:<12} {t_naive:>10.2f} {t_plain:>10.2f} {t_numpy:>10.2f} "
                f"{t_naive / t_plain:>10.1f}x {t_naive / t_numpy:>10.1f}x  {chosen} "
                f"({eligible} eligible)"
            )
    print("goals: <= 3 us per decision at 3 nodes (plain), <= 500 us at 10,000 nodes (numpy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
