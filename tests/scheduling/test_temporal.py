"""Carbon-aware time shifting (paper II.D): exact best start, errors, brute-force agreement."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonedge.errors import CarbonEdgeError
from carbonedge.scheduling import ShiftError, best_start, window_mean_g_per_kwh

T0 = datetime(2024, 5, 1, tzinfo=UTC)
H = 3600.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# 100 g/kWh for an hour, then 50, 300, 10; the last step ends at 4 h.
STEPS = [(at(0), 100.0), (at(H), 50.0), (at(2 * H), 300.0), (at(3 * H), 10.0)]


def test_whole_steps_pick_the_cleanest_hour() -> None:
    plan = best_start(STEPS, H, at(0), at(4 * H))
    assert plan.start == at(3 * H) and plan.end == at(4 * H)
    assert plan.mean_g_per_kwh == pytest.approx(10.0)
    assert plan.now_mean_g_per_kwh == pytest.approx(100.0)
    assert plan.saving_pct == pytest.approx(90.0)
    assert plan.delay_s == pytest.approx(3 * H)


def test_deadline_limits_the_choice() -> None:
    # must end by 3.5 h: the 10 g hour is out of reach; [2.5 h, 3.5 h] averages 155
    plan = best_start(STEPS, H, at(0), at(3.5 * H))
    assert plan.start == at(H) and plan.mean_g_per_kwh == pytest.approx(50.0)
    assert plan.saving_pct == pytest.approx(50.0)


def test_best_window_can_start_mid_step() -> None:
    # 1.5 h job: starting at 0.5 h covers 0.5 h of 100 + 1 h of 50 = 100 g.h / 1.5 h = 66.67
    # (at 0 h: (100 + 25) / 1.5 = 83.3, at 1 h: 133.3, at 2.5 h: 106.7)
    plan = best_start(STEPS, 1.5 * H, at(0), at(4 * H))
    assert plan.start == at(0.5 * H)
    assert plan.mean_g_per_kwh == pytest.approx(200.0 / 3.0)
    assert plan.now_mean_g_per_kwh == pytest.approx(250.0 / 3.0)


def test_carbon_for_an_energy_uses_eq2() -> None:
    plan = best_start(STEPS, H, at(0), at(4 * H))
    assert plan.carbon_g(0.5) == pytest.approx(5.0)  # 0.5 kWh x 10 g/kWh
    assert plan.now_carbon_g(0.5, pue=1.2) == pytest.approx(60.0)  # 0.5 x 100 x 1.2
    assert plan.saved_g(0.5) == pytest.approx(45.0)
    assert plan.as_dict()["start"] == at(3 * H).isoformat()


def test_ties_keep_the_earliest_start_and_a_flat_grid_saves_nothing() -> None:
    flat = [(at(i * H), 200.0) for i in range(6)]
    plan = best_start(flat, 2 * H, at(0.25 * H), at(6 * H))
    assert plan.start == at(0.25 * H) and plan.saving_pct == 0.0
    zero = [(at(0), 0.0), (at(H), 0.0)]
    assert best_start(zero, 60.0, at(0), at(2 * H)).saving_pct == 0.0


def test_unsorted_and_naive_inputs() -> None:
    shuffled = [STEPS[2], STEPS[0], STEPS[3], STEPS[1]]
    naive = [(t.replace(tzinfo=None), g) for t, g in shuffled]
    plan = best_start(naive, H, at(0).replace(tzinfo=None), at(4 * H))
    assert plan.start == at(3 * H) and plan.start.tzinfo is not None


def test_forecast_end_extends_the_last_step() -> None:
    one = [(at(0), 300.0)]
    plan = best_start(one, H, at(0), at(10 * H), forecast_end=at(12 * H))
    assert plan.mean_g_per_kwh == 300.0
    with pytest.raises(ShiftError, match="one-point"):
        best_start(one, H, at(0), at(H))
    with pytest.raises(ShiftError, match="forecast_end"):
        best_start(STEPS, H, at(0), at(H), forecast_end=at(2 * H))


def test_window_mean_matches_hand_value() -> None:
    assert window_mean_g_per_kwh(STEPS, at(0.5 * H), 2 * H) == pytest.approx(
        (0.5 * 100 + 50 + 0.5 * 300) / 2
    )


@pytest.mark.parametrize(
    ("forecast", "duration_s", "earliest", "deadline", "match"),
    [
        ([], H, at(0), at(4 * H), "empty"),
        (STEPS, H, at(0), at(0.5 * H), "deadline"),
        (STEPS, H, at(3.5 * H), at(3 * H), "deadline"),
        (STEPS, H, at(-60), at(3 * H), "covers"),
        (STEPS, H, at(0), at(5 * H), "covers"),
        (STEPS, 0.0, at(0), at(4 * H), "duration_s"),
        (STEPS, float("nan"), at(0), at(4 * H), "duration_s"),
        ([(at(0), 1.0), (at(0), 2.0)], H, at(0), at(H), "two points"),
        ([(at(0), -1.0), (at(H), 2.0)], H, at(0), at(H), ">= 0"),
    ],
)
def test_errors(
    forecast: list[tuple[datetime, float]],
    duration_s: float,
    earliest: datetime,
    deadline: datetime,
    match: str,
) -> None:
    with pytest.raises(ShiftError, match=match):
        best_start(forecast, duration_s, earliest, deadline)


def test_shift_error_is_a_value_error_and_a_user_error() -> None:
    assert issubclass(ShiftError, ValueError) and issubclass(ShiftError, CarbonEdgeError)


def _brute(values: list[int], gaps: list[int], d: int, a: int, b: int) -> tuple[int, int, int]:
    """(best start, its window sum, the sum at ``a``) over every integer second; exact ints."""
    per_second: list[int] = []
    for g, gap in zip(values, gaps, strict=True):
        per_second.extend([g] * gap)
    sums = {s: sum(per_second[s : s + d]) for s in range(a, b + 1)}
    best = min(sums, key=lambda s: (sums[s], s))
    return best, sums[best], sums[a]


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_agrees_with_brute_force_on_random_step_forecasts(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    values = data.draw(st.lists(st.integers(0, 500), min_size=n, max_size=n))
    gaps = data.draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    total = sum(gaps)
    d = data.draw(st.integers(1, total))
    a = data.draw(st.integers(0, total - d))
    b = data.draw(st.integers(a, total - d))
    times = [sum(gaps[:i]) for i in range(n)]
    forecast = [(at(t), float(g)) for t, g in zip(times, values, strict=True)]
    plan = best_start(forecast, float(d), at(a), at(b + d), forecast_end=at(total))
    start, best_sum, now_sum = _brute(values, gaps, d, a, b)
    assert plan.mean_g_per_kwh == pytest.approx(best_sum / d, abs=1e-9)
    assert plan.now_mean_g_per_kwh == pytest.approx(now_sum / d, abs=1e-9)
    assert plan.start == at(start)  # the earliest of equally good starts


def test_seeded_real_valued_forecasts_beat_a_dense_grid() -> None:
    rng = random.Random(7)
    for _ in range(40):
        times = sorted(rng.uniform(0, 48 * H) for _ in range(rng.randint(2, 30)))
        forecast = [(at(t), rng.uniform(20, 700)) for t in times]
        end = times[-1] + rng.uniform(60, 2 * H)
        d = rng.uniform(60, (end - times[0]) / 2)
        a = rng.uniform(times[0], end - d)
        deadline = rng.uniform(a + d, end)
        plan = best_start(forecast, d, at(a), at(deadline), forecast_end=at(end))
        grid = [a + (deadline - d - a) * k / 400 for k in range(401)]
        grid_best = min(
            window_mean_g_per_kwh(forecast, at(s), d, forecast_end=at(end)) for s in grid
        )
        exact = window_mean_g_per_kwh(forecast, plan.start, d, forecast_end=at(end))
        assert plan.mean_g_per_kwh == pytest.approx(exact, rel=1e-6)
        assert plan.mean_g_per_kwh <= grid_best + 1e-6
        assert at(a) <= plan.start and plan.end <= at(deadline) + timedelta(microseconds=1)
