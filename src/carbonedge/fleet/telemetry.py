"""Per-node telemetry for the scheduler (paper Algorithm 1 inputs, Eq. 4's P_node and T_avg).

Kept cheap: a few floats and a short deque per node, updated when a task is submitted or returns,
read in microseconds by ``node_states()``. Every :class:`NodeState` field means what
docs/scheduler.md says; nobody patches a state after this module built it.

- ``load``: CPU seconds of the tasks finished in the last ``window_s`` seconds divided by
  ``window_s x cpu_quota`` (so 1.0 = the node's quota is fully used), clipped to 0..1. With
  ``window_s == 0`` (the engine's default) it is the node's occupancy at the moment of the
  decision instead: ``min(1, tasks_in_flight / max_in_flight)``, where ``max_in_flight`` (1 by
  default, at most :data:`MAX_IN_FLIGHT`) is how many tasks a node may hold at once, running or
  waiting in its own queue. With 1, a node that runs a task is full (load 1 > Algorithm 1's
  limit of 0.8); with 2, it takes its next task while it runs one (load 0.5), so that it never
  waits idle for the way back of a result and the dispatch of the next task. Occupancy suits
  both a closed loop (the paper's runs) and an engine that dispatches only to nodes that pass
  Algorithm 1's filter; a sliding window makes the node that ran the last task look busy.
- ``latency_ms``: EMA of the dispatch latency, submit-to-result minus execution time minus the
  time the task waited in the node's own queue (the local analogue of the network latency that
  AMP4EC's Algorithm 1 compares with a threshold; queueing is ``tasks_in_flight``, not latency).
  The EMA decays with time since the node's last result (halving every ``latency_half_life_s``),
  so a node filtered for latency becomes eligible again once the load that slowed it has passed.
- ``avg_time_s``: the median of the last ``AVG_TIME_WINDOW`` (32) execution-time samples in
  seconds (Algorithm 1's ``avg_time``; Eq. 4's T_avg), kept per deployed model: a node that ran a
  small pipeline segment a moment ago is not fast at the whole model. ``state(now, model_key)``
  gives that model's median (the node-wide one, over every model's samples, for a model the
  node has not run yet). What one sample is depends on ``exec_time_source``, set by the fleet
  that knows what its nodes are: ``"wall"`` (real hosts and devices; Ray with
  ``enforcement="none"``): the task's measured wall-clock ``exec_ms``. ``"cpu_share"`` (nodes
  that are CPU-quota'd slices of one shared host: the local process fleet, cgroup or dilation;
  Ray with dilation; the in-process fake on request): the task's ``cpu_s`` divided by the cores
  it can run on, ``min(cpu_quota, 1)`` (one inference thread), i.e. its time on the node when
  the host is not shared; waiting for the host's other processes is an artefact of the
  simulation, not a property of the node. A task without CPU time (``cpu_s <= 0``) gives its
  wall time. The median, unlike an EWMA, is not moved by one slow warm-up. See
  docs/scheduler.md.
- ``tasks_in_flight``: tasks submitted and not yet returned (Algorithm 1's ``task_count``).
- ``power_w``: the node's power *while running a task* (Eq. 4's P_node): the profile at full
  load, ``max_w``, for ``linear`` nodes, or the last measured value for ``power = "measured"``
  nodes. (Power at the current load would be the idle power of an idle node and make every idle
  node look carbon-free.)
- ``intensity_g_per_kwh``: the node's grid intensity at decision time, pushed by the engine's
  intensity feed (``set_intensity``); the fleet file's static value until then (0 for a
  zone-only node that no engine feeds).
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Literal, get_args

from carbonedge.errors import ConfigError
from carbonedge.fleet.spec import NodeSpec
from carbonedge.scheduling import NodeState  # pure: no torch, no I/O

__all__ = [
    "AVG_TIME_WINDOW",
    "MAX_IN_FLIGHT",
    "ExecTimeSource",
    "NodeState",
    "NodeTelemetry",
    "check_max_in_flight",
]

# How many recent execution-time samples per (node, model) ``avg_time_s`` is the median of. 32
# tasks span several warm-up rounds of an experiment, so a slow warm-up (or two) is outvoted,
# and a node whose speed really changes is followed within 16 tasks.
AVG_TIME_WINDOW = 32

# What one execution-time sample is (module docstring): the measured wall time, or the task's
# CPU seconds over the cores the node may use (nodes simulated on a shared host).
ExecTimeSource = Literal["wall", "cpu_share"]

# Most tasks a node may be given at once (``max_in_flight``): with occupancy as the load, k - 1
# tasks out of k must stay within Algorithm 1's load limit of 0.8 for a node to take its k-th,
# which holds up to k = 5; 4 is already more than hiding a dispatch needs.
MAX_IN_FLIGHT = 4


def check_max_in_flight(value: object) -> int:
    """``value`` if it is a whole number of tasks in 1..:data:`MAX_IN_FLIGHT`; else ConfigError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_IN_FLIGHT:
        raise ConfigError(
            f"max_in_flight: must be a whole number from 1 to {MAX_IN_FLIGHT} (tasks a node may "
            f"hold at once), got {value!r}"
        )
    return value


