"""Partitioner benchmark: MobileNetV2 on the paper's three nodes (quotas 1.0 / 0.6 / 0.4).

For each unit cost (Eq. 5, MACs, measured per-unit latency) it prints the balanced plan
(bottleneck objective), then runs every segment alone on one thread (no quota) and compares its
measured median latency with the prediction ``share x whole-model measured latency``. The whole
model and the segments are timed round-robin in the same loop, so machine load hits all alike.
It also times the planner (DP) and the carbon-aware placement search, in microseconds.

Run: .venv/bin/python benchmarks/bench_partition.py [--model NAME] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from carbonedge.models import build_model
from carbonedge.partition import (
    COST_KINDS,
    analyze,
    build_segments,
    place,
    plan_boundaries,
    unit_comm_bytes,
    unit_costs,
)
from carbonedge.partition.nodes import load_node_profiles


def _time_round_robin(
    modules: list[torch.nn.Module], inputs: list[torch.Tensor], repeats: int
) -> list[float]:
    """Median ms of each module on its input, interleaved over ``repeats`` rounds."""
    samples: list[list[float]] = [[] for _ in modules]
    with torch.inference_mode():
        for module, x in zip(modules, inputs, strict=True):
            module(x)  # warm-up
        for _ in range(repeats):
            for i, (module, x) in enumerate(zip(modules, inputs, strict=True)):
                start = time.perf_counter_ns()
                module(x)
                samples[i].append((time.perf_counter_ns() - start) / 1e6)
    return [statistics.median(s) for s in samples]


def _time_us(fn: object, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter_ns() - start) / 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = (1, 3, 224, 224)
    model = build_model(args.model)
    nodes = load_node_profiles(None)
    caps = [n.capacity for n in nodes]
    units = analyze(model, shape, repeats=args.repeats // 3 or 1)
    comm = unit_comm_bytes(units)
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    print(f"{args.model}: {len(units)} units; nodes {[(n.name, n.capacity) for n in nodes]}")
    print("seed-0 random weights; 1 thread; times are medians over interleaved runs; no quota")
    for kind in COST_KINDS:
        costs = unit_costs(units, kind)
        plan = plan_boundaries(costs, caps, comm)
        segments = build_segments(model, plan, input_shape=shape)
        inputs, x = [], x0
        with torch.inference_mode():
            for segment in segments:
                inputs.append(x)
                x = segment(x)
        whole_ms, *seg_ms = _time_round_robin([model, *segments], [x0, *inputs], args.repeats)
        print(f"\n== cost {kind}: cuts at {plan.boundaries}, bottleneck load {plan.bottleneck:.3f}")
        print(f"   whole model measured {whole_ms:.2f} ms (capacity 1.0)")
        print(
            f"   {'seg':>3} {'node':<12} {'units':<26} {'share':>6} {'pred ms':>8} "
            f"{'meas ms':>8} {'err %':>6} {'pred@quota':>10} {'meas@quota':>10}"
        )
        for s, measured in zip(plan.segments, seg_ms, strict=True):
            predicted = s.share * whole_ms
            span = f"{units[s.start].name}..{units[s.stop - 1].name}"
            print(
                f"   {s.index:>3} {nodes[s.index].name:<12} {span:<26} {s.share:>6.3f} "
                f"{predicted:>8.2f} {measured:>8.2f} {(predicted / measured - 1) * 100:>+6.1f} "
                f"{predicted / s.capacity:>10.2f} {measured / s.capacity:>10.2f}"
            )
        true_bottleneck = max(m / s.capacity for s, m in zip(plan.segments, seg_ms, strict=True))
        print(
            f"   predicted stage bottleneck {plan.bottleneck * whole_ms:.2f} ms; from measured "
            f"segment times {true_bottleneck:.2f} ms (ideal {whole_ms / sum(caps):.2f} ms)"
        )
    costs = unit_costs(units, "measured")
    big, big_comm = costs * 5, [1000] * (5 * len(costs) - 1)
    print("\n== planner and placement speed (pure Python)")
    plan_us = _time_us(lambda: plan_boundaries(costs, caps, comm, 1e-8))
    print(f"   plan_boundaries, {len(units)} units x 3 nodes: {plan_us:.0f} us")
    big_us = _time_us(lambda: plan_boundaries(big, caps, big_comm, 1e-8), 5)
    print(f"   plan_boundaries, {len(big)} units x 3 nodes: {big_us:.0f} us")
    whole = sum(costs)
    for slo in (1.2 * whole, 2.0 * whole, 3.0 * whole):
        result = place(costs, comm, nodes, whole, slo)
        place_us = _time_us(lambda s=slo: place(costs, comm, nodes, whole, s), 5)
        chosen, balanced = result.chosen, result.balanced
        saving = (1 - chosen.carbon_g / balanced.carbon_g) * 100
        print(
            f"   place SLO {slo:6.2f} ms ({place_us:.0f} us): chosen {'->'.join(chosen.nodes)} "
            f"{chosen.latency_ms:.2f} ms {chosen.carbon_g * 1e6:.3f} ugCO2 | balanced "
            f"{balanced.latency_ms:.2f} ms {balanced.carbon_g * 1e6:.3f} ugCO2 | "
            f"saving {saving:+.1f}% (power modelled)"
        )


if __name__ == "__main__":
    main()
