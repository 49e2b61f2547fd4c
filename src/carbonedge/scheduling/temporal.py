"""Carbon-aware time shifting: start a deferrable job when the grid is cleanest.

Paper Section II.D: "deferring non-urgent tasks to low-carbon time periods". Given a carbon
intensity forecast, a job of ``duration_s`` that may start at ``earliest`` and must end by
``deadline``, :func:`best_start` returns the start time that minimises the job's mean
intensity over its run, exactly.

The forecast is a step function: point ``(t_i, g_i)`` holds ``g_i`` gCO2/kWh on
``[t_i, t_{i+1})``; the last point holds until ``forecast_end`` (default: one more interval
of the forecast's last spacing, e.g. one hour for an hourly forecast). The mean over a window
is ``(1 / D) x integral_s^{s+D} I(t) dt`` (gCO2/kWh). That integral is piecewise linear in
``s`` with breakpoints where ``s`` or ``s + D`` crosses a step boundary, so its minimum lies
at ``earliest``, at ``deadline - D`` or at a breakpoint; a sliding window over the merged
breakpoints evaluates them all in O(n). Ties go to the earliest start.

Carbon for a job of ``energy_kwh`` run at constant power: Eq. 2, ``C = E x I_mean x PUE``.
Pure: no I/O, no clock (the caller passes ``earliest``, e.g. now).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carbonedge.errors import CarbonEdgeError

ForecastPoint = tuple[datetime, float]  # (timestamp, intensity in gCO2/kWh)


class ShiftError(CarbonEdgeError, ValueError):
    """A time-shifting input is unusable: empty forecast, impossible deadline, no coverage."""


def _seconds(at: datetime) -> float:
    """POSIX seconds of ``at`` (naive datetimes are taken as UTC)."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at).timestamp()


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat()


@dataclass(frozen=True)
class _Series:
    """A validated step function: ``times_s`` strictly increasing, ``prefix`` its integral."""

    times_s: tuple[float, ...]
    values: tuple[float, ...]
    end_s: float
    prefix: tuple[float, ...]  # integral from times_s[0] to times_s[i], (g/kWh) x s

    @classmethod
    def build(cls, forecast: Sequence[ForecastPoint], end: datetime | None) -> _Series:
        if not forecast:
            raise ShiftError("the intensity forecast is empty")
        points = sorted((_seconds(t), float(g)) for t, g in forecast)
        for i, (t, g) in enumerate(points):
            if not math.isfinite(g) or g < 0:
                raise ShiftError(f"forecast value at {_iso(t)} must be >= 0 gCO2/kWh, got {g}")
            if i and t == points[i - 1][0]:
                raise ShiftError(f"forecast has two points at {_iso(t)}")
        times = tuple(t for t, _ in points)
        values = tuple(g for _, g in points)
        if end is not None:
            end_s = _seconds(end)
            if end_s <= times[-1]:
                raise ShiftError(
                    f"forecast_end {_iso(end_s)} must be after the last point {_iso(times[-1])}"
                )
        elif len(times) >= 2:
            end_s = times[-1] + (times[-1] - times[-2])
        else:
            raise ShiftError(
                f"a one-point forecast ({_iso(times[0])}) covers no time: give forecast_end"
            )
        prefix = [0.0]
        for i in range(1, len(times)):
            prefix.append(prefix[-1] + values[i - 1] * (times[i] - times[i - 1]))
        return cls(times, values, end_s, tuple(prefix))

    def check_covers(self, start_s: float, end_s: float) -> None:
        if start_s < self.times_s[0] or end_s > self.end_s:
            raise ShiftError(
                f"the forecast covers {_iso(self.times_s[0])} .. {_iso(self.end_s)}, "
                f"not the window {_iso(start_s)} .. {_iso(end_s)}"
            )


class _Cursor:
    """Integral of the step function up to ``x`` for non-decreasing ``x``: amortised O(1)."""

    def __init__(self, series: _Series) -> None:
        self.s = series
        self.k = 0

    def integral_to(self, x: float) -> float:
        times = self.s.times_s
        while self.k + 1 < len(times) and times[self.k + 1] <= x:
            self.k += 1
        return self.s.prefix[self.k] + self.s.values[self.k] * (x - times[self.k])


