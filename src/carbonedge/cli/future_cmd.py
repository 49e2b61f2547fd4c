"""``carbonedge embodied`` and ``carbonedge shift``: the paper's future-work items (V.A, II.D).

``embodied`` charges a device's manufacturing footprint to a period of occupancy
(:mod:`carbonedge.carbon.embodied`); ``shift`` picks the cleanest start for a deferrable job
from an intensity forecast (:mod:`carbonedge.scheduling.temporal`). Module-level imports stay
light; the library is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from carbonedge.cli.checks import MAX_PUE, dumps, number
from carbonedge.errors import ConfigError

_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)([hm])$")

MAX_SHIFT_HORIZON_S = 366 * 86_400.0
"""Furthest a ``shift`` deadline (and longest a job) may reach past the earliest start, in s
(366 days: no intensity forecast reaches further)."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``embodied`` and ``shift`` to the ``carbonedge`` parser."""
    emb = subparsers.add_parser(
        "embodied",
        help="embodied carbon (gCO2e) charged for occupying a device",
        description="Amortise a device's manufacturing footprint linearly over its service life "
        "and charge it per second of occupancy (the SCI specification's M = TE x TS x RS): "
        "g = kgCO2e x 1000 x busy_s / (lifetime_years x 365.25 x 86400) x share.",
    )
    emb.add_argument("--kgco2e", type=float, required=True, help="device footprint, kgCO2e")
    emb.add_argument("--lifetime-years", type=float, required=True, help="service life, years")
    emb.add_argument("--busy-s", type=float, required=True, help="occupancy, seconds")
    emb.add_argument("--share", type=float, default=1.0, help="fraction of the device held (1.0)")
    emb.add_argument(
        "--source", default="user-supplied via --kgco2e", help="where the figure is from"
    )
    emb.add_argument("--json", action="store_true", help="print one JSON object")
    emb.set_defaults(handler=run_embodied)

    sh = subparsers.add_parser(
        "shift",
        help="best start time for a deferrable job from an intensity forecast",
        description="Choose the start in [earliest, deadline - duration] that minimises the "
        "job's mean grid intensity over a step-wise forecast (exact), and compare it with "
        "starting at --earliest (default: now).",
    )
    src = sh.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", metavar="CSV", help="forecast CSV: timestamp, zone, gco2_per_kwh")
    src.add_argument("--source", choices=("electricitymaps",), help="forecast API")
    sh.add_argument("--zone", help="zone (required for the API; for a CSV with several zones)")
    sh.add_argument("--token", help="Electricity Maps token (or ELECTRICITYMAPS_TOKEN)")
    sh.add_argument("--base-url", help="Electricity Maps API base URL")
    sh.add_argument("--timeout", type=float, default=5.0, metavar="S", help="HTTP timeout (5 s)")
    sh.add_argument("--duration-s", type=float, required=True, help="job run time, seconds")
    sh.add_argument("--deadline", required=True, help="ISO 8601 time or +Hh / +Mm after earliest")
    sh.add_argument(
        "--earliest",
        help="ISO 8601 earliest start (default: now; set it to replay a past trace)",
    )
    sh.add_argument("--forecast-end", help="ISO 8601 end of the last forecast step")
    sh.add_argument("--energy-kwh", type=float, help="job energy, kWh: report carbon saved")
    sh.add_argument("--pue", type=float, default=1.0, help="power usage effectiveness (1.0)")
    sh.add_argument("--json", action="store_true", help="print one JSON object")
    sh.set_defaults(handler=run_shift)


