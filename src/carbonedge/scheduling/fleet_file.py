"""Read a fleet's node states (and optionally the task) from a TOML or JSON file.

The only module of :mod:`carbonedge.scheduling` that does I/O; used by ``carbonedge schedule``.
Format (docs/scheduler.md, example in examples/node_states.toml)::

    [task]                     # optional
    task_id = "demo"
    memory_mb = 60.0
    cpu = 0.0

    [[nodes]]
    name = "Node-High"
    cpu_quota = 1.0            # cores
    memory_mb = 1024           # MB
    avg_time_s = 0.30          # s
    power_w = 3.0              # W
    intensity_g_per_kwh = 620  # gCO2/kWh
    # optional: load (0), latency_ms (0), tasks_in_flight (0),
    #           free_cpu (cpu_quota x (1 - load)), free_memory_mb (memory_mb)

JSON files hold the same structure: ``{"task": {...}, "nodes": [{...}, ...]}``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carbonedge.errors import ConfigError
from carbonedge.scheduling.state import NodeState, Task

__all__ = ["FleetFile", "load_fleet_file"]

_REQUIRED = ("name", "cpu_quota", "memory_mb", "avg_time_s", "power_w", "intensity_g_per_kwh")
_OPTIONAL = ("load", "latency_ms", "tasks_in_flight", "free_cpu", "free_memory_mb")
_TASK_KEYS = ("task_id", "memory_mb", "cpu")


@dataclass(frozen=True, slots=True)
class FleetFile:
    """What a fleet-state file holds: the node states in order and the task (None if absent)."""

    nodes: tuple[NodeState, ...]
    task: Task | None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read fleet file: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None


def _node(path: Path, i: int, raw: Any) -> NodeState:
    where = f"{path}: nodes[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table of fields, got {raw!r}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (known: {', '.join(_REQUIRED)}, "
            f"{', '.join(_OPTIONAL)})"
        )
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{where}.{key}: missing")
    fields = dict(raw)
    fields.setdefault("load", 0.0)
    fields.setdefault("latency_ms", 0.0)
    fields.setdefault("tasks_in_flight", 0)
    fields.setdefault("free_memory_mb", fields["memory_mb"])
    if "free_cpu" not in fields:
        q, load = fields["cpu_quota"], fields["load"]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (q, load))
        fields["free_cpu"] = q * (1.0 - load) if numbers and 0 <= load <= 1 else q
    try:
        return NodeState(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _task(path: Path, raw: Any) -> Task:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: task: must be a table of fields, got {raw!r}")
    unknown = sorted(set(raw) - set(_TASK_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: task.{unknown[0]}: unknown field (known: task_id, memory_mb, cpu)"
        )
    try:
        return Task(
            task_id=raw.get("task_id", "task"),
            memory_mb=raw.get("memory_mb", 0.0),
            cpu=raw.get("cpu", 0.0),
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_fleet_file(path: str | Path) -> FleetFile:
    """Load and validate node states (and the optional task) from a ``.toml`` or ``.json`` file.

    Raises:
        ConfigError: naming the file and the field, e.g.
            ``fleet.toml: nodes[2].load: must be between 0 and 1, got 1.7``.
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table with 'nodes'")
    unknown = sorted(set(data) - {"nodes", "task"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown section (known: nodes, task)")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError(f"{path}: nodes: must be a non-empty list of node tables")
    nodes = tuple(_node(path, i, raw) for i, raw in enumerate(raw_nodes))
    seen: set[str] = set()
    for i, n in enumerate(nodes):
        if n.name in seen:
            raise ConfigError(f"{path}: nodes[{i}].name: duplicate node name {n.name!r}")
        seen.add(n.name)
    task = _task(path, data["task"]) if "task" in data else None
    return FleetFile(nodes=nodes, task=task)