def window_mean_g_per_kwh(
    forecast: Sequence[ForecastPoint],
    start: datetime,
    duration_s: float,
    *,
    forecast_end: datetime | None = None,
) -> float:
    """Mean intensity (gCO2/kWh) of the step forecast over ``[start, start + duration_s]``."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ShiftError(f"duration_s must be a finite number > 0, got {duration_s!r}")
    series = _Series.build(forecast, forecast_end)
    s = _seconds(start)
    series.check_covers(s, s + duration_s)
    cursor = _Cursor(series)
    before = cursor.integral_to(s)
    return (cursor.integral_to(s + duration_s) - before) / duration_s


@dataclass(frozen=True)
class ShiftPlan:
    """When to run a deferrable job: ``start``/``end`` (UTC), its mean intensity over the run
    ``mean_g_per_kwh`` against ``now_mean_g_per_kwh`` (starting at ``earliest``), both in
    gCO2/kWh, and ``saving_pct`` = relative reduction in %, i.e. in carbon at equal energy."""

    start: datetime
    end: datetime
    mean_g_per_kwh: float
    now_mean_g_per_kwh: float
    saving_pct: float
    earliest: datetime
    deadline: datetime

    @property
    def delay_s(self) -> float:
        """How long the job waits past ``earliest``, s."""
        return (self.start - self.earliest).total_seconds()

    def carbon_g(self, energy_kwh: float, pue: float = 1.0) -> float:
        """Carbon (gCO2) of the job run at the planned start (Eq. 2, constant power)."""
        return energy_kwh * self.mean_g_per_kwh * pue

    def now_carbon_g(self, energy_kwh: float, pue: float = 1.0) -> float:
        """Carbon (gCO2) of the same job started at ``earliest`` (Eq. 2, constant power)."""
        return energy_kwh * self.now_mean_g_per_kwh * pue

    def saved_g(self, energy_kwh: float, pue: float = 1.0) -> float:
        """Carbon (gCO2) avoided by shifting, for ``energy_kwh`` (kWh) of work."""
        return self.now_carbon_g(energy_kwh, pue) - self.carbon_g(energy_kwh, pue)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (times ISO 8601, UTC)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "mean_g_per_kwh": self.mean_g_per_kwh,
            "now_mean_g_per_kwh": self.now_mean_g_per_kwh,
            "saving_pct": self.saving_pct,
            "delay_s": self.delay_s,
            "earliest": self.earliest.isoformat(),
            "deadline": self.deadline.isoformat(),
        }


def _candidates(times: Iterable[float], a: float, b: float, d: float) -> Iterable[float]:
    """Sorted start times where the window integral can bend: a, b and breakpoints between."""
    ts = list(times)
    starts = [t for t in ts if a < t < b]
    ends = [t - d for t in ts if a < t - d < b]
    return heapq.merge([a], starts, ends, [b])


def best_start(
    forecast: Sequence[ForecastPoint],
    duration_s: float,
    earliest: datetime,
    deadline: datetime,
    *,
    forecast_end: datetime | None = None,
) -> ShiftPlan:
    """The start in ``[earliest, deadline - duration_s]`` with the least mean intensity.

    ``forecast``: ``(timestamp, gCO2/kWh)`` points, step-wise (see the module docstring);
    ``duration_s``: the job's run time in s. Exact, O(n) after sorting the forecast. Raises
    :class:`ShiftError` for an empty forecast, a deadline before ``earliest + duration_s``
    or a forecast that does not cover ``[earliest, deadline]``.
    """
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ShiftError(f"duration_s must be a finite number > 0, got {duration_s!r}")
    series = _Series.build(forecast, forecast_end)
    a, deadline_s = _seconds(earliest), _seconds(deadline)
    b = deadline_s - duration_s
    if b < a:
        raise ShiftError(
            f"deadline {_iso(deadline_s)} is before earliest start {_iso(a)} + "
            f"duration {duration_s:g} s ({_iso(a + duration_s)})"
        )
    series.check_covers(a, deadline_s)
    head, tail = _Cursor(series), _Cursor(series)
    now_sum = tail.integral_to(a + duration_s) - head.integral_to(a)
    best_s, best_sum = a, now_sum
    for s in _candidates(series.times_s, a, b, duration_s):
        total = tail.integral_to(s + duration_s) - head.integral_to(s)
        # strict improvement beyond rounding: ties keep the earlier start
        if total < best_sum - 1e-12 * max(1.0, abs(best_sum)):
            best_s, best_sum = s, total
    mean = best_sum / duration_s
    now_mean = now_sum / duration_s
    saving = 100.0 * (now_mean - mean) / now_mean if now_mean > 0 else 0.0
    return ShiftPlan(
        start=datetime.fromtimestamp(best_s, UTC),
        end=datetime.fromtimestamp(best_s + duration_s, UTC),
        mean_g_per_kwh=mean,
        now_mean_g_per_kwh=now_mean,
        saving_pct=saving,
        earliest=datetime.fromtimestamp(a, UTC),
        deadline=datetime.fromtimestamp(deadline_s, UTC),
    )
