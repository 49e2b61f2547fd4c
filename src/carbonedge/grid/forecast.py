"""Intensity forecasters that see only the past, and their day-ahead error.

A forecaster gets ``history``: hourly values (gCO2/kWh) up to and including the hour of issue
(the live feed shows the current hour's value), and returns the next ``horizon_h`` hours. It is
fitted on that history alone, so no plan made from it can use information from its future.
The perfect-foresight plan (:data:`ORACLE`) is not a forecaster: callers read the true values
and label the result as a bound.

- ``persistence``: every future hour = the current hour.
- ``daily``: seasonal naive, the same hour yesterday (the latest day-old value).
- ``weekly``: seasonal naive, the same hour a week before.
- ``ar``: a linear model per horizon ``h`` (1..24, then repeating the day),
  ``y[t+h] = a_h + b_h y[t] + c_h y[t+h-24k] + d_h y[t+h-168k]``, least squares (small ridge)
  on the last :data:`AR_WINDOW_DAYS` days of the history; with less history than it needs it
  answers as ``daily`` would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from carbonedge.errors import ConfigError

__all__ = [
    "AR_WINDOW_DAYS",
    "DEFAULT_FORECASTER",
    "FORECASTERS",
    "ORACLE",
    "DayAheadError",
    "ForecastError",
    "check_forecaster",
    "day_ahead_error",
    "predict",
]

Array = npt.NDArray[np.float64]
Forecaster = Callable[[Array, int], Array]

ORACLE: Final = "oracle"
AR_WINDOW_DAYS: Final = 28
DEFAULT_FORECASTER: Final = "ar"
_DAY, _WEEK = 24, 168


def _persistence(history: Array, horizon_h: int) -> Array:
    return np.full(horizon_h, history[-1])


def _seasonal(period: int) -> Forecaster:
    def forecast(history: Array, horizon_h: int) -> Array:
        if len(history) < period:
            return _persistence(history, horizon_h)
        h = np.arange(1, horizon_h + 1)
        back = period * np.ceil(h / period).astype(int)  # the latest lag of whole periods
        return np.asarray(history[len(history) - 1 + h - back], dtype=np.float64)

    return forecast


def _ar(history: Array, horizon_h: int) -> Array:
    n = len(history)
    need = _WEEK + AR_WINDOW_DAYS * _DAY + _DAY
    if n < need:
        return _seasonal(_DAY)(history, horizon_h)
    out = np.empty(horizon_h)
    for h in range(1, horizon_h + 1):
        day_lag = _DAY * math.ceil(h / _DAY)
        week_lag = _WEEK * math.ceil(h / _WEEK)
        # training pairs (features at t, target t+h) with t+h <= n-1, over the window
        t = np.arange(n - 1 - h - AR_WINDOW_DAYS * _DAY, n - h)  # (N,)
        x = np.stack(
            [np.ones(len(t)), history[t], history[t + h - day_lag], history[t + h - week_lag]],
            axis=1,
        )  # (N, 4)
        y = history[t + h]
        scale = max(1.0, float(np.mean(np.abs(y))))
        ridge = 1e-5 * len(t) * scale**2 * np.eye(4)
        ridge[0, 0] = 0.0
        coef = np.linalg.solve(x.T @ x + ridge, x.T @ y)
        now = n - 1
        features = np.array(
            [1.0, history[now], history[now + h - day_lag], history[now + h - week_lag]]
        )
        out[h - 1] = max(0.0, float(features @ coef))
    return out


FORECASTERS: Final[Mapping[str, Forecaster]] = {
    "persistence": _persistence,
    "daily": _seasonal(_DAY),
    "weekly": _seasonal(_WEEK),
    "ar": _ar,
}


class ForecastError(ConfigError):
    """An unknown forecaster or an unusable history."""


def check_forecaster(name: str, *, oracle: bool = True) -> str:
    """``name`` if it names a forecaster (or, with ``oracle``, the oracle bound); else a
    ForecastError listing the known names."""
    known = [*FORECASTERS, ORACLE] if oracle else list(FORECASTERS)
    if name not in known:
        raise ForecastError(f"unknown forecaster {name!r}; known: {', '.join(known)}")
    return name


def predict(name: str, history: Array, horizon_h: int) -> Array:
    """The next ``horizon_h`` hourly values after ``history`` (whose last value is the hour of
    issue), by the forecaster ``name``. Non-negative and finite."""
    if check_forecaster(name) == ORACLE:
        raise ForecastError("the oracle is not a forecaster: callers read the true values")
    forecaster = FORECASTERS[name]
    past = np.asarray(history, dtype=np.float64)
    if past.ndim != 1 or not len(past) or not np.all(np.isfinite(past)):
        raise ForecastError("a forecast needs a non-empty history of finite values")
    if horizon_h < 1:
        raise ForecastError(f"forecast horizon must be >= 1 hour, got {horizon_h}")
    return np.clip(forecaster(past, horizon_h), 0.0, None)


@dataclass(frozen=True)
class DayAheadError:
    """Day-ahead error of one forecaster on one series: mean absolute percentage error (%),
    bias (mean forecast - actual, gCO2/kWh and % of the mean actual), over ``days`` days."""

    forecaster: str
    days: int
    mape_pct: float
    bias_g_per_kwh: float
    bias_pct: float


def day_ahead_error(
    name: str, values: Array, first_day: int, last_day: int | None = None
) -> DayAheadError:
    """Issue at 00:00 UTC of each day ``d`` in ``[first_day, last_day)`` (days since the start
    of ``values``), knowing hours before it, and score the 24 hours of day ``d``."""
    days = len(values) // _DAY if last_day is None else last_day
    if first_day < 1 or days <= first_day:
        raise ForecastError(f"no day to score between day {first_day} and {days}")
    abs_pct, errors, actual = [], [], []
    for d in range(first_day, days):
        truth = values[d * _DAY : (d + 1) * _DAY]
        guess = predict(name, values[: d * _DAY], _DAY)
        ok = truth > 0
        abs_pct.append(np.abs(guess[ok] - truth[ok]) / truth[ok])
        errors.append(guess - truth)
        actual.append(truth)
    err = np.concatenate(errors)
    mean_actual = float(np.concatenate(actual).mean())
    return DayAheadError(
        name,
        days - first_day,
        100.0 * float(np.concatenate(abs_pct).mean()),
        float(err.mean()),
        100.0 * float(err.mean()) / mean_actual if mean_actual > 0 else 0.0,
    )
