"""``carbonedge report`` (one HTML file of a reproduction) and ``carbonedge sci`` (the
Software Carbon Intensity of a ledger, optionally as an Impact Framework manifest).

Module-level imports stay light; the library is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from carbonedge.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``report`` and ``sci`` to the ``carbonedge`` parser."""
    rep = subparsers.add_parser(
        "report",
        help="one self-contained HTML file of a reproduction's results folder",
        description="Render RESULTS_DIR (a results/<digest>/ folder of `carbonedge reproduce`) "
        "as one HTML file: report.md (method, headline, Tables II, IV, V, overhead, sweep), "
        "the SCI of the ledger, every CSV table and every figure embedded. Built from the "
        "folder alone; no script, no network.",
    )
    rep.add_argument("results_dir", metavar="RESULTS_DIR", help="results/<digest>/ folder")
    rep.add_argument("--out", metavar="FILE", help="HTML file (default RESULTS_DIR/report.html)")
    rep.set_defaults(handler=run_report)

    sci = subparsers.add_parser(
        "sci",
        help="Software Carbon Intensity (ISO/IEC 21031) per inference of a ledger",
        description="SCI = (E x I + M) / R with R = one inference: E (kWh) and I (gCO2/kWh) "
        "per node from the ledger rows, M = TE x TS x RS from the fleet's embodied footprints "
        "(embodied_kgco2e, lifetime_years), each term labelled measured / modelled / sourced "
        "/ missing.",
    )
    sci.add_argument("--ledger", metavar="FILE", required=True, help="ledger.sqlite or ledger.csv")
    sci.add_argument(
        "--fleet", metavar="FILE", help="fleet TOML with embodied footprints (default: paper's)"
    )
    sci.add_argument("--run", metavar="RUN_ID", help="only the rows of this run id")
    sci.add_argument(
        "--share",
        metavar="NODE=F",
        action="append",
        default=[],
        help="resource share RS of a node's device, 0..1 (default 1; repeatable)",
    )
    sci.add_argument(
        "--manifest", metavar="OUT.yaml", help="also write an Impact Framework manifest"
    )
    sci.add_argument("--json", action="store_true", help="print one JSON object")
    sci.set_defaults(handler=run_sci)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge report``."""
    from carbonedge.experiments.html_report import write_html_report

    path = write_html_report(args.results_dir, args.out)
    print(f"report written: {path} ({path.stat().st_size / 1024:.0f} KiB, self-contained)")
    return 0


def _shares(items: list[str]) -> dict[str, float]:
    shares: dict[str, float] = {}
    for item in items:
        node, sep, value = item.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not sep or not node or not 0.0 <= share <= 1.0:
            raise ConfigError(f"sci: --share {item!r}: use NODE=F with F between 0 and 1")
        shares[node] = share
    return shares


def run_sci(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge sci``."""
    from carbonedge.carbon.impact_manifest import write_impact_manifest
    from carbonedge.carbon.ledger_file import read_ledger
    from carbonedge.carbon.sci import sci_score
    from carbonedge.fleet.spec import load_fleet

    rows = read_ledger(args.ledger)
    if args.run is not None:
        rows = [r for r in rows if r.run_id == args.run]
        if not rows:
            raise ConfigError(f"sci: {args.ledger} has no rows for run {args.run!r}")
    fleet = load_fleet(args.fleet)
    score = sci_score(
        rows,
        embodied_by_node={n.name: n.embodied for n in fleet.nodes},
        resource_share_by_node=_shares(args.share),
    )
    manifest = write_impact_manifest(score, args.manifest) if args.manifest else None
    if args.json:
        payload = score.as_dict() | {"fleet": fleet.source, "manifest": str(manifest or "")}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"SCI = (E x I + M) / R, R = one {score.functional_unit} (ISO/IEC 21031)")
    print(f"R   : {score.inferences} inferences ({score.inferences_label}: counted in the ledger)")
    print(f"E   : {score.energy_kwh:.6g} kWh ({score.energy_label}; PUE included)")
    print(f"I   : {score.intensity_g_per_kwh:.6g} gCO2/kWh ({score.intensity_label})")
    print(f"E x I: {score.operational_g:.6g} gCO2e")
    m_note = (
        f"; no footprint for {', '.join(score.missing_embodied)} in {fleet.source}: add "
        "embodied_kgco2e and lifetime_years to the fleet file"
        if score.missing_embodied
        else ""
    )
    print(f"M   : {score.embodied_g:.6g} gCO2e ({score.embodied_label}{m_note})")
    print(f"SCI : {score.sci_g_per_inference:.6g} gCO2e per {score.functional_unit}")
    print()
    print(f"{'node':<14}{'infer.':>9}{'E (kWh)':>12}{'E':>10}{'I (g/kWh)':>11}{'M (g)':>11}  M")
    for n in score.nodes:
        print(
            f"{n.node:<14}{n.inferences:>9.6g}{n.energy_kwh:>12.4g}{n.energy_label:>10}"
            f"{n.intensity_g_per_kwh:>11.4g}{n.embodied_g:>11.4g}  {n.embodied_label}"
        )
    if manifest is not None:
        print(f"\nImpact Framework manifest: {manifest} (run: if-run --manifest {manifest})")
    return 0
