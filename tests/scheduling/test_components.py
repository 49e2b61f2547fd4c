"""Each score component, Eq. 4 and the weights, against hand computations."""

from __future__ import annotations

import math

import pytest

from carbonedge.errors import ConfigError
from carbonedge.scheduling import (
    MODES,
    NodeState,
    Task,
    Weights,
    components,
    energy_estimate_wh,
    filter_reasons,
    predicted_carbon_g,
    predicted_latency_ms,
    resolve_weights,
    score_carbon,
    score_fairness,
    score_load,
    score_performance,
    score_resources,
)

from .conftest import make_node


def test_resource_score_is_mean_of_free_fractions_of_the_node() -> None:
    n = make_node(cpu_quota=0.8, memory_mb=1000, free_cpu=0.2, free_memory_mb=750)
    assert score_resources(n) == pytest.approx((0.25 + 0.75) / 2)


def test_load_score() -> None:
    assert score_load(make_node(load=0.35)) == pytest.approx(0.65)


def test_performance_score_uses_seconds() -> None:
    # 0.25 s -> 1/1.25 = 0.8; Table V's SP range 0.166 needs seconds, not ms.
    assert score_performance(make_node(avg_time_s=0.25)) == pytest.approx(0.8)


def test_fairness_score_counts_tasks_in_flight_twice() -> None:
    assert score_fairness(make_node(tasks_in_flight=0)) == 1.0
    assert score_fairness(make_node(tasks_in_flight=3)) == pytest.approx(1 / 7)


def test_energy_estimate_is_eq4_in_wh() -> None:
    # 10 W for 360 ms = 3.6 J = 1e-3 Wh (the paper's formula; it calls this kWh).
    n = make_node(power_w=10.0, avg_time_s=0.36)
    assert energy_estimate_wh(n) == pytest.approx(1e-3)


def test_carbon_score_by_hand() -> None:
    n = make_node(power_w=10.0, avg_time_s=0.36, intensity_g_per_kwh=500.0)
    # SC = 1 / (1 + 500 x 1e-3) = 1/1.5
    assert score_carbon(n) == pytest.approx(2 / 3)


def test_components_tuple_order_is_eq3() -> None:
    n = make_node(load=0.5, free_cpu=0.5, avg_time_s=1.0, tasks_in_flight=1)
    c = components(n)
    assert c == (score_resources(n), 0.5, 0.5, pytest.approx(1 / 3), score_carbon(n))


def test_predicted_latency_and_carbon_by_hand() -> None:
    n = make_node(latency_ms=5.0, avg_time_s=0.2, tasks_in_flight=2, power_w=9.0)
    assert predicted_latency_ms(n) == pytest.approx(5 + 3 * 200)
    # 9 W x 0.2 s = 1.8 J = 5e-7 kWh; x 500 g/kWh = 2.5e-4 g
    assert predicted_carbon_g(n) == pytest.approx(2.5e-4)


def test_filter_reasons_name_each_failed_check() -> None:
    task = Task("t", memory_mb=300, cpu=0.5)
    ok = make_node(memory_mb=1024)
    assert filter_reasons(ok, task, 100.0) == ()
    assert filter_reasons(make_node(load=0.81), task, 100.0) == ("load 0.81 > 0.8",)
    assert filter_reasons(make_node(load=0.8, free_cpu=0.5), task, 100.0) == ()
    assert "latency_ms 150 > threshold 100" in filter_reasons(
        make_node(latency_ms=150), task, 100.0
    )
    both = filter_reasons(make_node(free_memory_mb=200, free_cpu=0.1), task, 100.0)
    assert both == ("free_memory_mb 200 < task needs 300", "free_cpu 0.1 < task needs 0.5")


def test_table_one_modes() -> None:
    assert MODES["performance"].as_tuple() == (0.25, 0.25, 0.30, 0.15, 0.05)
    assert MODES["green"].as_tuple() == (0.15, 0.15, 0.10, 0.10, 0.50)
    assert MODES["balanced"].as_tuple() == (0.20, 0.20, 0.15, 0.15, 0.30)
    for w in MODES.values():
        assert math.isclose(sum(w.as_tuple()), 1.0)
    with pytest.raises(TypeError):
        MODES["mine"] = MODES["green"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((0, 0, 0, 0, 0), "at least one"),
        ((0.2, -0.1, 0.3, 0.3, 0.3), "weights.w_l"),
        ((0.2, 0.1, math.nan, 0.3, 0.3), "weights.w_p"),
        ((0.2, 0.1, 0.3, math.inf, 0.3), "weights.w_b"),
    ],
)
def test_weights_are_validated(values: tuple[float, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Weights(*values)


def test_weights_parse_and_resolve() -> None:
    assert Weights.parse("1, 0, 0, 0, 3").as_tuple() == (1.0, 0.0, 0.0, 0.0, 3.0)
    with pytest.raises(ConfigError, match="5 numbers"):
        Weights.parse("1,2,3")
    with pytest.raises(ConfigError, match="comma-separated"):
        Weights.parse("a,b,c,d,e")
    assert resolve_weights("green") is MODES["green"]
    assert resolve_weights([1, 1, 1, 1, 1]).w_c == 1
    with pytest.raises(ConfigError, match="unknown mode 'eco'"):
        resolve_weights("eco")


def test_with_carbon_keeps_other_proportions() -> None:
    w = MODES["performance"].with_carbon(0.5)
    assert w.w_c == 0.5
    assert sum(w.as_tuple()) == pytest.approx(1.0)
    assert w.w_p / w.w_r == pytest.approx(0.30 / 0.25)
    with pytest.raises(ConfigError, match="w_c"):
        MODES["performance"].with_carbon(1.5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("load", 1.7, "load: must be between 0 and 1, got 1.7"),
        ("cpu_quota", 0.0, "cpu_quota: must be > 0"),
        ("free_cpu", 2.0, "free_cpu: must be at most cpu_quota"),
        ("free_memory_mb", 2000.0, "free_memory_mb: must be at most memory_mb"),
        ("avg_time_s", -1.0, "avg_time_s: must be a finite number >= 0"),
        ("power_w", math.nan, "power_w"),
        ("tasks_in_flight", 1.5, "tasks_in_flight: must be an integer"),
        ("name", "", "name"),
        ("intensity_g_per_kwh", "620", "intensity_g_per_kwh: must be a number"),
    ],
)
def test_node_state_rejects_bad_values(field: str, value: object, message: str) -> None:
    fields = {
        "name": "n",
        "cpu_quota": 1.0,
        "memory_mb": 1024.0,
        "free_cpu": 1.0,
        "free_memory_mb": 1024.0,
        "load": 0.0,
        "latency_ms": 0.0,
        "avg_time_s": 0.3,
        "tasks_in_flight": 0,
        "power_w": 3.0,
        "intensity_g_per_kwh": 500.0,
    }
    fields[field] = value
    with pytest.raises(ConfigError, match=message):
        NodeState(**fields)  # type: ignore[arg-type]


def test_task_rejects_negative_memory() -> None:
    with pytest.raises(ConfigError, match=r"task\.memory_mb"):
        Task("t", memory_mb=-1)
