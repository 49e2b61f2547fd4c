"""``carbonedge monitor`` and ``carbonedge intensity``: the Carbon Monitor's commands.

Module-level imports stay light; codecarbon is imported by the meter when it starts.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from typing import Any

from carbonedge.cli.checks import MAX_PUE, MAX_WAIT_S, dumps, number
from carbonedge.errors import ConfigError

SOURCES = ("static", "country", "csv", "entsoe", "electricitymaps", "watttime")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``monitor`` and ``intensity`` to the ``carbonedge`` parser."""
    mon = subparsers.add_parser(
        "monitor",
        help="run a command and report its host energy (kWh) and carbon (gCO2)",
        description="Run COMMAND under CodeCarbon's offline tracker (machine mode) and report "
        "duration, energy per component, carbon (Eq. 2) and how each figure was obtained. "
        "Intensity: --intensity if given, else --country's yearly average from CodeCarbon's "
        "data, else CodeCarbon's world average. Exits with COMMAND's exit code.",
    )
    mon.add_argument("--json", action="store_true", help="print one JSON object")
    mon.add_argument("--country", help="3-letter ISO code, e.g. FRA (intensity and metadata)")
    mon.add_argument("--region", help="region within the country (recorded by CodeCarbon)")
    mon.add_argument("--intensity", type=float, metavar="G_PER_KWH", help="static intensity")
    mon.add_argument("--pue", type=float, default=1.0, help="power usage effectiveness (1.0)")
    mon.add_argument("--ram-model", choices=("codecarbon", "paper"), default="codecarbon")
    mon.add_argument("--measure-power-secs", type=float, default=1.0, metavar="S")
    mon.add_argument("--force-cpu-power", type=float, metavar="W", help="CPU TDP for CodeCarbon")
    mon.add_argument("--force-ram-power", type=float, metavar="W", help="constant RAM power")
    mon.add_argument(
        "--baseline-s",
        type=float,
        default=2.0,
        metavar="S",
        help="measure the idle host for S seconds first (idle baseline); 0: lowest sample of "
        "the command's window",
    )
    mon.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    mon.set_defaults(handler=run_monitor)

    inten = subparsers.add_parser(
        "intensity",
        help="print a zone's carbon intensity in gCO2/kWh",
        description="Print the carbon intensity (gCO2/kWh) of a zone from one source.",
    )
    inten.add_argument("--source", choices=SOURCES, default="country")
    inten.add_argument("--zone", default="WORLD", help="zone, country ISO code or region")
    inten.add_argument("--at", help="ISO 8601 time (default: now)")
    inten.add_argument("--base-url", help="API base URL (electricitymaps, watttime)")
    inten.add_argument("--token", help="API token (or ELECTRICITYMAPS_TOKEN / WATTTIME_TOKEN)")
    inten.add_argument("--username", help="WattTime user (or WATTTIME_USERNAME)")
    inten.add_argument("--password", help="WattTime password (or WATTTIME_PASSWORD)")
    inten.add_argument("--file", help="CSV trace: timestamp, zone, gco2_per_kwh")
    inten.add_argument("--interpolation", choices=("step", "linear"), default="step")
    inten.add_argument("--value", type=float, metavar="G", help="static value (gCO2/kWh)")
    inten.add_argument("--year", type=int, help="entsoe: replay this year's data (e.g. 2019)")
    inten.add_argument("--factors", default="lifecycle", help="entsoe: lifecycle or direct")
    inten.add_argument("--timeout", type=float, default=5.0, metavar="S")
    inten.add_argument("--json", action="store_true", help="print one JSON object")
    inten.set_defaults(handler=run_intensity)


