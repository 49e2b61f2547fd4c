"""Node profiles for planning: the paper's three nodes, or a fleet TOML file.

Reads the fleet with ``carbonedge.fleet.spec.load_fleet`` (active power = its power profile's
``max_w``, idle power = ``idle_w``). Where that module is absent, a small local reader accepts a
minimal layout (one ``[[nodes]]`` table per node)::

    [[nodes]]
    name = "Node-High"
    cpu_quota = 1.0              # capacity, 1.0 = one core
    intensity_g_per_kwh = 620.0
    power_w = 8.0                # optional: active power at that quota, W
    idle_power_w = 0.0           # optional, W
    pue = 1.0                    # optional

Power, when not given, is modelled as ``CORE_POWER_W x cpu_quota``: CodeCarbon's CPU-load
fallback on this machine (no RAPL) reports about 8 W at full load on one core's worth of work,
so a node with quota q draws ``8 q`` W and the energy of a piece of work does not depend on
which simulated node runs it; only the intensity does.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

from carbonedge.errors import ConfigError
from carbonedge.partition.placement import NodeProfile

CORE_POWER_W = 8.0

# Section IV.A: Node-High 1.0 CPU / 620, Node-Medium 0.6 / 530, Node-Green 0.4 / 380 gCO2/kWh.
PAPER_NODES: tuple[tuple[str, float, float], ...] = (
    ("Node-High", 1.0, 620.0),
    ("Node-Medium", 0.6, 530.0),
    ("Node-Green", 0.4, 380.0),
)


def paper_nodes() -> list[NodeProfile]:
    """The paper's three nodes with modelled power (see the module docstring)."""
    return [NodeProfile(n, q, i, CORE_POWER_W * q) for n, q, i in PAPER_NODES]


def equal_nodes(capacities: list[float]) -> list[NodeProfile]:
    """Nodes ``node-0..`` with the given capacities, the paper's middle intensity (530)."""
    return [
        NodeProfile(f"node-{i}", q, PAPER_NODES[1][2], CORE_POWER_W * q)
        for i, q in enumerate(capacities)
    ]


def _number(
    path: Path, where: str, table: dict[str, Any], key: str, default: float | None
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}: {where}.{key} = {value!r}: expected a number")
    return float(value)


def _read_toml(path: Path) -> list[NodeProfile]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read fleet file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    tables = data.get("nodes")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: nodes: expected one or more [[nodes]] tables")
    profiles = []
    for i, table in enumerate(tables):
        where = f"nodes[{i}]"
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}: {where}.name = {name!r}: expected a non-empty string")
        quota = _number(path, where, table, "cpu_quota", None)
        if quota <= 0:
            raise ConfigError(f"{path}: {where}.cpu_quota = {quota!r}: must be > 0")
        profiles.append(
            NodeProfile(
                name=name,
                capacity=quota,
                intensity_g_per_kwh=_number(path, where, table, "intensity_g_per_kwh", None),
                power_w=_number(path, where, table, "power_w", CORE_POWER_W * quota),
                idle_power_w=_number(path, where, table, "idle_power_w", 0.0),
                pue=_number(path, where, table, "pue", 1.0),
            )
        )
    return profiles


def _from_fleet_spec(spec: Any) -> list[NodeProfile]:
    """Convert ``carbonedge.fleet.spec.FleetSpec`` nodes: power = the profile's max and idle W."""
    profiles = []
    for node in spec.nodes:
        if node.intensity_g_per_kwh is None:
            raise ConfigError(
                f"{spec.source}: node {node.name!r} gives only zone={node.zone!r}; the partition "
                "planner needs a static intensity_g_per_kwh"
            )
        profiles.append(
            NodeProfile(
                name=str(node.name),
                capacity=float(node.cpu_quota),
                intensity_g_per_kwh=float(node.intensity_g_per_kwh),
                power_w=float(node.power.max_w),
                idle_power_w=float(node.power.idle_w),
                pue=float(node.pue),
            )
        )
    return profiles


def load_node_profiles(path: str | Path | None) -> list[NodeProfile]:
    """Node profiles from a fleet TOML file (None: the paper's three nodes).

    Uses ``carbonedge.fleet.spec.load_fleet`` (the fleet's own validation and power profiles)
    and falls back to the small local reader when that module is not installed.

    Raises:
        ConfigError: unreadable file or a bad field (the message names file, field and value).
    """
    try:
        spec_module = importlib.import_module("carbonedge.fleet.spec")
    except ModuleNotFoundError:
        return paper_nodes() if path is None else _read_toml(Path(path))
    return _from_fleet_spec(spec_module.load_fleet(None if path is None else Path(path)))
