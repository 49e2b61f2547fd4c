"""Power sensors as the project's :class:`~carbonedge.carbon.energy.EnergyMeter` (Eq. 1).

:class:`SensorMeter` reads its sensors at ``start()``, every ``interval_s`` seconds on a
background thread, and at ``stop()``. Energy per rail over the window:

- counter rails (``energy_j``): last minus first reading (the sensor corrects wrap-around, so
  this is never negative);
- power rails (``power_w``): the trapezoid integral of the readings (Eq. 1), in J.

Rails are summed into their component (``cpu``, ``gpu``, ``ram``) and converted once to kWh
(J / 3.6e6). A component fed by no rail is labelled ``included-in-cpu`` when a rail's figure
covers it (a whole-board rail), else ``none``. The reading's power samples (W) are taken at
every poll: a power rail's reading, or a counter rail's mean power over the interval ending
there (the first interval at t = 0). ``duration_s`` is the integrated span, first to last read.

A failed poll is skipped and recorded (``info.details["failed_polls"]``, ``["errors"]``); if the
read at ``stop()`` fails, the energy ends at the last good poll, ``duration_s`` is the whole
window, and ``["errors"]`` says so (a documented fallback, not a crash).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from carbonedge.accounting import COMPONENTS, EnergyReading, MeterInfo, PowerSample
from carbonedge.accounting.units import J_PER_KWH
from carbonedge.carbon.errors import MeterError
from carbonedge.carbon.sensors.base import PowerSensor, Rail, SensorError, SensorSample


@dataclass(frozen=True)
class _Poll:
    t_s: float  # meter clock, seconds
    samples: tuple[SensorSample, ...]  # one per sensor, same order as the meter's sensors


def _rail_energy_j(rail: Rail, polls: Sequence[_Poll], i: int) -> float:
    """Energy (J) of ``rail`` of sensor ``i`` over ``polls``."""
    if rail.kind == "energy":
        first = polls[0].samples[i].values[rail.name].energy_j or 0.0
        last = polls[-1].samples[i].values[rail.name].energy_j or 0.0
        return max(0.0, last - first)
    total = 0.0
    for a, b in itertools.pairwise(polls):
        sa, sb = a.samples[i], b.samples[i]
        pa = sa.values[rail.name].power_w or 0.0
        pb = sb.values[rail.name].power_w or 0.0
        total += 0.5 * (pa + pb) * max(0.0, sb.t_s - sa.t_s)
    return total


def _power_at_w(rail: Rail, polls: Sequence[_Poll], i: int, k: int) -> float:
    """Power (W) of ``rail`` of sensor ``i`` at poll ``k``: a power rail's reading, or a counter
    rail's mean over the interval ending at poll ``k`` (the first interval for ``k = 0``)."""
    if rail.kind == "power":
        return polls[k].samples[i].values[rail.name].power_w or 0.0
    if len(polls) < 2:
        return 0.0
    a, b = polls[k - 1 if k else 0].samples[i], polls[k if k else 1].samples[i]
    dt = b.t_s - a.t_s
    de = (b.values[rail.name].energy_j or 0.0) - (a.values[rail.name].energy_j or 0.0)
    return max(0.0, de / dt) if dt > 0 else 0.0


