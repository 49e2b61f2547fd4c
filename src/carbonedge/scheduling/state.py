"""What the scheduler reads: one node's telemetry and one task's needs (paper III.C-D).

Telemetry from the fleet (``carbonedge.fleet``) fills a fresh :class:`NodeState` per node before
each decision. Values are checked on construction so that a bad reading fails where it enters,
with a :class:`~carbonedge.errors.ConfigError` naming the field, rather than as a strange score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from carbonedge.errors import ConfigError

__all__ = ["NodeState", "Task"]


def _bad(field: str, rule: str, value: object) -> ConfigError:
    return ConfigError(f"{field}: {rule}, got {value!r}")


@dataclass(frozen=True, slots=True)
class NodeState:
    """One edge node as the scheduler sees it at decision time.

    Attributes:
        name: the node's name, unique within a fleet.
        cpu_quota: CPU the node may use, in cores (Node-High 1.0, Node-Green 0.4).
        memory_mb: memory limit of the node, in MB.
        free_cpu: CPU not in use now, in cores (0 .. ``cpu_quota``).
        free_memory_mb: memory not in use now, in MB (0 .. ``memory_mb``).
        load: CPU utilisation of the node, 0..1 (Algorithm 1 skips nodes above 0.8).
        latency_ms: network latency to reach the node, in ms (Algorithm 1's ``n.latency``).
        avg_time_s: historical average execution time of one task on the node, in s
            (Algorithm 1's ``n.avg_time``; Eq. 4's ``T_avg`` is the same value in ms).
        tasks_in_flight: tasks queued or running on the node now (Algorithm 1's ``task_count``).
        power_w: the node's average power draw while running, in W (Eq. 4's ``P_node``).
        intensity_g_per_kwh: the node's current grid carbon intensity, in gCO2/kWh.
    """

    name: str
    cpu_quota: float
    memory_mb: float
    free_cpu: float
    free_memory_mb: float
    load: float
    latency_ms: float
    avg_time_s: float
    tasks_in_flight: int
    power_w: float
    intensity_g_per_kwh: float

    def __post_init__(self) -> None:
        # One cheap pass; telemetry builds these once per task, so keep it to comparisons.
        if not isinstance(self.name, str) or not self.name:
            raise _bad("name", "must be a non-empty string", self.name)
        for field in (
            "cpu_quota",
            "memory_mb",
            "free_cpu",
            "free_memory_mb",
            "load",
            "latency_ms",
            "avg_time_s",
            "power_w",
            "intensity_g_per_kwh",
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(field, "must be a number", value)
            if not math.isfinite(value) or value < 0:
                raise _bad(field, "must be a finite number >= 0", value)
        if self.cpu_quota <= 0:
            raise _bad("cpu_quota", "must be > 0 cores", self.cpu_quota)
        if self.memory_mb <= 0:
            raise _bad("memory_mb", "must be > 0 MB", self.memory_mb)
        if self.free_cpu > self.cpu_quota:
            raise _bad("free_cpu", f"must be at most cpu_quota {self.cpu_quota}", self.free_cpu)
        if self.free_memory_mb > self.memory_mb:
            raise _bad(
                "free_memory_mb", f"must be at most memory_mb {self.memory_mb}", self.free_memory_mb
            )
        if self.load > 1:
            raise _bad("load", "must be between 0 and 1", self.load)
        tasks = self.tasks_in_flight
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 0:
            raise _bad("tasks_in_flight", "must be an integer >= 0", tasks)


@dataclass(frozen=True, slots=True)
class Task:
    """One inference task to place.

    Attributes:
        task_id: the caller's identifier (kept in the decision, never interpreted).
        memory_mb: memory the task needs on the node, in MB.
        cpu: CPU the task needs, in cores; 0 means "no CPU requirement" (the default).
    """

    task_id: str | int
    memory_mb: float = 0.0
    cpu: float = 0.0

    def __post_init__(self) -> None:
        for field in ("memory_mb", "cpu"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(f"task.{field}", "must be a number", value)
            if not math.isfinite(value) or value < 0:
                raise _bad(f"task.{field}", "must be a finite number >= 0", value)
