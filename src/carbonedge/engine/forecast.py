"""A node's intensity forecast from the engine's intensity feed (for deferrable jobs).

The feed's sources answer for any time: a replayed CSV trace gives its value at a future time
(the trace *is* the forecast), a static or country value is flat. A live API
(Electricity Maps, WattTime) is polled for its latest value only, so its forecast is flat at
that value: a job then runs at once. :func:`forecast` samples a node's source on a grid and
returns points :func:`carbonedge.scheduling.best_start` takes (a step function).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from carbonedge.engine.intensity import IntensityFeed
from carbonedge.errors import ConfigError

__all__ = ["MAX_POINTS", "forecast"]

#: Most points one forecast may have (a week at 1-minute steps).
MAX_POINTS = 10_080


def forecast(
    feed: IntensityFeed,
    node: str,
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(minutes=5),
) -> list[tuple[datetime, float]]:
    """``node``'s intensity (gCO2/kWh) at ``start`` and at every multiple of ``step`` (counted
    from the Unix epoch, so hourly trace steps fall on points) in ``(start, end)``.

    Each point holds until the next (the last until ``end``). Raises ConfigError for an empty
    range, a step <= 0 or more than :data:`MAX_POINTS` points.
    """
    step_s = step.total_seconds()
    if not step_s > 0:
        raise ConfigError(f"forecast step must be > 0, got {step}")
    if not end > start:
        raise ConfigError(f"forecast end {end.isoformat()} must be after start {start.isoformat()}")
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
        t += step
    return [(t, feed.reading(node, t).g_per_kwh) for t in times]
