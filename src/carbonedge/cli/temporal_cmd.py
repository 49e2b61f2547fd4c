"""``carbonedge temporal``: real grid days replayed time-compressed; static vs live intensity
scheduling vs live scheduling with deferrable tasks planned on a forecast, and the oracle bound
(docs/experiments.md).

Module-level imports stay light; the library is imported inside the handler.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from carbonedge.errors import ConfigError

#: The shipped fleet of the experiment (four nodes on four real grids of 2019).
DEFAULT_FLEET = "examples/temporal/fleet.toml"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``temporal`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "temporal",
        help="real grid days replayed time-compressed: static vs live vs deferral",
        description="Replay DAYS real days of the fleet's ENTSO-E intensities, each in DAY_S "
        "seconds, with tasks arriving evenly over the day under four policies (static: the "
        "mean of the 28 days before; live; live + deferrable tasks planned on a forecast "
        "fitted on the past; the same with perfect foresight, a bound); writes temporal.md, "
        "temporal.json, fig_temporal.png and the ledger to --out.",
    )
    p.add_argument("--fleet", default=DEFAULT_FLEET, help=f"fleet TOML (default {DEFAULT_FLEET})")
    p.add_argument("--out", default="results/temporal", help="output folder")
    p.add_argument("--quick", action="store_true", help="4 days, 24 tasks a day, 4 s a day")
    p.add_argument("--days", type=int, help="real days replayed, spread over the year (12)")
    p.add_argument("--tasks", type=int, help="tasks per grid day (default 48)")
    p.add_argument("--day-s", type=float, help="real seconds per grid day (default 6)")
    p.add_argument("--deadline-h", type=float, help="deferral allowed, grid hours (default 6)")
    p.add_argument("--forecaster", help="what deferral plans on (default ar): persistence, "
                   "daily, weekly, ar")  # fmt: skip
    p.add_argument("--model", default="mobilenet_v2")
    p.set_defaults(handler=run_temporal_cmd)


def run_temporal_cmd(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge temporal``."""
    from dataclasses import replace

    from carbonedge.experiments.temporal import (
        TemporalParams,
        render_markdown,
        run_temporal,
        write_temporal,
    )

    if not Path(args.fleet).is_file():
        raise ConfigError(f"--fleet: no such file {args.fleet!r}")
    params = TemporalParams.quick(args.fleet) if args.quick else TemporalParams(args.fleet)
    changes: dict[str, Any] = {"model": args.model}
    for name, value in (
        ("days", args.days),
        ("tasks_per_day", args.tasks),
        ("day_s", args.day_s),
        ("deadline_h", args.deadline_h),
        ("forecaster", args.forecaster),
    ):
        if value is not None:
            changes[name] = value
    params = replace(params, **changes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run_temporal(params, out)
    write_temporal(result, out)
    print(render_markdown(result))
    print(f"results written: {out}")
    return 0
