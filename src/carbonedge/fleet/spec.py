"""Fleet description: nodes, quotas, memory, carbon intensity and power profiles (paper IV.A.1).

A fleet is described in TOML and validated on load; every error names the file and the field,
e.g. ``fleet.toml: nodes[1].cpu_quota must be > 0, got -0.5``. ``load_fleet(None)`` returns the
paper's three Docker-simulated nodes (Node-High, Node-Medium, Node-Green).

Example::

    [[nodes]]
    name = "pi"
    device = "raspberry-pi-4"      # idle/max power from a shipped, cited profile
    cpu_quota = 1.0                # cores (CFS quota / period)
    memory_mb = 1024
    intensity_g_per_kwh = 380      # static grid intensity (gCO2/kWh), and/or zone = "FR"
    pue = 1.0
    embodied_kgco2e = 20.0         # optional: manufacturing footprint (kgCO2e) ...
    lifetime_years = 4.0           # ... amortised over this service life (both or neither)
    embodied_source = "vendor PCF" # optional: where the footprint comes from
    # optional: where the scheduler and the ledger get this node's intensity at decision time
    # (default: intensity_g_per_kwh if given, else the yearly average of zone)
    intensity = { source = "trace", file = "grid-day.csv", zone = "DE" }
    # or { source = "electricitymaps", zone = "DE", token_env = "EM_TOKEN",
    #      fallback_g_per_kwh = 380 }
    # or { source = "watttime", zone = "CAISO_NORTH", token_env = "WATTTIME_TOKEN" }
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from carbonedge.carbon.embodied import EmbodiedProfile
from carbonedge.errors import ConfigError
from carbonedge.grid.factors import FACTOR_SETS
from carbonedge.validation import (
    MAX_NESTING_DEPTH,
    Fields,
    check_tree,
    node_name_problem,
    read_text_file,
    shown,
)

PowerKind = Literal["linear", "measured"]

# The paper's default fleet models each simulated node's active power as its CPU-quota share of
# the host CPU's power. 8 W is the CPU-load fallback CodeCarbon uses on this class of host
# (DESIGN.md); it is a modelling assumption, shown as such in ``PowerProfile.source``.
DEFAULT_HOST_CPU_W = 8.0

"""Largest value any numeric field of a fleet file may hold (cores, MiB, W, gCO2/kWh, kgCO2e,
years). Far above any real device; keeps quota and power arithmetic far from float overflow."""

MAX_FLEET_NODES = 1024
"""Most ``[[nodes]]`` a fleet file may hold: each node of a local fleet is an OS process."""

# Top-level tables a fleet file may hold; anything else is refused, like node-state files do.
_TOP_LEVEL_KEYS = frozenset({"nodes"})


@dataclass(frozen=True)
class PowerProfile:
    """Node power model used for E_est (paper Eq. 4).

    ``kind="linear"``: ``power_w = idle_w + (max_w - idle_w) x load`` with load in 0..1.
    ``kind="measured"``: the power pushed by a meter (``record_power``); ``idle_w``/``max_w``
    act as the prior until the first measurement. Watts throughout.
    """

    kind: PowerKind
    idle_w: float
    max_w: float
    source: str

    def power_w(self, load: float) -> float:
        """Modelled power in W at ``load`` (fraction of the node's CPU quota in use, 0..1)."""
        load = min(max(load, 0.0), 1.0)
        return self.idle_w + (self.max_w - self.idle_w) * load


IntensitySourceKind = Literal["static", "country", "trace", "entsoe", "electricitymaps", "watttime"]
INTENSITY_SOURCES: tuple[str, ...] = (
    "static",
    "country",
    "trace",
    "entsoe",
    "electricitymaps",
    "watttime",
)


@dataclass(frozen=True)
class IntensityConfig:
    """Where a node's grid intensity comes from at decision time (paper V.A: live intensity).

    ``source``: ``static`` (``g_per_kwh``), ``country`` (CodeCarbon's yearly mix of ``zone``),
    ``trace`` (a CSV trace ``file`` replayed against the engine's clock; ``zone`` selects its
    rows), ``entsoe`` (real hourly ENTSO-E intensity of ``zone`` from the grid cache, replaying
    ``year`` when set, under the factor set ``factors``: :mod:`carbonedge.grid`),
    ``electricitymaps`` or ``watttime`` (live APIs; the token is read from the
    environment variable ``token_env``, never from the file). ``fallback_g_per_kwh``: the value
    used, marked as a fallback, when the source fails (else the last known value, else an
    error). ``ttl_s``: how long an API answer is reused. ``file`` is relative to the fleet
    file's folder.
    """

    source: IntensitySourceKind
    zone: str | None = None
    g_per_kwh: float | None = None
    file: str | None = None
    interpolation: str = "step"
    token_env: str | None = None
    fallback_g_per_kwh: float | None = None
    ttl_s: float = 300.0
    timeout_s: float = 5.0
    year: int | None = None
    factors: str = "lifecycle"


@dataclass(frozen=True)
class NodeSpec:
    """One edge node. ``cpu_quota`` in cores, ``memory_mb`` in MiB, intensity in gCO2/kWh.

    ``embodied``: the device's manufacturing footprint and service life (paper V.A future
    work, see :mod:`carbonedge.carbon.embodied`), or ``None`` when no figure is known.
    """

    name: str
    cpu_quota: float
    memory_mb: int
    power: PowerProfile
    intensity_g_per_kwh: float | None = None
    zone: str | None = None
    pue: float = 1.0
    device: str | None = None
    embodied: EmbodiedProfile | None = None
    intensity: IntensityConfig | None = None

    @property
    def intensity_config(self) -> IntensityConfig:
        """The node's intensity source: the ``intensity`` table, else its static value, else
        the country mix of its zone."""
        if self.intensity is not None:
            return self.intensity
        if self.intensity_g_per_kwh is not None:
            return IntensityConfig("static", self.zone, self.intensity_g_per_kwh)
        return IntensityConfig("country", self.zone)


@dataclass(frozen=True)
class FleetSpec:
    """A validated fleet; ``source`` is the file it came from or ``"default (paper IV.A.1)"``.

    ``base_dir``: the fleet file's folder (relative paths in it are relative to this), or None.
    """

    nodes: tuple[NodeSpec, ...]
    source: str
    base_dir: str | None = None

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; raises ConfigError naming the known nodes otherwise."""
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise ConfigError(f"{self.source}: no node named {name!r} (nodes: {known})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def total_quota(self) -> float:
        """Sum of the nodes' CPU quotas, in cores."""
        return sum(n.cpu_quota for n in self.nodes)


def _paper_node(name: str, quota: float, memory_mb: int, intensity: float) -> NodeSpec:
    power = PowerProfile(
        kind="linear",
        idle_w=0.0,
        max_w=quota * DEFAULT_HOST_CPU_W,
        source=f"modelled: {quota} x {DEFAULT_HOST_CPU_W} W host CPU (quota share)",
    )
    return NodeSpec(name, quota, memory_mb, power, intensity_g_per_kwh=intensity)


def default_fleet() -> FleetSpec:
    """The paper's three simulated nodes (IV.A.1): 1.0/1024/620, 0.6/512/530, 0.4/512/380."""
    return FleetSpec(
        nodes=(
            _paper_node("node-high", 1.0, 1024, 620.0),
            _paper_node("node-medium", 0.6, 512, 530.0),
            _paper_node("node-green", 0.4, 512, 380.0),
        ),
        source="default (paper IV.A.1)",
    )


def device_profile_names() -> tuple[str, ...]:
    """Names of the device profiles shipped in ``carbonedge/fleet/profiles``."""
    folder = resources.files("carbonedge.fleet").joinpath("profiles")
    return tuple(
        sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))
    )


