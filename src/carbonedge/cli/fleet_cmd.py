"""``carbonedge fleet show`` and ``carbonedge fleet check`` (paper III.F, IV.A.1).

``fleet check --backend local|ray [--address ADDR]`` starts a ``LocalFleet`` or a ``RayFleet``.
Module-level imports stay light: the fleet (and Ray) is started inside the handler.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from carbonedge.errors import ConfigError

if TYPE_CHECKING:
    from carbonedge.fleet import FleetSpec
    from carbonedge.fleet.base import EnforcementChoice
    from carbonedge.fleet.core import FleetCore
    from carbonedge.fleet.ray_backend import RayEnforcement

BACKENDS = ("local", "ray")
MAX_PROBE_S = 600.0
"""Longest busy-loop probe ``fleet check --probe-s`` runs on every node, in seconds."""
ENFORCEMENT_TEXT = {
    "cgroup": "real cgroup CPU quota",
    "dilation": "time dilation: sleep (1/q - 1) x task CPU time",
    "none": "not enforced: the device is its own limit",
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``fleet show`` and ``fleet check`` to the ``carbonedge`` parser."""
    fleet = subparsers.add_parser("fleet", help="describe and check the edge fleet")
    sub = fleet.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    show = sub.add_parser("show", help="print the fleet description (nodes, quotas, power)")
    show.add_argument("--fleet", type=Path, default=None, help="fleet TOML (default: paper's)")
    show.set_defaults(handler=_show)
    check = sub.add_parser("check", help="start the fleet, measure each node, stop it")
    check.add_argument("--fleet", type=Path, default=None, help="fleet TOML (default: paper's)")
    check.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: one OS process per node (default); ray: one Ray actor per node",
    )
    check.add_argument(
        "--address",
        default=None,
        help="ray only: 'auto', 'ray://HOST:10001' or a Ray address (default: start a local Ray)",
    )
    check.add_argument(
        "--enforcement",
        choices=("auto", "cgroup", "dilation", "none"),
        default="auto",
        help="CPU quota enforcement; local: auto (cgroup where writable, else dilation), cgroup,"
        " dilation; ray: auto (= dilation), dilation, none (real devices)",
    )
    check.add_argument(
        "--probe-s", type=float, default=1.0, help="busy-loop probe length per node (s)"
    )
    check.set_defaults(handler=_check)
    fleet.set_defaults(handler=lambda _args: (fleet.print_help(), 2)[1])


def _show(args: argparse.Namespace) -> int:
    from carbonedge.fleet import load_fleet

    spec = load_fleet(args.fleet)
    print(f"fleet: {spec.source} ({len(spec.nodes)} nodes, {spec.total_quota:g} cores in all)")
    print(f"{'node':<14}{'cores':>6}{'MiB':>7}{'gCO2/kWh':>10}{'zone':>6}{'PUE':>5}  power")
    for n in spec.nodes:
        intensity = f"{n.intensity_g_per_kwh:g}" if n.intensity_g_per_kwh is not None else "-"
        power = f"{n.power.kind} {n.power.idle_w:g}-{n.power.max_w:g} W ({n.power.source})"
        print(
            f"{n.name:<14}{n.cpu_quota:>6g}{n.memory_mb:>7}{intensity:>10}"
            f"{n.zone or '-':>6}{n.pue:>5g}  {power}"
        )
    return 0


def make_check_fleet(
    spec: FleetSpec, backend: str, enforcement: str, address: str | None
) -> FleetCore[Any]:
    """The fleet ``fleet check`` starts; ConfigError naming the option for a bad combination."""
    from carbonedge.fleet import LocalFleet, RayFleet

    if backend == "local":
        if address is not None:
            raise ConfigError(f"--address {address!r} is for --backend ray, not local")
        if enforcement not in ("auto", "cgroup", "dilation"):
            raise ConfigError(
                f"--enforcement {enforcement!r} is not available with --backend local"
                " (auto, cgroup or dilation)"
            )
        return LocalFleet(spec, enforcement=cast("EnforcementChoice", enforcement))
    if backend == "ray":
        if enforcement not in ("auto", "dilation", "none"):
            raise ConfigError(
                f"--enforcement {enforcement!r} is not available with --backend ray"
                " (auto = dilation, dilation or none)"
            )
        choice = cast("RayEnforcement", "dilation" if enforcement == "auto" else enforcement)
        return RayFleet(spec, address=address, enforcement=choice)
    raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def _check(args: argparse.Namespace) -> int:
    from carbonedge.cli.checks import number
    from carbonedge.fleet import load_fleet

    number("fleet check", "--probe-s", args.probe_s, above=0, maximum=MAX_PROBE_S)
    spec = load_fleet(args.fleet)
    with make_check_fleet(spec, args.backend, args.enforcement, args.address) as fleet:
        speeds = fleet.measure_speed(args.probe_s)
        health = fleet.health()
    print(
        f"fleet: {spec.source} ({args.backend} backend); probe: {args.probe_s:g} s busy loop"
        " on every node at once"
    )
    print(
        f"{'node':<14}{'quota':>6}{'measured':>10}{'ratio':>7}  {'enforcement':<12}"
        f"{'peak RSS MiB':>13}{'limit':>7}  health"
    )
    ok = True
    for h in health:
        quota = spec.node(h.name).cpu_quota
        cores = speeds.get(h.name, 0.0)
        state = "up" if h.up else f"DOWN ({h.detail})"
        if h.over_memory:
            state += " OVER-MEMORY"
        ok = ok and h.up
        print(
            f"{h.name:<14}{quota:>6g}{cores:>10.3f}{cores / quota:>7.2f}  {h.enforcement:<12}"
            f"{h.peak_rss_mb:>13.0f}{h.memory_mb:>7}  {state}"
        )
    print("measured = CPU s / wall s of the probe (effective cores); ratio = measured / quota")
    for kind in sorted({h.enforcement for h in health}):
        print(f"enforcement {kind} = {ENFORCEMENT_TEXT.get(kind, kind)}")
    return 0 if ok else 1