class NodeTelemetry:
    """Mutable counters for one node; the fleet calls it under its own lock."""

    def __init__(
        self,
        spec: NodeSpec,
        *,
        window_s: float = 5.0,
        ema_alpha: float = 0.2,
        latency_half_life_s: float = 1.0,
        exec_time_source: ExecTimeSource = "wall",
        avg_time_window: int = AVG_TIME_WINDOW,
        max_in_flight: int = 1,
    ) -> None:
        check_max_in_flight(max_in_flight)
        if exec_time_source not in get_args(ExecTimeSource):
            raise ValueError(
                f"exec_time_source must be one of {get_args(ExecTimeSource)}, "
                f"got {exec_time_source!r}"
            )
        if avg_time_window < 1:
            raise ValueError(f"avg_time_window must be >= 1, got {avg_time_window}")
        self.spec = spec
        self.max_in_flight = max_in_flight
        self.exec_time_source: ExecTimeSource = exec_time_source
        self.avg_time_window = avg_time_window
        self.window_s = window_s
        self.ema_alpha = ema_alpha
        self.latency_half_life_s = latency_half_life_s
        self.last_result_s = 0.0
        self.intensity_g_per_kwh = spec.intensity_g_per_kwh or 0.0
        self.running_power_w = spec.power.power_w(1.0)
        self.tasks_in_flight = 0
        self.avg_exec_s = 0.0
        self.dispatch_ms = 0.0
        self.completed = 0
        self.measured_power_w: float | None = None
        self.used_memory_mb = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (finished monotonic s, cpu_s)
        # The last ``avg_time_window`` samples (s), node-wide and per model; their medians are
        # kept up to date in ``finished`` so that ``state`` only reads them.
        self._samples: deque[float] = deque(maxlen=avg_time_window)
        self._samples_by_model: dict[str, deque[float]] = {}
        self._avg_exec_s_by_model: dict[str, float] = {}

    def submitted(self) -> None:
        self.tasks_in_flight += 1

    def failed(self) -> None:
        self.tasks_in_flight = max(0, self.tasks_in_flight - 1)

    def finished(
        self,
        now_s: float,
        cpu_s: float,
        exec_ms: float,
        latency_ms: float,
        model_key: str = "",
        queued_ms: float = 0.0,
    ) -> None:
        """Record one finished task; ``now_s`` is ``time.monotonic()``; ``queued_ms``: how long
        it waited in the node's own queue before it started (left out of the latency)."""
        self.tasks_in_flight = max(0, self.tasks_in_flight - 1)
        a = self.ema_alpha if self.completed else 1.0
        sample_s = self.exec_sample_s(cpu_s, exec_ms)
        self._samples.append(sample_s)
        self.avg_exec_s = statistics.median(self._samples)
        window = self._samples_by_model.get(model_key)
        if window is None:
            window = self._samples_by_model[model_key] = deque(maxlen=self.avg_time_window)
        window.append(sample_s)
        self._avg_exec_s_by_model[model_key] = statistics.median(window)
        dispatch_ms = max(0.0, latency_ms - exec_ms - queued_ms)
        self.dispatch_ms = self.latency_ms(now_s)
        self.dispatch_ms += a * (dispatch_ms - self.dispatch_ms)
        self.last_result_s = now_s
        self.completed += 1
        if self.window_s > 0:
            self._recent.append((now_s, cpu_s))

    def exec_sample_s(self, cpu_s: float, exec_ms: float) -> float:
        """One task's execution-time sample (s) for ``avg_time_s``: ``exec_ms / 1000`` with the
        ``"wall"`` source; ``cpu_s / min(cpu_quota, 1)`` with ``"cpu_share"`` (the node runs
        one inference thread, so a quota above one core does not make a task faster), or the
        wall time where the task reported no CPU time."""
        if self.exec_time_source == "cpu_share" and cpu_s > 0:
            return cpu_s / min(self.spec.cpu_quota, 1.0)
        return exec_ms / 1000.0

    def load(self, now_s: float) -> float:
        """Fraction (0..1) of the node's CPU quota used over the last ``window_s`` seconds, or
        (``window_s == 0``) its occupancy, ``tasks_in_flight / max_in_flight``."""
        if self.window_s <= 0:
            return min(1.0, self.tasks_in_flight / self.max_in_flight)
        horizon = now_s - self.window_s
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        used = sum(c for _, c in self._recent)
        return min(1.0, used / (self.window_s * self.spec.cpu_quota))

    def latency_ms(self, now_s: float) -> float:
        """The dispatch-latency EMA, decayed by the time since the node's last result (ms)."""
        if not self.dispatch_ms:
            return 0.0
        idle_s = now_s - self.last_result_s
        if idle_s <= 0 or self.latency_half_life_s <= 0:
            return self.dispatch_ms
        return float(self.dispatch_ms * 0.5 ** (idle_s / self.latency_half_life_s))

    def state(self, now_s: float, model_key: str | None = None) -> NodeState:
        spec = self.spec
        avg_exec_s = self.avg_exec_s
        if model_key is not None:
            avg_exec_s = self._avg_exec_s_by_model.get(model_key, avg_exec_s)
        load = self.load(now_s)
        if spec.power.kind == "measured" and self.measured_power_w is not None:
            power_w = self.measured_power_w
        else:
            power_w = self.running_power_w
        return NodeState(
            name=spec.name,
            cpu_quota=spec.cpu_quota,
            memory_mb=spec.memory_mb,
            free_cpu=spec.cpu_quota * (1.0 - load),
            free_memory_mb=max(0.0, spec.memory_mb - self.used_memory_mb),
            load=load,
            latency_ms=self.latency_ms(now_s),
            avg_time_s=avg_exec_s,
            tasks_in_flight=self.tasks_in_flight,
            power_w=power_w,
            intensity_g_per_kwh=self.intensity_g_per_kwh,
        )