def run_monitor(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge monitor``."""
    from carbonedge.carbon import (
        CodeCarbonConfig,
        CodeCarbonMeter,
        CountryMixIntensity,
        IntensitySource,
        StaticIntensity,
        monitor_command,
    )

    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ConfigError("monitor: no command given (use: carbonedge monitor -- COMMAND ...)")
    from carbonedge.carbon.intensity import MAX_G_PER_KWH

    number("monitor", "--intensity", args.intensity, minimum=0, maximum=MAX_G_PER_KWH)
    number("monitor", "--pue", args.pue, minimum=1.0, maximum=MAX_PUE)
    number("monitor", "--measure-power-secs", args.measure_power_secs, above=0, maximum=3600)
    number("monitor", "--force-cpu-power", args.force_cpu_power, above=0, maximum=100_000)
    number("monitor", "--force-ram-power", args.force_ram_power, minimum=0, maximum=100_000)
    number("monitor", "--baseline-s", args.baseline_s, minimum=0, maximum=MAX_WAIT_S)
    country = args.country.upper() if args.country else None
    source: IntensitySource
    if args.intensity is not None:
        source, zone = (
            StaticIntensity(default=args.intensity, source="static(--intensity)"),
            (country or "host"),
        )
    else:
        source, zone = CountryMixIntensity(), country or "WORLD"
        source.intensity(zone)  # a bad --country fails before the run
    meter = CodeCarbonMeter(
        CodeCarbonConfig(
            country_iso_code=country,
            region=args.region,
            measure_power_secs=args.measure_power_secs,
            force_cpu_power_w=args.force_cpu_power,
            force_ram_power_w=args.force_ram_power,
            ram_model=args.ram_model,
        )
    )
    result = monitor_command(command, meter, source, zone, args.pue, baseline_s=args.baseline_s)
    if args.json:
        print(dumps(result.as_dict()))
        return result.exit_code
    r = result.reading
    i = result.intensity
    print(f"command      : {' '.join(command)} (exit {result.exit_code})")
    print(f"duration     : {r.duration_s:.2f} s, {len(r.samples)} power samples")
    for c in ("cpu", "gpu", "ram"):
        kwh = getattr(r, f"{c}_energy_kwh")
        print(
            f"{c} energy   : {kwh:.3e} kWh (mean {r.mean_power_w(c):.2f} W) "
            f"[{r.method.get(c, 'none')}]"
        )
    print(f"total energy : {r.energy_kwh:.3e} kWh")
    print(f"intensity    : {i.g_per_kwh:.1f} gCO2/kWh ({i.kind}, {i.source}, zone {i.zone})")
    print(f"carbon       : {result.carbon_g:.3e} gCO2 (Eq. 2, PUE {result.pue})")
    a = result.attribution
    print(
        f"command share: {result.command_energy_kwh:.3e} kWh, {result.command_carbon_g:.3e} gCO2 "
        f"({result.command_cpu_s:.2f} of {result.host_cpu_s:.2f} busy CPU-s on the host; "
        f"{a.method} attribution, idle {a.idle.energy_kwh:.3e} kWh, "
        f"other processes {a.other.energy_kwh:.3e} kWh)"
    )
    print(f"meter        : {r.info.meter} {r.info.version}; hardware {', '.join(r.info.hardware)}")
    return result.exit_code


def _build_source(args: argparse.Namespace) -> Any:
    from carbonedge.carbon import (
        CountryMixIntensity,
        CsvTrace,
        ElectricityMapsSource,
        StaticIntensity,
        WattTimeSource,
    )

    if args.source == "static":
        if args.value is None:
            raise ConfigError("intensity: --source static needs --value G (gCO2/kWh)")
        return StaticIntensity(default=args.value)
    if args.source == "country":
        return CountryMixIntensity()
    if args.source == "csv":
        if not args.file:
            raise ConfigError("intensity: --source csv needs --file TRACE.csv")
        return CsvTrace(args.file, args.interpolation)
    if args.source == "entsoe":
        from carbonedge.grid import EntsoeIntensity

        return EntsoeIntensity(year=args.year, factors=args.factors)
    if args.source == "electricitymaps":
        token = args.token or os.environ.get("ELECTRICITYMAPS_TOKEN")
        extra = {"base_url": args.base_url} if args.base_url else {}
        return ElectricityMapsSource(token, timeout_s=args.timeout, **extra)
    extra = {"base_url": args.base_url} if args.base_url else {}
    return WattTimeSource(
        args.token or os.environ.get("WATTTIME_TOKEN"),
        username=args.username or os.environ.get("WATTTIME_USERNAME"),
        password=args.password or os.environ.get("WATTTIME_PASSWORD"),
        timeout_s=args.timeout,
        **extra,
    )


def run_intensity(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge intensity``."""
    from carbonedge.carbon.http_sources import MAX_TIMEOUT_S
    from carbonedge.carbon.intensity import MAX_G_PER_KWH, check_g_per_kwh, utc

    number("intensity", "--value", args.value, minimum=0, maximum=MAX_G_PER_KWH)
    number("intensity", "--timeout", args.timeout, above=0, maximum=MAX_TIMEOUT_S)
    at = None
    if args.at:
        try:
            at = utc(datetime.fromisoformat(args.at))
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"intensity: --at is not an ISO 8601 time: {args.at!r}") from exc
    reading = _build_source(args).intensity(args.zone, at)
    check_g_per_kwh(reading.g_per_kwh, f"intensity: {reading.source} zone {reading.zone}")
    if args.json:
        payload = {
            "g_per_kwh": reading.g_per_kwh,
            "zone": reading.zone,
            "at": reading.at.isoformat(),
            "source": reading.source,
            "kind": reading.kind,
            "fallback": reading.fallback,
            "fallback_reason": reading.fallback_reason,
        }
        print(dumps(payload))
    else:
        note = f" FALLBACK: {reading.fallback_reason}" if reading.fallback else ""
        print(
            f"{reading.g_per_kwh:.1f} gCO2/kWh  zone {reading.zone}  {reading.kind}  "
            f"{reading.source}  at {reading.at.isoformat()}{note}"
        )
    return 0
