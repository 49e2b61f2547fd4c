"""Temporal experiment: shipped traces, deferral on the envelope, summary and report."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbonedge.engine import IntensityFeed
from carbonedge.experiments.temporal import (
    POLICIES,
    TaskRecord,
    TemporalParams,
    TemporalResult,
    _day_start,
    _releases,
    render_markdown,
)
from carbonedge.fleet.spec import load_fleet

FLEET = Path(__file__).parents[2] / "examples" / "temporal" / "fleet.toml"


def test_shipped_traces_and_deferral_waits_for_the_midday_dip() -> None:
    spec = load_fleet(FLEET)
    day0 = _day_start(spec)
    feed = IntensityFeed(spec, lambda: day0)
    assert feed.reading("node-green", day0 + timedelta(hours=12)).g_per_kwh < 100
    arrivals = [day0 + timedelta(hours=h) for h in (0, 7, 9, 20)]
    rel = _releases(feed, spec.names, arrivals, timedelta(hours=6), day0 + timedelta(days=1))
    hours = [(r - day0).total_seconds() / 3600 for r in rel]
    assert hours[0] == pytest.approx(4.0)  # wind's night low (155 at 04:00)
    assert 12.0 <= hours[1] <= 13.0 and 12.0 <= hours[2] <= 14.0  # solar's 90 at 13:00
    assert all(r >= a for r, a in zip(rel, arrivals, strict=True))
    assert all(r <= a + timedelta(hours=6) for r, a in zip(rel, arrivals, strict=True))


def test_summary_pairs_repeats_and_report_has_every_policy() -> None:
    p = TemporalParams(str(FLEET), tasks_per_day=2, repeats=2)
    tasks = []
    for rep in range(2):
        for pol, g in (("static", 4.0), ("live", 3.0), ("live+defer", 2.0)):
            for i in range(2):
                tasks.append(TaskRecord(pol, rep, i, i, i + (pol == "live+defer"), "a", 100.0,
                                        1e-6, g, 20.0 + rep))  # fmt: skip
    res = TemporalResult(p, "2024-05-01T00:00:00+00:00", ("a",), {"a": 100.0},
                         {"a": [(0.0, 100.0), (24.0, 100.0)]}, tuple(tasks), "profile")  # fmt: skip
    s = res.summary()
    assert s["live"]["cut_vs_static_pct"].mean == pytest.approx(25.0)
    assert s["live+defer"]["cut_vs_static_pct"].mean == pytest.approx(50.0)
    assert s["live+defer"]["delay_h"].mean == pytest.approx(1.0)
    text = render_markdown(res)
    assert all(f"| {pol} |" in text for pol in POLICIES)