def load_device_profile(name: str) -> dict[str, Any]:
    """The raw table of a shipped device profile (``idle_w``, ``max_w``, ``source``, ...)."""
    if name not in device_profile_names():
        known = ", ".join(device_profile_names())
        raise ConfigError(f"unknown device profile {name!r} (known: {known})")
    text = resources.files("carbonedge.fleet").joinpath("profiles", f"{name}.toml").read_text()
    return tomllib.loads(text)


_NODE_KEYS = {
    "name",
    "cpu_quota",
    "memory_mb",
    "zone",
    "intensity_g_per_kwh",
    "idle_w",
    "max_w",
    "power",
    "pue",
    "device",
    "embodied_kgco2e",
    "lifetime_years",
    "embodied_source",
    "intensity",
}
_INTENSITY_KEYS = {
    "source",
    "zone",
    "g_per_kwh",
    "file",
    "interpolation",
    "token_env",
    "fallback_g_per_kwh",
    "ttl_s",
    "timeout_s",
    "year",
    "factors",
}


def _intensity(where: str, table: Any, zone: str | None) -> IntensityConfig | None:
    """The node's ``intensity`` table, validated; None when absent."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}.intensity must be a table, e.g. {{ source = 'trace', ... }}")
    f = Fields(f"{where}.intensity", table)
    unknown = sorted(set(table) - _INTENSITY_KEYS)
    if unknown:
        known = ", ".join(sorted(_INTENSITY_KEYS))
        raise f.err(unknown[0], f"is not a known field (known: {known})")
    source = f.str_("source")
    if source not in INTENSITY_SOURCES:
        raise f.err("source", f"must be one of {', '.join(INTENSITY_SOURCES)}, got {source!r}")
    numbers = {}
    for key in ("g_per_kwh", "fallback_g_per_kwh", "ttl_s", "timeout_s"):
        value = f.num(key, positive=key in ("ttl_s", "timeout_s"))
        if value is not None and not math.isfinite(value):
            raise f.err(key, f"must be a finite number, got {value!r}")
        numbers[key] = value
    node_zone = f.str_("zone") or zone
    if source == "static" and numbers["g_per_kwh"] is None:
        raise f.err("g_per_kwh", "is required for source 'static' (gCO2/kWh)")
    if source == "trace" and not f.str_("file"):
        raise f.err("file", "is required for source 'trace' (a CSV: timestamp,zone,gco2_per_kwh)")
    if source in ("country", "entsoe", "electricitymaps", "watttime") and not node_zone:
        raise f.err("zone", f"is required for source {source!r}")
    year = table.get("year")
    if year is not None and (
        isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100
    ):
        raise f.err("year", f"must be a year such as 2019, got {shown(year)}")
    factors = f.str_("factors", "lifecycle") or "lifecycle"
    if factors not in FACTOR_SETS:
        raise f.err("factors", f"must be one of {', '.join(FACTOR_SETS)}, got {shown(factors)}")
    interpolation = f.str_("interpolation", "step")
    if interpolation not in ("step", "linear"):
        raise f.err("interpolation", f"must be 'step' or 'linear', got {interpolation!r}")
    return IntensityConfig(
        source=source,  # type: ignore[arg-type]
        zone=node_zone,
        g_per_kwh=numbers["g_per_kwh"],
        file=f.str_("file"),
        interpolation=interpolation or "step",
        token_env=f.str_("token_env"),
        fallback_g_per_kwh=numbers["fallback_g_per_kwh"],
        ttl_s=numbers["ttl_s"] or 300.0,
        timeout_s=numbers["timeout_s"] or 5.0,
        year=year,
        factors=factors,
    )


def _power(f: Fields, device: Mapping[str, Any] | None) -> PowerProfile:
    kind = f.str_("power", "linear")
    if kind not in ("linear", "measured"):
        raise f.err("power", f"must be 'linear' or 'measured', got {kind!r}")
    dev = device or {}
    idle = f.num("idle_w", dev.get("idle_w"))
    peak = f.num("max_w", dev.get("max_w"))
    if kind == "linear" and (idle is None or peak is None):
        raise f.err("max_w", "and idle_w are required (or device = ..., or power = 'measured')")
    idle_w, max_w = idle or 0.0, peak or 0.0
    if max_w < idle_w:
        raise f.err("max_w", f"must be >= idle_w ({idle_w}), got {max_w}")
    overridden = f.table.get("idle_w") is not None or f.table.get("max_w") is not None
    if device is not None:
        extra = " (idle_w/max_w overridden in the fleet file)" if overridden else ""
        source = f"device profile {f.table['device']}: {device.get('source', '?')}{extra}"
    else:
        source = f"{f.where} (user-supplied)" if kind == "linear" else "measured"
    return PowerProfile(kind, idle_w, max_w, source)  # type: ignore[arg-type]


def device_embodied(name: str, profile: Mapping[str, Any]) -> EmbodiedProfile | None:
    """The embodied footprint a device profile carries, or None. A profile may carry
    ``embodied_kgco2e`` and ``lifetime_years`` only together and only with an
    ``embodied_source`` citing a published figure; anything else is a ConfigError."""
    where = f"device profile {name}"
    kg, life = profile.get("embodied_kgco2e"), profile.get("lifetime_years")
    source = profile.get("embodied_source")
    if kg is None and life is None:
        if source is not None:
            raise ConfigError(f"{where}: embodied_source without embodied_kgco2e/lifetime_years")
        return None
    if kg is None or life is None:
        raise ConfigError(f"{where}: embodied_kgco2e and lifetime_years go together")
    if not isinstance(source, str) or len(source.strip()) < 10:
        raise ConfigError(f"{where}: embodied_kgco2e needs embodied_source citing a publication")
    for key, value in (("embodied_kgco2e", kg), ("lifetime_years", life)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{where}: {key} must be > 0, got {value!r}")
    return EmbodiedProfile(float(kg), float(life), f"device profile {name}: {source}")


def _embodied(
    f: Fields, device_name: str | None, device: Mapping[str, Any] | None
) -> EmbodiedProfile | None:
    """Per-node ``embodied_kgco2e`` + ``lifetime_years`` (both or neither, > 0), else the
    device profile's cited figure, else None."""
    values: dict[str, float | None] = {}
    for key in ("embodied_kgco2e", "lifetime_years"):
        value = f.num(key, positive=True)
        if value is not None and not math.isfinite(value):
            raise f.err(key, f"must be a finite number, got {value!r}")
        values[key] = value
    kg, life = values["embodied_kgco2e"], values["lifetime_years"]
    source = f.str_("embodied_source")
    if (kg is None) != (life is None):
        given, missing = (
            ("embodied_kgco2e", "lifetime_years")
            if life is None
            else ("lifetime_years", "embodied_kgco2e")
        )
        raise f.err(missing, f"is required when {given} is given (give both or neither)")
    if kg is not None and life is not None:
        return EmbodiedProfile(kg, life, source or f"{f.where} (user-supplied)")
    if source is not None:
        raise f.err("embodied_source", "needs embodied_kgco2e and lifetime_years")
    if device_name is None or device is None:
        return None
    try:
        return device_embodied(device_name, device)
    except ConfigError as exc:
        raise f.err("device", str(exc)) from None