class SensorMeter:
    """An :class:`~carbonedge.carbon.energy.EnergyMeter` over one or more power sensors.

    Two sensors may not feed the same component (e.g. RAPL ``cpu`` + NVML ``gpu`` is fine).
    ``background=False`` disables the sampling thread: call :meth:`poll` yourself (tests).
    ``details`` are added to every reading's ``info.details`` (e.g. what detection chose).
    """

    def __init__(
        self,
        sensors: Sequence[PowerSensor],
        *,
        interval_s: float = 1.0,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        details: Mapping[str, str] | None = None,
    ) -> None:
        if not sensors:
            raise SensorError("SensorMeter needs at least one sensor")
        if interval_s <= 0:
            raise MeterError(f"interval_s must be > 0, got {interval_s}")
        fed: dict[str, str] = {}
        for s in sensors:
            for r in s.rails():
                if r.component and fed.setdefault(r.component, s.method) != s.method:
                    raise SensorError(
                        f"{r.component} is fed by both {fed[r.component]} and {s.method}"
                    )
        self._sensors = tuple(sensors)
        self._interval_s = interval_s
        self._background = background
        self._clock = clock
        self._details = dict(details or {})
        self._lock = threading.Lock()
        self._polls: list[_Poll] = []
        self._errors: list[str] = []
        self._failed = 0
        self._started: tuple[float, datetime] | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.rail_energy_j: dict[str, float] = {}
        """Energy (J) per rail (``method:rail``) of the last window, set by :meth:`stop`."""

    @property
    def sensors(self) -> tuple[PowerSensor, ...]:
        return self._sensors

    def _read_all(self) -> _Poll:
        t_s = self._clock()
        return _Poll(t_s, tuple(s.read() for s in self._sensors))

    def start(self) -> None:
        """Read every sensor (a SensorError here means no window) and start sampling."""
        if self._started is not None:
            raise MeterError("SensorMeter.start() called twice without stop()")
        first = self._read_all()
        with self._lock:
            self._polls, self._errors, self._failed = [first], [], 0
        self._started = (first.t_s, datetime.now(UTC))
        if self._background:
            self._stop_event = threading.Event()
            self._thread = threading.Thread(target=self._run, name="sensor-meter", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            self.poll()

    def poll(self) -> bool:
        """Read every sensor once; a failure is recorded and skipped. True if it succeeded."""
        try:
            p = self._read_all()
        except SensorError as exc:
            with self._lock:
                self._failed += 1
                if len(self._errors) < 5:
                    self._errors.append(str(exc))
            return False
        with self._lock:
            self._polls.append(p)
        return True

    def _power_sample(self, polls: Sequence[_Poll], k: int, t0: float) -> PowerSample:
        watts = dict.fromkeys(COMPONENTS, 0.0)
        for i, sensor in enumerate(self._sensors):
            for rail in sensor.rails():
                if rail.component:
                    watts[rail.component] += _power_at_w(rail, polls, i, k)
        return PowerSample(polls[k].t_s - t0, watts["cpu"], watts["gpu"], watts["ram"])

    def stop(self) -> EnergyReading:
        """Stop sampling, read once more and return the window's energy (kWh per component)."""
        if self._started is None:
            raise MeterError("SensorMeter.stop() called before start()")
        t0, started_at = self._started
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop_event.set()
            thread.join(timeout=5.0)
        final_ok = self.poll()
        self._started = None
        end_s = self._clock()
        with self._lock:
            polls, errors, failed = list(self._polls), list(self._errors), self._failed
        if not final_ok:
            errors.append(f"final read failed: energy counted up to t={polls[-1].t_s - t0:.3f} s")
        kwh = dict.fromkeys(COMPONENTS, 0.0)
        methods: dict[str, str] = {}
        covered: dict[str, str] = {}
        self.rail_energy_j = {}
        for i, sensor in enumerate(self._sensors):
            for rail in sensor.rails():
                joules = _rail_energy_j(rail, polls, i)
                self.rail_energy_j[f"{sensor.method}:{rail.name}"] = joules
                if rail.component:
                    kwh[rail.component] += joules / J_PER_KWH
                    methods[rail.component] = sensor.method
                    for c in rail.covered:
                        covered.setdefault(c, rail.component)
        method = {
            c: methods.get(c) or (f"included-in-{covered[c]}" if c in covered else "none")
            for c in COMPONENTS
        }
        samples = [self._power_sample(polls, k, t0) for k in range(len(polls))]
        details = {
            **self._details,
            "polls": str(len(polls)),
            "failed_polls": str(failed),
            "interval_s": str(self._interval_s),
            **{f"rail_j[{k}]": f"{v:.6f}" for k, v in self.rail_energy_j.items()},
        }
        if errors:
            details["errors"] = " | ".join(errors)
        hardware = tuple(
            f"{s.method}: {r.name} -> {r.component or 'reported only'} ({r.source})"
            for s in self._sensors
            for r in s.rails()
        )
        return EnergyReading(
            # the integrated span; if the final read failed, the whole window (see errors)
            duration_s=max(0.0, (polls[-1].t_s if final_ok else end_s) - t0),
            cpu_energy_kwh=kwh["cpu"],
            gpu_energy_kwh=kwh["gpu"],
            ram_energy_kwh=kwh["ram"],
            method=method,
            samples=tuple(samples),
            info=MeterInfo(meter="sensors", hardware=hardware, details=details),
            started_at=started_at,
            finished_at=datetime.now(UTC),
        )

    def close(self) -> None:
        """Stop sampling (if running) and close every sensor."""
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join(timeout=5.0)
            self._thread = None
        self._started = None
        for s in self._sensors:
            s.close()
