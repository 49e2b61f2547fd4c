"""``carbonedge simulate``: a fleet over a year of real grids, every policy against the offline
optimum (docs/simulate.md). Module-level imports stay light."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "simulate",
        help="a fleet over a year of ENTSO-E grids: every policy against the optimum",
        description="Simulate the sites, client regions and network of SCENARIO (TOML) hour by "
        "hour over a year of real ENTSO-E intensities with each policy (the project's own "
        "scheduler and charge rule) and the offline optimum; print the policy table and write "
        "table.md, result.json, work_by_zone_hour.csv, fig_frontier.png and fig_work.png to --out.",
    )
    p.add_argument("scenario", help="scenario TOML (examples/simulate/europe.toml)")
    p.add_argument("--out", default="results/simulate", help="output folder")
    p.add_argument("--policies", help="comma-separated subset of the policies")
    p.add_argument("--days", type=int, help="simulate only the first DAYS days")
    p.add_argument("--seed", type=int, help="demand seed (overrides the file's)")
    p.add_argument("--json", action="store_true", help="print the table as JSON objects")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_simulate_cmd)


def run_simulate_cmd(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge simulate``."""
    from dataclasses import replace

    from carbonedge.errors import ConfigError
    from carbonedge.simulate import POLICY_NAMES, load_scenario, simulate, write_outputs
    from carbonedge.simulate.report import format_table

    scenario = load_scenario(args.scenario)
    if args.days is not None:
        if not 1 <= args.days <= scenario.days:
            raise ConfigError(f"--days: must be from 1 to {scenario.days}, got {args.days}")
        scenario = replace(scenario, days=args.days)
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    names = None
    if args.policies:
        names = tuple(n.strip() for n in args.policies.split(",") if n.strip())
        bad = [n for n in names if n not in POLICY_NAMES]
        if bad:
            raise ConfigError(f"--policies: unknown {bad[0]!r}; known: {', '.join(POLICY_NAMES)}")
    sim = simulate(scenario, names, progress=not args.no_progress and not args.json)
    written = write_outputs(sim, Path(args.out))
    if args.json:
        print(json.dumps(sim.to_json(), indent=2))
    else:
        print(format_table(sim.table))
        print(f"\nHow obtained: {sim.table[0].energy_method}.")
        print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0
