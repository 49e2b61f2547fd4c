"""A node's intensity forecast from the engine's intensity feed (for deferrable jobs).

A plan may use only the past. For a source with a history (``entsoe``, a CSV trace), the
forecast is the feed's forecaster (:mod:`carbonedge.grid.forecast`) fitted on the hours up to
``start``: the current value at ``start``, then one predicted value per following UTC hour. A
source without one (static, country, a live API's latest value) is flat at its value now: a job
then runs at once. ``forecaster="oracle"`` samples the source's true values at future times
instead: perfect foresight, for experiments that report it as a bound, never for a plan a
deployment could make. :func:`forecast` returns points :func:`carbonedge.scheduling.best_start`
takes (a step function).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from carbonedge.engine.intensity import IntensityFeed
from carbonedge.errors import ConfigError
from carbonedge.grid.forecast import AR_WINDOW_DAYS, ORACLE, predict

__all__ = ["HISTORY_H", "MAX_POINTS", "HasHistory", "forecast"]

#: Most points one forecast may have (a week at 1-minute steps).
MAX_POINTS = 10_080
#: Hours of history a forecaster is given: what the ``ar`` model needs, and a day more.
HISTORY_H = (AR_WINDOW_DAYS + 7 + 2) * 24
_HOUR = timedelta(hours=1)


@runtime_checkable
class HasHistory(Protocol):
    """A source that can say its hourly values up to a time (for forecasters)."""

    def history(self, zone: str, at: datetime, hours: int) -> npt.NDArray[np.float64]:
        """Up to ``hours`` hourly values ending with the hour that holds ``at``."""
        ...


def forecast(
    feed: IntensityFeed,
    node: str,
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=5),
    *,
    forecaster: str | None = None,
) -> list[tuple[datetime, float]]:
    """``node``'s intensity (gCO2/kWh) from ``start`` to ``end`` as step points, by
    ``forecaster`` (default: the feed's). Each point holds until the next (the last until
    ``end``). ``step`` spaces the oracle's samples only. Raises ConfigError for an empty range,
    a step <= 0 or more than :data:`MAX_POINTS` points."""
    step_s = step.total_seconds()
    if not step_s > 0:
        raise ConfigError(f"forecast step must be > 0, got {step}")
    if not end > start:
        raise ConfigError(f"forecast end {end.isoformat()} must be after start {start.isoformat()}")
    name = forecaster or feed.forecaster
    if name == ORACLE:
        return _oracle(feed, node, start, end, step_s)
    now = feed.reading(node, start).g_per_kwh
    source, zone = feed.source(node)
    if not isinstance(source, HasHistory):
        return [(start, now)]
    history = source.history(zone, start, HISTORY_H)
    if not len(history):
        return [(start, now)]
    first = datetime.fromtimestamp(math.floor(start.timestamp() / 3600) * 3600, UTC) + _HOUR
    hours = max(1, math.ceil((end - first) / _HOUR))
    if hours > MAX_POINTS:
        raise ConfigError(f"forecast of {hours} hours is over {MAX_POINTS} points")
    values = predict(name, history, hours)
    times = [first + k * _HOUR for k in range(hours)]
    return [(start, now)] + [(t, float(v)) for t, v in zip(times, values, strict=True) if t < end]


def _oracle(
    feed: IntensityFeed, node: str, start: datetime, end: datetime, step_s: float
) -> list[tuple[datetime, float]]:
    span_s = (end - start).total_seconds()
    if span_s / step_s > MAX_POINTS:
        raise ConfigError(
            f"forecast of {span_s:g} s at {step_s:g} s steps is over {MAX_POINTS} points"
        )
    first = math.floor(start.timestamp() / step_s) + 1
    times = [start]
    t = datetime.fromtimestamp(first * step_s, start.tzinfo)
    while t < end:
        times.append(t)
        t += timedelta(seconds=step_s)
    return [(t, feed.reading(node, t).g_per_kwh) for t in times]
