"""``carbonedge ledger``: summarise and export the emissions ledger (docs/carbon-monitor.md).

``carbonedge ledger summary`` prints tasks, energy and carbon per node and model (and run);
``carbonedge ledger export --format csv|emissions OUT`` writes the rows, or one
CodeCarbon-compatible ``emissions.csv`` line per run with its SCI
(:mod:`carbonedge.carbon.emissions_csv`). Both take ``--since``/``--until`` (ISO 8601, UTC if no
offset), ``--node``, ``--model``, ``--run`` and ``--tenant`` filters. The ledger is only read.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``ledger`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "ledger",
        help="summarise or export the emissions ledger",
        description="Read the emissions ledger that serve and reproduce write (never changes it).",
    )
    sub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    s = sub.add_parser("summary", help="tasks, energy and carbon by node and model")
    _filters(s)
    s.add_argument(
        "--by",
        choices=("node", "model", "run", "tenant"),
        nargs="+",
        default=["node", "model"],
        help="group by (default: node model)",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=_summary)
    e = sub.add_parser("export", help="write the rows as CSV, or emissions.csv lines per run")
    _filters(e)
    e.add_argument("out", type=Path, help="output file")
    e.add_argument(
        "--format",
        choices=("csv", "emissions"),
        default="csv",
        help="csv: one row per task; emissions: one CodeCarbon-compatible line per run",
    )
    e.set_defaults(handler=_export)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", type=Path, default=None, help="ledger file (default: the default)")
    p.add_argument("--since", default=None, help="tasks finished at or after (ISO 8601)")
    p.add_argument("--until", default=None, help="tasks finished before (ISO 8601)")
    p.add_argument("--node", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--run", default=None, help="run id")
    p.add_argument("--tenant", default=None)


def _when(flag: str, text: str | None) -> datetime | None:
    from carbonedge.errors import ConfigError

    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag} must be ISO 8601 (e.g. 2026-11-29T12:00Z), got {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _rows(args: argparse.Namespace) -> tuple[Path, list[Any]]:
    from carbonedge.carbon import EmissionsLedger
    from carbonedge.carbon.ledger import default_ledger_path
    from carbonedge.errors import ConfigError

    path = args.ledger or default_ledger_path()
    if not path.is_file():
        raise ConfigError(f"{path}: no ledger there (serve and reproduce write one; --ledger FILE)")
    with EmissionsLedger(path) as ledger:
        rows = ledger.query(
            since=_when("--since", args.since),
            until=_when("--until", args.until),
            node=args.node,
            model=args.model,
            run_id=args.run,
            tenant=args.tenant,
        )
    return path, rows


def _summary(args: argparse.Namespace) -> int:
    path, rows = _rows(args)
    columns = {"node": "node", "model": "model", "run": "run_id", "tenant": "tenant"}
    groups: dict[tuple[str, ...], list[Any]] = {}
    for r in rows:
        groups.setdefault(tuple(getattr(r, columns[b]) for b in args.by), []).append(r)
    out = []
    for key, members in sorted(groups.items()):
        energy = sum(r.energy_kwh for r in members)
        gco2 = sum(r.gco2 for r in members)
        out.append(
            {
                **dict(zip(args.by, key, strict=True)),
                "tasks": len(members),
                "energy_kwh": energy,
                "gco2": gco2,
                "gco2_per_task": gco2 / len(members),
                "mean_intensity_g_per_kwh": (
                    sum(r.intensity_g_per_kwh * r.energy_kwh for r in members) / energy
                    if energy > 0
                    else None
                ),
                "intensity_fallback_tasks": sum(1 for r in members if r.intensity_fallback),
                "energy_method": sorted({r.energy_method for r in members}),
                "attribution_method": sorted({r.attribution_method for r in members}),
            }
        )
    if args.json:
        print(json.dumps({"ledger": str(path), "tasks": len(rows), "groups": out}, indent=2))
        return 0
    print(f"{path}: {len(rows)} tasks")
    if not rows:
        return 0
    head = [*args.by, "tasks", "energy kWh", "gCO2", "gCO2/task", "fallback I"]
    lines = [
        [*(str(g[b]) for b in args.by), str(g["tasks"]), f"{g['energy_kwh']:.3e}",
         f"{g['gco2']:.4g}", f"{g['gco2_per_task']:.3e}", str(g["intensity_fallback_tasks"])]
        for g in out
    ]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    for line in (head, *lines):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)))
    methods = sorted({m for g in out for m in g["energy_method"]})
    attributions = sorted({m for g in out for m in g["attribution_method"]})
    print(f"energy: {'; '.join(methods)}; per task: {'; '.join(attributions)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from carbonedge.carbon.emissions_csv import write_emissions_csv
    from carbonedge.carbon.ledger import export_rows_csv

    path, rows = _rows(args)
    if args.format == "csv":
        n = export_rows_csv(rows, args.out)
        print(f"{n} rows from {path} written to {args.out}")
    else:
        lines = write_emissions_csv(args.out, rows)
        print(
            f"{len(lines)} run line(s) from {path} written to {args.out} "
            "(CodeCarbon-compatible emissions.csv, with each run's SCI)"
        )
    return 0
