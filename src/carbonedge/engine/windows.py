"""Named measurement windows: ``begin_window(name)`` / ``end_window(name)`` -> :class:`Measurement`.

In the spirit of Zeus's windows: a window measures the host with an
:class:`~carbonedge.carbon.EnergyMeter` (CodeCarbon, a sensor, a fake) and the CPU seconds of
each node and of the whole host between its two ends, and returns a frozen
:class:`Measurement` whose field names carry their units. Windows may overlap: each open window
has its own meter instance (made by the factory, reused once closed). ``serve``'s rolling windows
(:mod:`carbonedge.engine.rates`) and ``reproduce``'s run windows are both such windows.

Node CPU seconds come from each node's processes (psutil, where the backend exposes pids) and
survive a node restart mid-window: when a node's pid changes, the CPU the old process had used
since the window began is kept and the new process is counted from zero; where a restart lost
what the old process did after the last look, or where no pids exist (Ray), the CPU seconds the
node's finished tasks reported (``record``) are used instead when they are larger.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from carbonedge.accounting import AttributionError, EnergyMeter, EnergyReading
from carbonedge.carbon import cpu_seconds, host_busy_cpu_seconds
from carbonedge.errors import CarbonEdgeError
from carbonedge.fleet import FleetBackend

__all__ = ["IdleBaseline", "Measurement", "MeasurementWindows", "NodeCpu", "WindowError"]

#: Host CPU utilisation (busy CPU-s / (window s x CPUs)) above which an idle window is "busy":
#: other processes' load is then in its power samples, so they are no idle baseline.
BUSY_HOST_UTILISATION = 0.10


class WindowError(CarbonEdgeError):
    """A window was begun twice or ended without being begun."""


@dataclass(frozen=True)
class Measurement:
    """What one window measured.

    Attributes:
        name: the window's name.
        duration_s: wall time between ``begin_window`` and ``end_window``, s.
        reading: the host meter's reading (energy per component in kWh, how each was obtained,
            the power samples).
        node_cpu_s: CPU seconds each node's processes used in the window (see the module
            docstring for restarts and backends without pids).
        host_cpu_s: busy CPU seconds of the whole host in the window (None where unknown).
        node_cpu_source: ``psutil`` (node processes measured) or ``tasks`` (sum of the tasks'
            own CPU seconds, for backends without pids).
    """

    name: str
    duration_s: float
    reading: EnergyReading
    node_cpu_s: Mapping[str, float]
    host_cpu_s: float | None
    node_cpu_source: str = "psutil"

    @property
    def energy_kwh(self) -> float:
        """Host energy in the window, kWh (all components)."""
        return self.reading.energy_kwh

    @property
    def method_label(self) -> str:
        """``cpu=... gpu=... ram=...``: how each component's energy was obtained."""
        return self.reading.method_label


@dataclass(frozen=True)
class IdleBaseline:
    """The CPU idle baseline of ``cputime`` attribution and how it was chosen.

    Attributes:
        power_w: the baseline used, W.
        source: ``model-floor`` (the meter's CPU model at zero load, e.g. CodeCarbon's
            ``0.1 x TDP``), ``measured`` (lowest CPU sample of an idle window on a quiet host)
            or ``measured-busy`` (same, but the host was busy and no model floor is known:
            an overestimate).
        measured_min_w: lowest CPU power sample of the idle window, W.
        model_floor_w: the meter's CPU power at zero load, W (None where unknown).
        host_utilisation: busy share of all host CPUs during the idle window (0-1; None
            where unknown).
        duration_s: length of the idle window, s.
    """

    power_w: float
    source: str
    measured_min_w: float
    model_floor_w: float | None
    host_utilisation: float | None
    duration_s: float

    def describe(self) -> str:
        util = (
            f"{100 * self.host_utilisation:.0f}%"
            if self.host_utilisation is not None
            else "unknown"
        )
        seen = (
            f"idle window of {self.duration_s:.0f} s: lowest CPU sample "
            f"{self.measured_min_w:.3f} W, host CPUs {util} busy"
        )
        if self.source == "model-floor":
            return (
                f"{self.power_w:.3f} W, the energy model's CPU floor at zero load "
                f"(CodeCarbon CPU-load model: 0.1 x TDP) — {seen}"
            )
        if self.source == "measured-busy":
            return (
                f"{self.power_w:.3f} W measured on a BUSY host (> "
                f"{100 * BUSY_HOST_UTILISATION:.0f}%) and no model floor known: static "
                f"energy is overestimated — {seen}"
            )
        return f"{self.power_w:.3f} W measured — {seen}"


