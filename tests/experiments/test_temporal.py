"""Temporal experiment: real days of the shipped fleet, deferral on forecasts vs the oracle,
summary paired by day, and the report."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbonedge.engine import IntensityFeed
from carbonedge.errors import ConfigError
from carbonedge.experiments.temporal import (
    POLICIES,
    TaskRecord,
    TemporalParams,
    TemporalResult,
    _releases,
    render_markdown,
    replay_days,
)
from carbonedge.fleet.spec import load_fleet, parse_fleet

FLEET = Path(__file__).parents[2] / "examples" / "temporal" / "fleet.toml"


def test_days_spread_over_the_year_after_a_warm_up() -> None:
    spec = load_fleet(FLEET)
    days, zones = replay_days(spec, 12)
    assert zones == {"pl-coal": "PL", "dk-wind": "DK", "es-solar": "ES", "at-hydro": "AT"}
    assert len(set(days)) == 12 and all(d.year == 2019 for d in days)
    assert days[0].timetuple().tm_yday > 40 and sorted(days) == days
    assert {d.month for d in days} >= {3, 6, 9, 12}
    other = parse_fleet({"nodes": [{"name": "n", "cpu_quota": 1.0, "memory_mb": 512,
                                    "idle_w": 0.0, "max_w": 8.0, "intensity_g_per_kwh": 300}]},
                        "static.toml")  # fmt: skip
    with pytest.raises(ConfigError, match=r"static.toml: node 'n' needs intensity = .*entsoe"):
        replay_days(other, 3)


def test_deferral_on_a_forecast_stays_in_its_window_and_the_oracle_bounds_it() -> None:
    spec = load_fleet(FLEET)
    days, _ = replay_days(spec, 3)
    feed = IntensityFeed(spec, lambda: days[0])
    wait = timedelta(hours=6)
    worse = 0
    for day0 in days:
        arrivals = [day0 + timedelta(hours=h) for h in range(0, 24, 2)]
        end = day0 + timedelta(days=1)
        forecast = _releases(feed, spec.names, arrivals, wait, end, "ar")
        oracle = _releases(feed, spec.names, arrivals, wait, end, "oracle")
        for a, f, o in zip(arrivals, forecast, oracle, strict=True):
            assert a <= f <= min(a + wait, end) and a <= o <= min(a + wait, end)
            true_f = min(feed.reading(n, f).g_per_kwh for n in spec.names)
            true_o = min(feed.reading(n, o).g_per_kwh for n in spec.names)
            assert true_o <= true_f + 1e-6  # perfect foresight is never beaten
            worse += true_o < true_f - 1e-6
    assert worse > 0  # and the forecast is not the oracle in disguise


def test_summary_pairs_days_and_report_has_every_policy() -> None:
    p = TemporalParams(str(FLEET), days=2, tasks_per_day=2)
    g_of = {"static": 4.0, "live": 3.0, "live+defer": 2.0, "live+defer (oracle)": 1.0}
    tasks = [
        TaskRecord(pol, day, i, i, i + (pol != "static" and pol != "live"), "a", 100.0 * g,
                   1e-6, g, 20.0)
        for day in ("2019-02-10", "2019-07-01") for pol, g in g_of.items() for i in range(2)
    ]  # fmt: skip
    trace = {"a": [(0.0, 100.0), (24.0, 100.0)]}
    days = ("2019-02-10", "2019-07-01")
    res = TemporalResult(p, days, ("a",), {"a": "XX"}, {}, trace, tuple(tasks), "profile")
    s = res.summary()
    assert s["live"]["cut_vs_static_pct"].mean == pytest.approx(25.0)
    assert s["live+defer"]["cut_vs_static_pct"].mean == pytest.approx(50.0)
    assert s["live+defer (oracle)"]["intensity_cut_pct"].mean == pytest.approx(75.0)
    assert s["live+defer"]["delay_h"].mean == pytest.approx(1.0)
    assert s["forecast vs oracle"]["cut_gap_pts"].mean == pytest.approx(25.0)
    text = render_markdown(res)
    assert all(f"| {pol} |" in text for pol in POLICIES)
    assert "ENTSO-E" in text and "oracle" in text
