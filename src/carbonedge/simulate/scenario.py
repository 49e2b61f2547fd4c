"""A simulation scenario: sites, client regions, the network and the grids, from one TOML file.

Every value is checked where it is read; an error names the file and the field
(``europe.toml: sites[3].nodes must be > 0, got 0``). The format is in docs/simulate.md.
Units: ms, s, W, MB, requests per second, hours, gCO2/kWh.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from carbonedge.accounting.rates import profile_rate
from carbonedge.errors import ConfigError
from carbonedge.fleet.spec import load_device_profile
from carbonedge.grid.factors import FACTOR_SETS
from carbonedge.grid.forecast import DEFAULT_FORECASTER, check_forecaster
from carbonedge.validation import Fields, check_tree, node_name_problem, read_text_file, shown

__all__ = [
    "DEFAULT_DIURNAL",
    "FIBRE_KM_PER_MS",
    "Network",
    "Profile",
    "Region",
    "Scenario",
    "Site",
    "load_scenario",
    "parse_scenario",
]

#: Light in silica fibre: c / 1.468 (the group index of standard single-mode fibre), km per ms.
FIBRE_KM_PER_MS: Final = 299_792.458 / 1.468 / 1000.0

#: The default demand shape over the local hours 0..23 (relative; scaled to the region's mean).
#: An assumption in the form of residential Internet traffic: lowest at 04:00-05:00, highest
#: 20:00-22:00, about 4x between them. Give ``diurnal = [...]`` per region for your own.
DEFAULT_DIURNAL: Final = (
    0.70, 0.50, 0.36, 0.28, 0.25, 0.26, 0.34, 0.50, 0.70, 0.85, 0.95, 1.00,
    1.05, 1.05, 1.05, 1.08, 1.12, 1.20, 1.32, 1.45, 1.55, 1.55, 1.35, 1.00,
)  # fmt: skip

_EARTH_RADIUS_KM: Final = 6371.0
_TOP_KEYS: Final = {"simulation", "network", "profiles", "sites", "regions"}
_SIM_KEYS: Final = {
    "year", "factors", "days", "slo_ms", "latency_threshold_ms", "load_step", "seed",
    "forecaster", "policies",
}  # fmt: skip
_NET_KEYS: Final = {"access_ms", "route_factor", "fibre_km_per_ms", "rtt_ms", "source"}
_PROFILE_KEYS: Final = {
    "device", "idle_w", "max_w", "cores", "memory_mb", "cpu_s", "basis", "source",
}  # fmt: skip
_SITE_KEYS: Final = {"name", "zone", "lat", "lon", "nodes", "profile", "pue"}
_REGION_KEYS: Final = {
    "name", "lat", "lon", "requests_per_s", "diurnal", "weekly", "utc_offset_h",
    "deferrable_share", "deadline_h",
}  # fmt: skip
_BASES: Final = ("measured", "modelled")


@dataclass(frozen=True)
class Profile:
    """What one node of a site is: power (W, linear in load), cores, memory, and the CPU
    seconds one inference takes. ``basis`` says whether the energy is measured or modelled."""

    name: str
    idle_w: float
    max_w: float
    cores: float
    memory_mb: float
    cpu_s: float
    basis: str
    source: str

    @property
    def kwh_per_cpu_s(self) -> float:
        """The engine's power-profile rate: ``(max_w - idle_w) / cores`` J per CPU-second."""
        return profile_rate(self.idle_w, self.max_w, self.cores)[0]

    @property
    def service_s(self) -> float:
        """Wall time of one inference: its CPU seconds at up to one core of the node."""
        return self.cpu_s / min(1.0, self.cores)

    @property
    def servers(self) -> int:
        """Inferences the node runs at once: one per whole core, at least one."""
        return max(1, math.floor(self.cores))

    @property
    def capacity_per_h(self) -> float:
        """Inferences one node completes in an hour at full load."""
        return 3600.0 * self.servers / self.service_s


@dataclass(frozen=True)
class Site:
    """``nodes`` identical nodes of ``profile`` on the grid of ``zone``."""

    name: str
    zone: str
    lat: float
    lon: float
    nodes: int
    profile: Profile
    pue: float


@dataclass(frozen=True)
class Region:
    """Clients at (lat, lon) sending ``requests_per_s`` on average; ``diurnal`` (24, local
    hours) and ``weekly`` (7, Monday first) shape it. A ``deferrable_share`` of the requests
    may run up to ``deadline_h`` hours later."""

    name: str
    lat: float
    lon: float
    requests_per_s: float
    diurnal: tuple[float, ...]
    weekly: tuple[float, ...]
    utc_offset_h: int
    deferrable_share: float
    deadline_h: int


