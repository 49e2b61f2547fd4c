"""``carbonedge partition``: layer costs, balanced boundaries and carbon-aware placement."""

from __future__ import annotations

import argparse
import math
from typing import Any

from carbonedge.cli.checks import dumps, number
from carbonedge.errors import ConfigError
from carbonedge.partition.units import COST_KINDS


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this module's sub-commands to the ``carbonedge`` parser."""
    parser = subparsers.add_parser(
        "partition",
        help="split a model into segments for several nodes (Eq. 5, Section III.E)",
        description="Analyse a model's cut-able units, split them over nodes minimising the "
        "bottleneck (plus optional communication), and optionally place them for least carbon "
        "within a latency SLO. Without --nodes or --fleet: the paper's three nodes.",
    )
    parser.add_argument("--model", default="mobilenet_v2", help="model name (default %(default)s)")
    parser.add_argument("--weights", default=None, help="state_dict file for the model")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--nodes",
        default=None,
        help="N equal nodes of capacity 1.0, or comma-separated capacities (1.0,0.6,0.4)",
    )
    target.add_argument("--fleet", default=None, help="fleet TOML file ([[nodes]] tables)")
    parser.add_argument("--cost", choices=COST_KINDS, default="eq5", help="unit cost")
    parser.add_argument(
        "--comm-weight",
        type=float,
        default=0.0,
        help="objective per byte sent across cuts (1.0 = whole model on 1.0 CPU)",
    )
    parser.add_argument("--objective", choices=("bottleneck", "paper"), default="bottleneck")
    parser.add_argument("--slo-ms", type=float, default=None, help="place for least carbon")
    parser.add_argument(
        "--bandwidth-mbps", type=float, default=1000.0, help="link bandwidth, Mbit/s"
    )
    parser.add_argument("--link-latency-ms", type=float, default=0.0, help="delay per cut, ms")
    parser.add_argument("--input-size", type=int, default=224, help="image side, pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per unit")
    parser.add_argument("--units", action="store_true", help="also print every unit")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=run_partition)


MAX_INPUT_SIZE_PX = 2048
"""Largest ``--input-size`` (image side, px): activations of a 2048x2048 image already take
hundreds of MiB per layer."""
MIN_INPUT_SIZE_PX = 16
MAX_NODES = 64
"""Most nodes ``--nodes`` may describe (the planner's table grows with units x nodes)."""
MAX_REPEATS = 1000
MAX_CAPACITY = 1e6


def _parse_nodes(text: str) -> list[float]:
    try:
        if "," not in text and "." not in text:
            if len(text.strip()) > 6:
                raise ValueError
            count = int(text)
            if count < 1:
                raise ValueError
            capacities = [1.0] * min(count, MAX_NODES + 1)
        else:
            capacities = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--nodes {text[:60]!r}: expected a node count (3) or capacities (1.0,0.6,0.4)"
        ) from None
    if len(capacities) > MAX_NODES:
        raise ConfigError(f"--nodes: at most {MAX_NODES} nodes, got {text[:60]!r}")
    for i, capacity in enumerate(capacities):
        if not (math.isfinite(capacity) and 0 < capacity <= MAX_CAPACITY):
            raise ConfigError(
                f"--nodes: capacities[{i}] = {capacity!r}: must be a finite number > 0 and "
                f"<= {MAX_CAPACITY:g}"
            )
    return capacities


def run_partition(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge partition``."""
    from carbonedge.models import build_model
    from carbonedge.partition.analysis import analyze, whole_model_ms
    from carbonedge.partition.nodes import equal_nodes, load_node_profiles
    from carbonedge.partition.placement import LinkModel, place
    from carbonedge.partition.planner import plan_boundaries
    from carbonedge.partition.report import (
        placement_lines,
        plan_table,
        to_json,
        units_table,
    )
    from carbonedge.partition.units import unit_comm_bytes, unit_costs

    for option, size, low, high in (
        ("--input-size", args.input_size, MIN_INPUT_SIZE_PX, MAX_INPUT_SIZE_PX),
        ("--repeats", args.repeats, 1, MAX_REPEATS),
    ):
        if not low <= size <= high:
            raise ConfigError(f"partition: {option} must be {low}..{high}, got {size}")
    number("partition", "--comm-weight", args.comm_weight, minimum=0, maximum=1e9)
    number("partition", "--slo-ms", args.slo_ms, above=0, maximum=1e9)
    number("partition", "--bandwidth-mbps", args.bandwidth_mbps, above=0, maximum=1e9)
    number("partition", "--link-latency-ms", args.link_latency_ms, minimum=0, maximum=1e9)
    if args.nodes is not None:
        nodes = equal_nodes(_parse_nodes(args.nodes))
    else:
        nodes = load_node_profiles(args.fleet)
    shape = (1, 3, args.input_size, args.input_size)
    model = build_model(args.model, weights=args.weights)
    units = analyze(model, shape, repeats=args.repeats)
    whole_ms = whole_model_ms(model, shape, repeats=args.repeats)
    costs, comm = unit_costs(units, args.cost), unit_comm_bytes(units)
    plan = plan_boundaries(
        costs, [n.capacity for n in nodes], comm, args.comm_weight, objective=args.objective
    )
    placement = None
    if args.slo_ms is not None:
        link = LinkModel(args.bandwidth_mbps * 1e6 / 8, args.link_latency_ms)
        placement = place(costs, comm, nodes, whole_ms, args.slo_ms, link)
    if args.json:
        out = to_json(
            model=args.model,
            cost=args.cost,
            units=units,
            plan=plan,
            nodes=nodes,
            whole_model_ms=whole_ms,
            placement=placement,
        )
        print(dumps(out))
        return 0
    print(
        f"{args.model}: {len(units)} units, cost {args.cost}, objective {args.objective}, "
        f"whole model {whole_ms:.2f} ms measured on 1 thread"
    )
    if args.units:
        print("\n".join(units_table(units)))
    print("\n".join(plan_table(plan, units, nodes, whole_ms)))
    if placement is not None:
        print("\n".join(placement_lines(placement)))
    return 0
