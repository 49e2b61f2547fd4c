"""``carbonedge sensors``: what power sensors this machine (or a fixture tree) offers.

Probes every reader (:func:`carbonedge.carbon.sensors.detect_sensors`), says which one a node
on this machine would use, then reads each available one for ``--duration`` seconds and prints
its energy and mean power per component and per rail, with method labels. Exit code 1 when
nothing can measure or model this machine (no sensor, no fallback). Module-level imports
stay light; the sensors (and CodeCarbon, if read) are imported in the handler.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from carbonedge.accounting.units import joules
from carbonedge.cli.checks import MAX_WAIT_S, dumps, number
from carbonedge.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``sensors`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "sensors",
        help="list this machine's power sensors and read each for a moment",
        description="Probe RAPL (/sys/class/powercap), NVML (NVIDIA GPUs), a Jetson's INA3221 "
        "rails, a Raspberry Pi 5's PMIC (vcgencmd pmic_read_adc), a node power profile and "
        "CodeCarbon; say which one a CarbonEdge node here would use; read each available one "
        "for --duration seconds. Methods: rapl, nvml, ina3221, pi5-pmic (measured), "
        "power-profile, cpu-load-model (modelled).",
    )
    p.add_argument("--root", default="/", help="root of the tree to probe (a fixture; '/')")
    p.add_argument("--duration", type=float, default=1.0, metavar="S", help="read for S s (1)")
    p.add_argument("--interval", type=float, default=0.25, metavar="S", help="poll every S s")
    p.add_argument("--device", help="device profile for the power-profile fallback")
    p.add_argument("--idle-w", type=float, help="idle power (W) for the power-profile fallback")
    p.add_argument("--max-w", type=float, help="maximum power (W) for the power-profile fallback")
    p.add_argument("--no-codecarbon", action="store_true", help="do not probe or read CodeCarbon")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run_sensors)


def _profile(args: argparse.Namespace) -> Any:
    """The PowerProfile from --device and/or --idle-w/--max-w, or None."""
    from carbonedge.fleet.spec import PowerProfile, load_device_profile

    if args.device is None and args.idle_w is None and args.max_w is None:
        return None
    number("sensors", "--idle-w", args.idle_w, minimum=0.0)
    number("sensors", "--max-w", args.max_w, above=0.0)
    dev = load_device_profile(args.device) if args.device else {}
    idle = args.idle_w if args.idle_w is not None else dev.get("idle_w", 0.0)
    peak = args.max_w if args.max_w is not None else dev.get("max_w")
    if peak is None or not 0 <= idle <= peak or peak <= 0:
        raise ConfigError(
            f"sensors: need 0 <= --idle-w <= --max-w and --max-w > 0 (W), got {idle}, {peak}"
        )
    source = f"device profile {args.device}" if args.device else "--idle-w/--max-w"
    return PowerProfile("linear", float(idle), float(peak), source)


def _reading_dict(reading: Any, rails_j: dict[str, float]) -> dict[str, Any]:
    d = reading.duration_s
    return {
        "duration_s": round(d, 3),
        "method": dict(reading.method),
        "energy_j": {c: joules(getattr(reading, f"{c}_energy_kwh")) for c in ("cpu", "gpu", "ram")},
        "mean_power_w": {c: reading.mean_power_w(c) for c in ("cpu", "gpu", "ram")},
        "rails_j": rails_j,
        "rails_mean_w": {k: (v / d if d > 0 else 0.0) for k, v in rails_j.items()},
        "meter": reading.info.meter,
        "errors": reading.info.details.get("errors", ""),
    }


def run_sensors(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge sensors``."""
    from carbonedge.carbon.sensors import CODECARBON, SensorMeter, detect_sensors

    number("sensors", "--duration", args.duration, above=0.0, maximum=MAX_WAIT_S)
    number("sensors", "--interval", args.interval, above=0.0, maximum=MAX_WAIT_S)
    detection = detect_sensors(
        args.root,
        power_profile=_profile(args),
        codecarbon=not args.no_codecarbon,
        close_unchosen=False,
    )
    available = [p for p in detection.probes if p.available]
    if not args.json:
        print(f"power sensors under {args.root}:")
        for p in detection.probes:
            mark = "chosen" if p.method in detection.chosen else ("yes" if p.available else "no")
            print(f"  {p.method:<14} {mark:<7} {p.detail}")
        measured = [m for m in detection.chosen if m not in ("power-profile", CODECARBON)]
        if not detection.chosen:
            print("no power sensor and no fallback: give --device or --idle-w/--max-w")
            return 1
        elif measured:
            print(f"a node here would measure its energy with: {detection.label}")
        else:
            how = (
                "CodeCarbon's cpu-load-model: TDP x CPU load, RAM as a constant"
                if CODECARBON in detection.chosen
                else "power-profile: idle_w + (max_w - idle_w) x CPU utilisation"
            )
            print(f"no power sensor found: a node here would MODEL its energy ({how})")
        if available:
            print(f"reading each available one for {args.duration:g} s ...")
    readings: dict[str, Any] = {}
    sensors = [p.sensor for p in available if p.sensor is not None]
    interval_s = min(args.interval, args.duration)
    meters = [SensorMeter([s], interval_s=interval_s) for s in sensors]
    try:
        for m in meters:
            m.start()
        time.sleep(args.duration)
        for s, m in zip(sensors, meters, strict=True):
            readings[s.method] = _reading_dict(m.stop(), m.rail_energy_j)
    finally:
        for m in meters:
            m.close()
    if any(p.method == CODECARBON for p in available):
        from carbonedge.carbon.codecarbon_meter import CodeCarbonConfig, CodeCarbonMeter

        cc = CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=min(1.0, args.duration)))
        cc.start()
        time.sleep(args.duration)
        readings[CODECARBON] = _reading_dict(cc.stop(), {})
    if args.json:
        out: dict[str, Any] = {
            "root": args.root,
            "chosen": list(detection.chosen),
            "probes": [
                {"method": p.method, "available": p.available, "detail": p.detail}
                for p in detection.probes
            ],
            "readings": readings,
        }
        print(dumps(out))
        return 0 if detection.chosen else 1
    for method, r in readings.items():
        parts = ", ".join(
            f"{c} [{r['method'][c]}]"
            if r["method"][c].startswith("included-in")
            else f"{c} {r['mean_power_w'][c]:.3f} W [{r['method'][c]}]"
            for c in ("cpu", "gpu", "ram")
        )
        total_j = sum(r["energy_j"].values())
        print(f"{method}: {total_j:.3f} J over {r['duration_s']:.2f} s: {parts}")
        for rail, watts in r["rails_mean_w"].items():
            print(f"    {rail:<28} {watts:8.3f} W")
        if r["errors"]:
            print(f"    errors: {r['errors']}")
    return 0