@dataclass(frozen=True)
class Network:
    """Round-trip time from a region to a site: ``rtt_ms[region][site]`` where given, else
    ``access_ms + 2 x great-circle km x route_factor / fibre_km_per_ms``."""

    access_ms: float
    route_factor: float
    fibre_km_per_ms: float
    rtt_ms: Mapping[str, Mapping[str, float]]
    source: str

    def rtt(self, region: Region, site: Site) -> float:
        given = self.rtt_ms.get(region.name, {}).get(site.name)
        if given is not None:
            return given
        km = great_circle_km(region.lat, region.lon, site.lat, site.lon)
        return self.access_ms + 2.0 * km * self.route_factor / self.fibre_km_per_ms


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``source`` names the file it came from."""

    source: str
    year: int
    factors: str
    days: int
    slo_ms: float
    latency_threshold_ms: float
    load_step: float
    seed: int
    forecaster: str
    policies: tuple[str, ...] | None
    network: Network
    profiles: Mapping[str, Profile]
    sites: tuple[Site, ...]
    regions: tuple[Region, ...]

    @property
    def hours(self) -> int:
        return 24 * self.days

    @property
    def node_count(self) -> int:
        return sum(s.nodes for s in self.sites)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km on a sphere of the Earth's mean radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario TOML at ``path``."""
    where = Path(path)
    text = read_text_file(where, "scenario file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(where))


def _unknown(where: str, table: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(
            f"{where}.{extra[0]} is not a known field (known: {', '.join(sorted(known))})"
        )


def _table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, got {shown(value)}")
    return value


def _array(where: str, value: Any, kind: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty array of {kind}, got {shown(value)}")
    return value


def _int(f: Fields, key: str, default: int | None, low: int, high: int) -> int:
    value = f.table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise f.err(key, f"must be an integer from {low} to {high}, got {shown(value)}")
    return value


def _req(f: Fields, key: str, *, positive: bool = False, maximum: float = 1e9) -> float:
    value = f.num(key, positive=positive, maximum=maximum)
    if value is None:
        raise f.err(key, "is required")
    return value


def _coordinate(f: Fields, key: str, limit: float) -> float:
    value = f.table.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > limit:
        raise f.err(key, f"must be a number from -{limit:g} to {limit:g}, got {shown(value)}")
    return float(value)


def _shape(f: Fields, key: str, length: int, default: Sequence[float]) -> tuple[float, ...]:
    value = f.table.get(key)
    if value is None:
        return tuple(default)
    if (
        not isinstance(value, list)
        or len(value) != length
        or any(isinstance(x, bool) or not isinstance(x, int | float) or x < 0 for x in value)
        or not sum(value) > 0
    ):
        raise f.err(key, f"must be {length} numbers >= 0, not all 0, got {shown(value)}")
    return tuple(float(x) for x in value)


def _name(where: str, value: Any, seen: set[str]) -> str:
    problem = node_name_problem(value)
    if problem:
        raise ConfigError(f"{where}.name {problem}")
    if value in seen:
        raise ConfigError(f"{where}.name {value!r} is used twice")
    seen.add(value)
    return str(value)


def _profile(where: str, name: str, table: Mapping[str, Any]) -> Profile:
    _unknown(where, table, _PROFILE_KEYS)
    f = Fields(where, table)
    device = f.str_("device")
    cited: Mapping[str, Any] = {}
    if device is not None:
        try:
            cited = load_device_profile(device)
        except ConfigError as exc:
            raise f.err("device", str(exc)) from None
    idle = f.num("idle_w", cited.get("idle_w"))
    peak = f.num("max_w", cited.get("max_w"), positive=True)
    if idle is None or peak is None:
        raise f.err("max_w", "and idle_w are required (W), or give a device profile")
    if idle > peak:
        raise f.err("idle_w", f"must be at most max_w {peak:g}, got {idle:g}")
    basis = f.str_("basis", "modelled")
    if basis not in _BASES:
        raise f.err("basis", f"must be one of {', '.join(_BASES)}, got {basis!r}")
    source = f.str_("source") or str(cited.get("source", ""))
    if not source:
        raise f.err("source", "is required: say where the power and cpu_s figures come from")
    return Profile(
        name=name,
        idle_w=idle,
        max_w=peak,
        cores=_req(f, "cores", positive=True, maximum=1024),
        memory_mb=_req(f, "memory_mb", positive=True),
        cpu_s=_req(f, "cpu_s", positive=True, maximum=3600),
        basis=str(basis),
        source=source,
    )


def _network(where: str, table: Mapping[str, Any]) -> Network:
    _unknown(where, table, _NET_KEYS)
    f = Fields(where, table)
    matrix: dict[str, dict[str, float]] = {}
    for region, row in _table(f"{where}.rtt_ms", table.get("rtt_ms", {})).items():
        cells = _table(f"{where}.rtt_ms.{region}", row)
        g = Fields(f"{where}.rtt_ms.{region}", cells)
        matrix[str(region)] = {str(site): _req(g, str(site)) for site in cells}
    return Network(
        access_ms=f.num("access_ms", 5.0) or 0.0,
        route_factor=_positive(f, "route_factor", 2.0),
        fibre_km_per_ms=_positive(f, "fibre_km_per_ms", FIBRE_KM_PER_MS),
        rtt_ms=matrix,
        source=f.str_("source", "") or "",
    )


def _positive(f: Fields, key: str, default: float) -> float:
    value = f.num(key, default, positive=True)
    assert value is not None
    return value


def parse_scenario(data: Mapping[str, Any], source: str) -> Scenario:
    """Validate a parsed scenario document; ``source`` names it in errors."""
    check_tree(data, source)
    _unknown(source, data, _TOP_KEYS)
    sim = _table(f"{source}: simulation", data.get("simulation", {}))
    where = f"{source}: simulation"
    _unknown(where, sim, _SIM_KEYS)
    f = Fields(where, sim)
    year = _int(f, "year", 2019, 2015, 2030)
    days = _int(f, "days", 365, 1, 366)
    factors = f.str_("factors", "lifecycle") or "lifecycle"
    if factors not in FACTOR_SETS:
        raise f.err("factors", f"must be one of {', '.join(FACTOR_SETS)}, got {factors!r}")
    forecaster = f.str_("forecaster", DEFAULT_FORECASTER) or DEFAULT_FORECASTER
    try:
        check_forecaster(forecaster, oracle=False)
    except ConfigError as exc:
        raise f.err("forecaster", str(exc)) from None
    load_step = _positive(f, "load_step", 0.1)
    if load_step > 0.2:
        raise f.err("load_step", f"must be at most 0.2 (a share of a node's hour), got {load_step}")
    policies = sim.get("policies")
    if policies is not None:
        from carbonedge.simulate.policies import POLICY_NAMES

        items = _array(f"{where}.policies", policies, "policy names")
        bad = [p for p in items if p not in POLICY_NAMES]
        if bad:
            raise f.err(
                "policies", f"{shown(bad[0])} is not a policy; known: {', '.join(POLICY_NAMES)}"
            )

    profiles_t = _table(f"{source}: profiles", data.get("profiles", {}))
    profiles = {
        str(name): _profile(f"{source}: profiles.{name}", str(name), _table(f"profiles.{name}", t))
        for name, t in profiles_t.items()
    }
    sites: list[Site] = []
    names: set[str] = set()
    for i, t in enumerate(_array(f"{source}: sites", data.get("sites"), "site tables")):
        w = f"{source}: sites[{i}]"
        t = _table(w, t)
        _unknown(w, t, _SITE_KEYS)
        g = Fields(w, t)
        name = _name(w, t.get("name"), names)
        zone = g.str_("zone")
        if not zone:
            raise g.err("zone", "is required (an ENTSO-E zone such as 'DE')")
        profile = g.str_("profile")
        if profile not in profiles:
            known = ", ".join(profiles) or "none defined"
            raise g.err("profile", f"must name a [profiles.*] table ({known}), got {profile!r}")
        pue = g.num("pue", 1.0) or 1.0
        if pue < 1.0:
            raise g.err("pue", f"must be >= 1.0, got {pue}")
        sites.append(
            Site(
                name,
                zone,
                _coordinate(g, "lat", 90),
                _coordinate(g, "lon", 180),
                _int(g, "nodes", None, 1, 1_000_000),
                profiles[profile],
                pue,
            )
        )
    regions: list[Region] = []
    names = set()
    for i, t in enumerate(_array(f"{source}: regions", data.get("regions"), "region tables")):
        w = f"{source}: regions[{i}]"
        t = _table(w, t)
        _unknown(w, t, _REGION_KEYS)
        g = Fields(w, t)
        name = _name(w, t.get("name"), names)
        lon = _coordinate(g, "lon", 180)
        share = g.num("deferrable_share", 0.0, maximum=1.0) or 0.0
        deadline = _int(g, "deadline_h", 0, 0, 24)
        if share > 0 and deadline == 0:
            raise g.err("deadline_h", "must be >= 1 when deferrable_share > 0")
        regions.append(
            Region(
                name=name,
                lat=_coordinate(g, "lat", 90),
                lon=lon,
                requests_per_s=_req(g, "requests_per_s"),
                diurnal=_shape(g, "diurnal", 24, DEFAULT_DIURNAL),
                weekly=_shape(g, "weekly", 7, (1.0,) * 7),
                utc_offset_h=_int(g, "utc_offset_h", round(lon / 15.0), -12, 14),
                deferrable_share=share,
                deadline_h=deadline,
            )
        )
    network = _network(f"{source}: network", _table(f"{source}: network", data.get("network", {})))
    for region, row in network.rtt_ms.items():
        if region not in names:
            raise ConfigError(f"{source}: network.rtt_ms.{region} names no region")
        for site in row:
            if site not in {s.name for s in sites}:
                raise ConfigError(f"{source}: network.rtt_ms.{region}.{site} names no site")
    return Scenario(
        source=source,
        year=year,
        factors=factors,
        days=days,
        slo_ms=_positive(f, "slo_ms", 100.0),
        latency_threshold_ms=_positive(f, "latency_threshold_ms", 150.0),
        load_step=load_step,
        seed=_int(f, "seed", 0, 0, 2**31 - 1),
        forecaster=forecaster,
        policies=tuple(policies) if policies is not None else None,
        network=network,
        profiles=profiles,
        sites=tuple(sites),
        regions=tuple(regions),
    )