def _node(where: str, table: Any) -> NodeSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    f = Fields(where, table)
    unknown = sorted(set(table) - _NODE_KEYS)
    if unknown:
        raise f.err(unknown[0], f"is not a known field (known: {', '.join(sorted(_NODE_KEYS))})")
    name = f.str_("name")
    if not name:
        raise f.err("name", "is required and must be a non-empty string")
    problem = node_name_problem(name)
    if problem is not None:
        raise f.err("name", problem)
    device_name = f.str_("device")
    device = None
    if device_name is not None:
        try:
            device = load_device_profile(device_name)
        except ConfigError as exc:
            raise f.err("device", str(exc)) from None
    quota = f.num("cpu_quota", device.get("cpu_quota") if device else None, positive=True)
    memory = f.num("memory_mb", device.get("memory_mb") if device else None, positive=True)
    if quota is None:
        raise f.err("cpu_quota", "is required (cores, e.g. 0.4)")
    if memory is None:
        raise f.err("memory_mb", "is required (MiB, e.g. 512)")
    intensity = f.num("intensity_g_per_kwh")
    zone = f.str_("zone")
    source = _intensity(where, table.get("intensity"), zone)
    if intensity is None and zone is None and source is None:
        raise f.err("intensity_g_per_kwh", "or zone or intensity is required")
    pue = f.num("pue", 1.0, positive=True)
    assert pue is not None
    if pue < 1.0:
        raise f.err("pue", f"must be >= 1.0, got {pue}")
    return NodeSpec(
        name=name,
        cpu_quota=quota,
        memory_mb=int(memory),
        power=_power(f, device),
        intensity_g_per_kwh=intensity,
        zone=zone,
        pue=pue,
        device=device_name,
        embodied=_embodied(f, device_name, device),
        intensity=source,
    )


