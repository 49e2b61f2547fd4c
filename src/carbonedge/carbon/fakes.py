"""Deterministic fakes for tests: a meter with a scripted power profile, a scripted clock.

The fake meter integrates its profile with Eq. 1 (trapezoid rule), so a test can compare the
reading with a hand computation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from carbonedge.accounting import EnergyReading, MeterInfo, PowerSample, integrate_kwh
from carbonedge.carbon.errors import MeterError

PowerProfile = Callable[[float], tuple[float, float, float]]
"""Maps seconds since start to (cpu_w, gpu_w, ram_w)."""


class FakeClock:
    """A monotonic clock (seconds) that only moves when told to."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now_s += seconds


class FakeMeter:
    """An :class:`~carbonedge.carbon.energy.EnergyMeter` reading a scripted power profile.

    Samples are taken at ``0, interval_s, 2 interval_s, ...`` and at the stop time, all in
    seconds since ``start()``; energy per component is their trapezoid integral (Eq. 1) in kWh.
    """

    def __init__(
        self,
        profile: PowerProfile,
        clock: Callable[[], float],
        interval_s: float = 1.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._profile = profile
        self._clock = clock
        self._interval_s = interval_s
        self._start_s: float | None = None

    def start(self) -> None:
        """Begin the window at the clock's current time."""
        self._start_s = self._clock()

    def stop(self) -> EnergyReading:
        """Sample the profile over the window and integrate it (Eq. 1)."""
        if self._start_s is None:
            raise MeterError("FakeMeter.stop() called before start()")
        duration_s = self._clock() - self._start_s
        self._start_s = None
        times = [0.0]
        while times[-1] + self._interval_s < duration_s:
            times.append(times[-1] + self._interval_s)
        if duration_s > 0:
            times.append(duration_s)
        samples = tuple(PowerSample(t, *self._profile(t)) for t in times)
        cpu, gpu, ram = (
            integrate_kwh(times, [getattr(s, f"{c}_w") for s in samples])
            for c in ("cpu", "gpu", "ram")
        )
        return EnergyReading(
            duration_s=duration_s,
            cpu_energy_kwh=cpu,
            gpu_energy_kwh=gpu,
            ram_energy_kwh=ram,
            method={"cpu": "fake", "gpu": "fake", "ram": "fake"},
            samples=samples,
            info=MeterInfo(meter="fake"),
            finished_at=datetime.now(UTC),
        )
