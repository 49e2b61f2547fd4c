"""Forecasters see only the past: their semantics, their error on a known series, and the
engine's forecast for an ``entsoe`` node, which does not change when the future does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonedge.engine import IntensityFeed
from carbonedge.engine.forecast import forecast
from carbonedge.fleet.spec import parse_fleet
from carbonedge.grid import (
    FORECASTERS,
    EntsoeIntensity,
    ForecastError,
    GridData,
    build_cache,
    day_ahead_error,
    predict,
)

from .conftest import write_zone


def test_seasonal_naive_and_persistence() -> None:
    history = np.arange(200, dtype=float)  # value = hour index
    assert predict("persistence", history, 3) == pytest.approx([199, 199, 199])
    daily = predict("daily", history, 30)
    assert daily[0] == 200 - 24 and daily[23] == 199  # the same hour yesterday
    assert daily[24] == 200 - 24  # beyond a day: the latest whole-day lag
    assert predict("weekly", history, 2) == pytest.approx([200 - 168, 201 - 168])
    assert predict("daily", history[:10], 2) == pytest.approx([9, 9])  # too short: persistence


def test_ar_learns_a_daily_cycle_with_a_trend_of_the_week() -> None:
    h = np.arange(24 * 70, dtype=float)
    series = 300 + 100 * np.sin(2 * np.pi * h / 24) + 30 * np.sin(2 * np.pi * h / 168)
    err = {n: day_ahead_error(n, series, 40).mape_pct for n in FORECASTERS}
    assert err["ar"] < 0.5 and err["ar"] < err["daily"] and err["ar"] < err["persistence"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 2000), min_size=1, max_size=900), st.integers(1, 48))
def test_every_forecast_is_finite_and_non_negative(values: list[float], horizon: int) -> None:
    for name in FORECASTERS:
        out = predict(name, np.array(values), horizon)
        assert out.shape == (horizon,) and np.all(np.isfinite(out)) and np.all(out >= 0)


def test_bad_forecaster_or_history() -> None:
    with pytest.raises(ForecastError, match=r"unknown forecaster 'crystal'; known: .*oracle"):
        predict("crystal", np.ones(3), 1)
    with pytest.raises(ForecastError, match="finite"):
        predict("ar", np.array([1.0, np.nan]), 1)


def _grid(folder: Path, bump_from: int | None) -> GridData:
    """A zone whose wind follows a daily cycle; ``bump_from``: UTC hours of 2019 from which
    the coal output is tripled (a change in the future only). Rows start at local midnight,
    23:00 UTC the day before."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        hours = np.arange(len(frame)) / 4
        frame["Wind Onshore"] = 400 + 300 * np.sin(2 * np.pi * hours / 24)
        if bump_from is not None:
            frame.iloc[(bump_from + 1) * 4 :, 0] *= 3
        return frame

    folder.mkdir()
    write_zone(folder, "XX", 2019, edit=edit)
    build_cache(folder / "grid.npz", folder)
    return GridData.open(folder / "grid.npz")


def test_the_engine_forecast_does_not_see_the_future(tmp_path: Path) -> None:
    issue = datetime(2019, 3, 1, 10, 30, tzinfo=UTC)
    issue_h = int((issue - datetime(2019, 1, 1, tzinfo=UTC)) / timedelta(hours=1))
    spec = parse_fleet(
        {"nodes": [{"name": "n", "cpu_quota": 1.0, "memory_mb": 512, "idle_w": 0.0, "max_w": 8.0,
                    "intensity": {"source": "entsoe", "zone": "XX", "year": 2019}}]}, "t",
    )  # fmt: skip
    plans = {}
    for bump in (None, issue_h + 1):
        grid = _grid(tmp_path / str(bump), bump)
        feed = IntensityFeed(spec, lambda: issue, sources={"n": EntsoeIntensity(grid, year=2019)})
        end = issue + timedelta(hours=12)
        plans[bump] = (forecast(feed, "n", issue, end), forecast(feed, "n", issue, end,
                                                                  forecaster="oracle"))  # fmt: skip
    (fc_a, oracle_a), (fc_b, oracle_b) = plans.values()
    assert fc_a == fc_b  # the forecast ignores what changed after the issue hour
    assert oracle_a != oracle_b  # the oracle sees it
    assert fc_a[0] == (issue, oracle_a[0][1])  # now: the current hour's true value
    assert [t for t, _ in fc_a][1] == datetime(2019, 3, 1, 11, tzinfo=UTC)  # then hourly
    assert len(fc_a) == 13 and all(t < end for t, _ in fc_a)