def run_embodied(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge embodied``."""
    from carbonedge.carbon.embodied import EmbodiedProfile, embodied_g

    for option, value in (("--kgco2e", args.kgco2e), ("--lifetime-years", args.lifetime_years)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"embodied: {option} must be > 0, got {value}")
    if not (math.isfinite(args.busy_s) and args.busy_s >= 0):
        raise ConfigError(f"embodied: --busy-s must be >= 0, got {args.busy_s}")
    if not 0.0 <= args.share <= 1.0:
        raise ConfigError(f"embodied: --share must be between 0 and 1, got {args.share}")
    profile = EmbodiedProfile(args.kgco2e, args.lifetime_years, args.source)
    grams = embodied_g(profile, args.busy_s, args.share)
    if not (math.isfinite(grams) and math.isfinite(profile.g_per_s)):
        raise ConfigError(
            f"embodied: the result overflows ({grams} g): --kgco2e {args.kgco2e:g}, "
            f"--lifetime-years {args.lifetime_years:g} and --busy-s {args.busy_s:g} "
            "are out of range"
        )
    if args.json:
        payload = {
            "embodied_g": grams,
            "embodied_kgco2e": profile.embodied_kgco2e,
            "lifetime_years": profile.lifetime_years,
            "busy_s": args.busy_s,
            "share": args.share,
            "g_per_s": profile.g_per_s,
            "source": profile.source,
            "method": "linear amortisation over service life (SCI M = TE x TS x RS)",
        }
        print(dumps(payload))
        return 0
    print(
        f"device   : {profile.embodied_kgco2e:g} kgCO2e over {profile.lifetime_years:g} years "
        f"({profile.source})"
    )
    print(
        f"rate     : {profile.g_per_s:.4e} gCO2e/s for the whole device "
        f"({profile.g_per_s * 3600:.4g} g/h)"
    )
    print(
        f"embodied : {grams:.4g} gCO2e for {args.busy_s:g} s x share {args.share:g} "
        "(linear amortisation, SCI M = TE x TS x RS)"
    )
    return 0


def _when(text: str, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"shift: {option} is not an ISO 8601 time: {text!r}") from exc


def _deadline(text: str, earliest: datetime) -> datetime:
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        seconds = amount * (3600.0 if unit == "h" else 60.0)
        if not seconds <= MAX_SHIFT_HORIZON_S:
            raise ConfigError(
                f"shift: --deadline {text!r} is too far ahead: at most "
                f"+{MAX_SHIFT_HORIZON_S / 3600:g}h after the earliest start"
            )
        try:
            return earliest + timedelta(seconds=seconds)
        except OverflowError:
            raise ConfigError(f"shift: --deadline {text!r} is past the year 9999") from None
    if text.strip().startswith("+"):
        raise ConfigError(f"shift: --deadline {text!r}: use +Hh or +Mm, e.g. +6h, +90m")
    return _when(text, "--deadline")


def _csv_forecast(path: str, zone: str | None) -> tuple[list[tuple[datetime, float]], str, str]:
    """Points of ``zone`` in a CSV trace, validated by :class:`CsvTrace`."""
    from carbonedge.carbon.trace import CsvTrace

    trace = CsvTrace(path, "step")
    if zone is None:
        if len(trace.zones) != 1:
            raise ConfigError(f"shift: {path} has zones {trace.zones}: choose one with --zone")
        zone = trace.zones[0]
    if zone not in trace.zones:
        raise ConfigError(f"shift: {path} has no rows for zone {zone!r}; zones: {trace.zones}")
    return trace.points(zone), zone, f"csv:{os.path.basename(path)}"


def _electricitymaps_forecast(
    zone: str, token: str | None, base_url: str, timeout_s: float
) -> list[tuple[datetime, float]]:
    """The whole ``/carbon-intensity/forecast`` series. A local shim: ElectricityMapsSource
    answers one point per call; this reads the same endpoint with the same helpers."""
    import urllib.parse

    from carbonedge.carbon.errors import IntensityError
    from carbonedge.carbon.http_sources import field, get_json, intensity_value, parse_time

    where = "electricitymaps:forecast"
    url = f"{base_url.rstrip('/')}/carbon-intensity/forecast?" + urllib.parse.urlencode(
        {"zone": zone}
    )
    body = get_json(url, {"auth-token": token} if token else {}, timeout_s)
    items = field(body, "forecast", where)
    if not isinstance(items, list):
        raise IntensityError(f"{where}: field 'forecast' is not a list")
    return [
        (
            parse_time(field(p, "datetime", where), where),
            intensity_value(p, "carbonIntensity", where),
        )
        for p in items
    ]


def run_shift(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge shift``."""
    from carbonedge.carbon.http_sources import MAX_TIMEOUT_S
    from carbonedge.scheduling.temporal import best_start

    earliest = _when(args.earliest, "--earliest") if args.earliest else datetime.now(UTC)
    deadline = _deadline(args.deadline, earliest)
    number("shift", "--energy-kwh", args.energy_kwh, minimum=0, maximum=1e9)
    number("shift", "--pue", args.pue, minimum=1.0, maximum=MAX_PUE)
    number("shift", "--timeout", args.timeout, above=0, maximum=MAX_TIMEOUT_S)
    if args.duration_s > MAX_SHIFT_HORIZON_S:  # NaN and <= 0 are refused by best_start
        raise ConfigError(
            f"shift: --duration-s must be at most {MAX_SHIFT_HORIZON_S:g} s, got {args.duration_s}"
        )
    if args.trace:
        points, zone, source = _csv_forecast(args.trace, args.zone)
    else:
        if not args.zone:
            raise ConfigError("shift: --source electricitymaps needs --zone, e.g. --zone DE")
        zone, source = args.zone, "electricitymaps:forecast"
        token = args.token or os.environ.get("ELECTRICITYMAPS_TOKEN")
        base = args.base_url or "https://api.electricitymap.org/v3"
        points = _electricitymaps_forecast(zone, token, base, args.timeout)
    end = _when(args.forecast_end, "--forecast-end") if args.forecast_end else None
    plan = best_start(points, args.duration_s, earliest, deadline, forecast_end=end)
    energy = args.energy_kwh
    if args.json:
        payload: dict[str, Any] = {
            **plan.as_dict(),
            "zone": zone,
            "source": source,
            "forecast_points": len(points),
        }
        if energy is not None:
            payload.update(
                energy_kwh=energy,
                pue=args.pue,
                carbon_g=plan.carbon_g(energy, args.pue),
                now_carbon_g=plan.now_carbon_g(energy, args.pue),
                saved_g=plan.saved_g(energy, args.pue),
            )
        print(dumps(payload))
        return 0

    def iso(t: datetime) -> str:
        return t.isoformat(timespec="seconds")

    print(f"forecast  : {source} zone {zone}, {len(points)} points (step-wise)")
    print(
        f"job       : {args.duration_s:g} s, earliest {iso(plan.earliest)}, "
        f"deadline {iso(plan.deadline)}"
    )
    print(f"start now : {iso(plan.earliest)}, mean {plan.now_mean_g_per_kwh:.1f} gCO2/kWh")
    print(
        f"best start: {iso(plan.start)} (+{plan.delay_s / 3600:.2f} h), ends {iso(plan.end)}, "
        f"mean {plan.mean_g_per_kwh:.1f} gCO2/kWh, {plan.saving_pct:.1f}% less carbon"
    )
    if energy is not None:
        print(
            f"carbon    : {plan.carbon_g(energy, args.pue):.4g} g vs "
            f"{plan.now_carbon_g(energy, args.pue):.4g} g now for {energy:g} kWh: "
            f"saved {plan.saved_g(energy, args.pue):.4g} gCO2 (Eq. 2, PUE {args.pue:g})"
        )
    return 0
