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

Files must be UTF-8 (a byte-order mark is allowed), at most
:data:`~carbonedge.validation.MAX_CONFIG_BYTES` and nested at most
:data:`~carbonedge.validation.MAX_NESTING_DEPTH` deep; numbers must be finite (no NaN or
Infinity) and at most :data:`MAX_FIELD_VALUE`; node names follow
:data:`~carbonedge.validation.NODE_NAME_PATTERN` (docs/security.md).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carbonedge.errors import ConfigError
from carbonedge.scheduling.state import NodeState, Task
from carbonedge.validation import (
    MAX_FIELD_VALUE,
    MAX_NESTING_DEPTH,
    check_tree,
    field_path,
    node_name_problem,
    read_text_file,
    shown,
)

__all__ = ["FleetFile", "load_fleet_file"]

_REQUIRED = ("name", "cpu_quota", "memory_mb", "avg_time_s", "power_w", "intensity_g_per_kwh")
_OPTIONAL = ("load", "latency_ms", "tasks_in_flight", "free_cpu", "free_memory_mb")
_TASK_KEYS = ("task_id", "memory_mb", "cpu")

"""Largest value a numeric field of a node-state file may hold (cores, MB, s, W, gCO2/kWh...).
Far above any real node; keeps the scheduler's scores far from float overflow."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (numbers must be finite)")


@dataclass(frozen=True, slots=True)
class FleetFile:
    """What a fleet-state file holds: the node states in order and the task (None if absent)."""

    nodes: tuple[NodeState, ...]
    task: Task | None


def _read(path: Path) -> Any:
    text = read_text_file(path, "fleet file")
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        if kind == "JSON":
            data = json.loads(text, parse_constant=_reject_constant)
        else:
            data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            f"{path}: not valid {kind}: nests deeper than {MAX_NESTING_DEPTH} levels"
        ) from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    except ValueError as exc:  # NaN/Infinity in JSON, an integer of more than 4300 digits
        raise ConfigError(f"{path}: not valid {kind}: {shown(str(exc), 120)}") from None
    check_tree(data, str(path))
    return data


def _check_numbers(where: str, raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = raw.get(key)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and value > MAX_FIELD_VALUE
        ):
            raise ConfigError(f"{where}.{key}: must be at most {MAX_FIELD_VALUE:g}, got {value!r}")


def _node(path: Path, i: int, raw: Any) -> NodeState:
    where = f"{path}: nodes[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table of fields, got {shown(raw)}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ConfigError(
            f"{where}.{field_path((unknown[0],))}: unknown field (known: {', '.join(_REQUIRED)}, "
            f"{', '.join(_OPTIONAL)})"
        )
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{where}.{key}: missing")
    problem = node_name_problem(raw["name"])
    if problem is not None:
        raise ConfigError(f"{where}.name: {problem}")
    _check_numbers(where, raw, (*_REQUIRED[1:], *_OPTIONAL))
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
        raise ConfigError(f"{path}: task: must be a table of fields, got {shown(raw)}")
    unknown = sorted(set(raw) - set(_TASK_KEYS))
    if unknown:
        key = field_path((unknown[0],))
        raise ConfigError(f"{path}: task.{key}: unknown field (known: task_id, memory_mb, cpu)")
    task_id = raw.get("task_id", "task")
    if isinstance(task_id, bool) or not isinstance(task_id, str | int):
        raise ConfigError(
            f"{path}: task.task_id: must be a string or an integer, got {shown(task_id)}"
        )
    _check_numbers(f"{path}: task", raw, ("memory_mb", "cpu"))
    try:
        return Task(
            task_id=task_id,
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
        raise ConfigError(
            f"{path}: {field_path((unknown[0],))}: unknown section (known: nodes, task)"
        )
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
