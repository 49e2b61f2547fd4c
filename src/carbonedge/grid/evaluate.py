"""Day-ahead forecast error per zone (``carbonedge grid forecast``, docs/grids.md).

Every day of ``year`` is scored with the history before it: the days of ``year`` and, where the
cache holds it, the previous year (so January has a history too). The first
:data:`WARMUP_DAYS` days of the history are never scored: a forecaster needs a past.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from carbonedge.grid.data import GridData
from carbonedge.grid.forecast import FORECASTERS, DayAheadError, day_ahead_error

__all__ = ["WARMUP_DAYS", "forecast_errors"]

WARMUP_DAYS: Final = 35


def _score(e: DayAheadError) -> dict[str, float]:
    return {"mape_pct": e.mape_pct, "bias_g_per_kwh": e.bias_g_per_kwh, "bias_pct": e.bias_pct}


def forecast_errors(
    data: GridData, zones: list[str], year: int, factors: str = "lifecycle"
) -> list[dict[str, Any]]:
    """Per zone: days scored and, per forecaster, MAPE (%), bias (gCO2/kWh and %)."""
    rows = []
    for zone in zones:
        gy = data.year(zone, year, factors)
        history = data.history(zone, gy.start_h, 24 * 365, factors)
        values = np.concatenate([history, gy.values])
        first = max(WARMUP_DAYS, len(history) // 24)
        scores = {n: day_ahead_error(n, values, first) for n in FORECASTERS}
        rows.append(
            {
                "zone": zone,
                "year": year,
                "factors": factors,
                "days": scores["persistence"].days,
                "mean_g_per_kwh": float(gy.values.mean()),
                "forecasters": {n: _score(e) for n, e in scores.items()},
            }
        )
    return rows
