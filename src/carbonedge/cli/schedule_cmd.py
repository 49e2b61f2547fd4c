"""``carbonedge schedule``: one scheduling decision on node states read from a file."""

from __future__ import annotations

import argparse
from typing import Any

from carbonedge.scheduling.scheduler import POLICIES

EXIT_NO_NODE = 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this module's sub-commands to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "schedule",
        help="pick a node for one task from node states in a TOML/JSON file",
        description=(
            "Run the carbon-aware scheduler (paper Algorithm 1 and newer policies) once on the "
            "node states in FILE and print the decision with each node's score components. "
            "Exit status: 0 a node was chosen, 1 no node eligible, 2 bad input."
        ),
    )
    p.add_argument("--fleet", required=True, metavar="FILE", help="node states (.toml or .json)")
    p.add_argument(
        "--mode",
        default="balanced",
        choices=("performance", "balanced", "green"),
        help="Table I weights (default: balanced)",
    )
    p.add_argument(
        "--policy",
        default="paper",
        choices=POLICIES,
        help="scoring policy (default: paper)",
    )
    p.add_argument("--weights", metavar="wR,wL,wP,wB,wC", help="explicit weights; overrides --mode")
    p.add_argument("--slo-ms", type=float, help="constrained: predicted-latency SLO in ms")
    p.add_argument(
        "--carbon-budget-g", type=float, help="constrained: allowed predicted gCO2 per task"
    )
    p.add_argument(
        "--latency-threshold-ms",
        type=float,
        help="Algorithm 1's network-latency filter in ms (default 100)",
    )
    p.add_argument(
        "--task-memory-mb", type=float, help="the task's memory need in MB (overrides the file)"
    )
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(handler=run_schedule)


def run_schedule(args: argparse.Namespace) -> int:
    """Load the fleet file, decide once, print; returns the exit status."""
    from carbonedge.cli.checks import dumps, number
    from carbonedge.scheduling import DEFAULT_LATENCY_THRESHOLD_MS, Scheduler, Task, Weights
    from carbonedge.scheduling.fleet_file import load_fleet_file

    for option, value in (
        ("--slo-ms", args.slo_ms),
        ("--carbon-budget-g", args.carbon_budget_g),
        ("--latency-threshold-ms", args.latency_threshold_ms),
        ("--task-memory-mb", args.task_memory_mb),
    ):
        number("schedule", option, value, minimum=0, maximum=1e9)
    fleet = load_fleet_file(args.fleet)
    weights = Weights.parse(args.weights) if args.weights else args.mode
    threshold = (
        DEFAULT_LATENCY_THRESHOLD_MS
        if args.latency_threshold_ms is None
        else args.latency_threshold_ms
    )
    scheduler = Scheduler(
        args.policy,
        weights,
        latency_threshold_ms=threshold,
        slo_ms=args.slo_ms,
        carbon_budget_g=args.carbon_budget_g,
    )
    task = fleet.task if fleet.task is not None else Task("task")
    if args.task_memory_mb is not None:
        task = Task(task.task_id, args.task_memory_mb, task.cpu)
    decision = scheduler.select(task, fleet.nodes)
    explanation = decision.explain()
    if args.json:
        print(dumps(explanation.to_dict()))
    else:
        w = scheduler.weights
        source = "--weights" if args.weights else f"mode {args.mode}"
        print(
            f"policy {scheduler.policy}, weights wR={w.w_r:g} wL={w.w_l:g} wP={w.w_p:g} "
            f"wB={w.w_b:g} wC={w.w_c:g} ({source}), task {task.task_id!r} "
            f"({task.memory_mb:g} MB, {task.cpu:g} CPU)"
        )
        if decision.node is None:
            print("decision: no node eligible (reasons below)")
        else:
            what = "predicted gCO2" if scheduler.policy == "constrained" else "score"
            flags = "".join(
                f", {flag}"
                for flag, on in (
                    ("SLO MISS", decision.slo_miss),
                    ("OVER BUDGET", decision.budget_miss),
                )
                if on
            )
            print(f"decision: {decision.node} ({what} {decision.score:.6g}{flags})")
        if scheduler.policy == "normalized":
            print("components shown min-max normalised over the eligible nodes")
        print(explanation.table())
    return 0 if decision.node is not None else EXIT_NO_NODE