def parse_fleet(data: Mapping[str, Any], source: str) -> FleetSpec:
    """Validate a parsed TOML document; ``source`` prefixes every error message."""
    unknown = sorted(str(k) for k in set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        known = ", ".join(sorted(_TOP_LEVEL_KEYS))
        raise ConfigError(f"{source}: {shown(unknown[0])} is not a known table (known: {known})")
    check_tree(data, source)
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ConfigError(f"{source}: nodes must be a non-empty array of tables ([[nodes]])")
    if len(nodes) > MAX_FLEET_NODES:
        raise ConfigError(
            f"{source}: nodes has {len(nodes)} tables, more than {MAX_FLEET_NODES} nodes"
        )
    specs = tuple(_node(f"{source}: nodes[{i}]", t) for i, t in enumerate(nodes))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise ConfigError(f"{source}: nodes[{i}].name {spec.name!r} is used twice")
        seen.add(spec.name)
    return FleetSpec(specs, source)


def load_fleet(path: str | Path | None = None) -> FleetSpec:
    """Load and validate a fleet TOML file; ``None`` gives the paper's default three nodes.

    The file must be UTF-8 (a byte-order mark is allowed) and at most
    :data:`~carbonedge.validation.MAX_CONFIG_BYTES`; every error is a ConfigError naming it.
    """
    if path is None:
        return default_fleet()
    p = Path(path)
    text = read_text_file(p, "fleet file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p.name}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{p.name}: invalid TOML: nests deeper than {MAX_NESTING_DEPTH} levels"
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{p.name}: invalid TOML: {shown(str(exc), 120)}") from None
    # relative paths in the file (intensity traces) are relative to its folder
    return replace(parse_fleet(data, p.name), base_dir=str(p.resolve().parent))