class NodeCpu:
    """Cumulative CPU seconds per node, robust to node restarts (see the module docstring)."""

    def __init__(self, fleet: FleetBackend) -> None:
        self._fleet = fleet
        self._pids_of: Callable[[], dict[str, int | None]] | None = getattr(
            fleet, "node_pids", None
        )
        self._lock = threading.Lock()
        self._base: dict[str, float] = dict.fromkeys(fleet.spec.names, 0.0)
        self._pid: dict[str, int | None] = dict.fromkeys(fleet.spec.names)
        self._last: dict[str, float] = dict.fromkeys(fleet.spec.names, 0.0)
        self._tasks: dict[str, float] = dict.fromkeys(fleet.spec.names, 0.0)

    @property
    def source(self) -> str:
        return "psutil" if self._pids_of is not None else "tasks"

    def record(self, node: str, cpu_s: float) -> None:
        """Add one finished task's CPU seconds (a dict update under a lock)."""
        with self._lock:
            self._tasks[node] = self._tasks.get(node, 0.0) + cpu_s

    def sample(self) -> tuple[dict[str, float], dict[str, float]]:
        """(cumulative process CPU s per node, cumulative task CPU s per node)."""
        pids = self._pids_of() if self._pids_of is not None else {}
        with self._lock:
            for name, pid in pids.items():
                if pid != self._pid.get(name):
                    self._base[name] = self._base.get(name, 0.0) + self._last.get(name, 0.0)
                    self._pid[name], self._last[name] = pid, 0.0
                if pid is not None:
                    with contextlib.suppress(AttributionError):  # gone: its last reading stands
                        self._last[name] = cpu_seconds([pid])
            process = {n: self._base[n] + self._last[n] for n in self._base}
            return process, dict(self._tasks)


@dataclass
class _Open:
    meter: EnergyMeter
    t0: float
    process0: dict[str, float]
    tasks0: dict[str, float]
    host0: float
    extra: dict[str, object] = field(default_factory=dict)


class MeasurementWindows:
    """Named windows over one fleet; ``meter_factory`` makes one meter per open window."""

    def __init__(self, meter_factory: Callable[[], EnergyMeter], cpu: NodeCpu) -> None:
        self._factory = meter_factory
        self.cpu = cpu
        self._lock = threading.Lock()
        self._idle: list[EnergyMeter] = []
        self._open: dict[str, _Open] = {}

    def begin_window(self, name: str) -> None:
        """Start measuring window ``name`` now."""
        with self._lock:
            if name in self._open:
                raise WindowError(f"window {name!r} is already open")
            meter = self._idle.pop() if self._idle else self._factory()
        meter.start()
        process0, tasks0 = self.cpu.sample()
        host0 = host_busy_cpu_seconds()
        with self._lock:
            self._open[name] = _Open(meter, time.perf_counter(), process0, tasks0, host0)

    def end_window(self, name: str) -> Measurement:
        """Stop window ``name`` and return what it measured."""
        with self._lock:
            w = self._open.pop(name, None)
        if w is None:
            raise WindowError(f"window {name!r} was not begun")
        process1, tasks1 = self.cpu.sample()
        host1 = host_busy_cpu_seconds()
        duration_s = time.perf_counter() - w.t0
        try:
            reading = w.meter.stop()
        finally:
            with self._lock:
                self._idle.append(w.meter)
        node_cpu = {}
        for n in process1:
            by_tasks = max(0.0, tasks1.get(n, 0.0) - w.tasks0.get(n, 0.0))
            by_process = max(0.0, process1[n] - w.process0.get(n, 0.0))
            node_cpu[n] = max(by_process, by_tasks) if self.cpu.source == "psutil" else by_tasks
        host = max(0.0, host1 - w.host0) if self.cpu.source == "psutil" else None
        return Measurement(name, duration_s, reading, node_cpu, host, self.cpu.source)

    def cancel(self, name: str) -> None:
        """Drop an open window without a measurement (its meter is stopped and kept)."""
        with self._lock:
            w = self._open.pop(name, None)
        if w is not None:
            try:
                w.meter.stop()
            except Exception:  # a meter that fails to stop is not reused
                return
            with self._lock:
                self._idle.append(w.meter)

    def idle_cpu_power_w(self, duration_s: float) -> float:
        """CPU idle baseline (W): :meth:`idle_baseline`'s ``power_w``."""
        return self.idle_baseline(duration_s).power_w

    def idle_baseline(self, duration_s: float) -> IdleBaseline:
        """Measure a window of ``duration_s`` s in which the fleet runs nothing, and choose the
        CPU idle baseline: the meter's model floor where it declares one
        (``details["cpu_idle_floor_w"]``: a model's zero-load power is exact, whatever else
        the host runs), else the lowest CPU sample (or the mean without samples), flagged
        ``measured-busy`` when other processes kept the host's CPUs over
        :data:`BUSY_HOST_UTILISATION` busy in the same window (psutil)."""
        name = f"idle-{time.monotonic_ns()}"
        self.begin_window(name)
        time.sleep(duration_s)
        m = self.end_window(name)
        reading = m.reading
        powers = [s.cpu_w for s in reading.samples if s.t_s > 0]
        low = min(powers) if powers else reading.mean_power_w("cpu")
        low = low if math.isfinite(low) else 0.0
        util = None
        if m.host_cpu_s is not None and m.duration_s > 0:
            util = m.host_cpu_s / (m.duration_s * (os.cpu_count() or 1))
        try:
            floor: float | None = float(reading.info.details["cpu_idle_floor_w"])
        except (KeyError, ValueError):
            floor = None
        if floor is not None and math.isfinite(floor) and floor >= 0:
            return IdleBaseline(floor, "model-floor", low, floor, util, m.duration_s)
        busy = util is not None and util > BUSY_HOST_UTILISATION
        source = "measured-busy" if busy else "measured"
        return IdleBaseline(low, source, low, None, util, m.duration_s)
