"""The three policies: filters, ties, the no-node case, explanations."""

from __future__ import annotations

import math

import pytest

from carbonedge.errors import ConfigError
from carbonedge.scheduling import (
    MODES,
    POLICIES,
    FleetArrays,
    NodeState,
    Scheduler,
    Task,
    Weights,
    components,
    reference_paper_select,
)

from .conftest import make_node

TASK = Task("t1", memory_mb=100)


def test_paper_score_is_eq3_by_hand() -> None:
    n = make_node(load=0.5, free_cpu=0.5, avg_time_s=1.0, tasks_in_flight=1)
    w = Weights(0.1, 0.2, 0.3, 0.15, 0.25)
    sr = (0.5 / 1.0 + 1024 / 1024) / 2
    # E_est = 3 W x 1000 ms / 3.6e6 = 1/1200 Wh; SC = 1 / (1 + 500/1200)
    sc = 1 / (1 + 500 / 1200)
    expected = 0.1 * sr + 0.2 * 0.5 + 0.3 * 0.5 + 0.15 / 3 + 0.25 * sc
    d = Scheduler("paper", w).select(TASK, [n])
    assert d.node == "n"
    assert d.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"load": 0.9}, "load 0.9 > 0.8"),
        ({"latency_ms": 250.0}, "latency_ms 250 > threshold 100"),
        ({"free_memory_mb": 50.0}, "free_memory_mb 50 < task needs 100"),
    ],
)
@pytest.mark.parametrize("policy", POLICIES)
def test_each_filter_skips_the_better_node(policy: str, bad: dict[str, float], reason: str) -> None:
    # "fast" would win on every policy; once filtered, "slow" must be chosen.
    fast = make_node("fast", avg_time_s=0.1, intensity_g_per_kwh=100, **bad)  # type: ignore[arg-type]
    slow = make_node("slow", avg_time_s=0.9, intensity_g_per_kwh=900)
    d = Scheduler(policy, "balanced").select(TASK, [fast, slow])
    assert d.node == "slow"
    explained = d.explain().nodes
    assert not explained[0].eligible
    assert explained[0].reasons == (reason,)
    assert explained[0].total is None
    assert explained[1].chosen


def test_cpu_need_filters() -> None:
    small = make_node("small", cpu_quota=0.4, avg_time_s=0.1)
    big = make_node("big", cpu_quota=1.0, avg_time_s=0.9)
    d = Scheduler("paper", "performance").select(Task("t", cpu=0.5), [small, big])
    assert d.node == "big"
    assert d.explain().nodes[0].reasons == ("free_cpu 0.4 < task needs 0.5",)


def test_latency_threshold_is_configurable_and_can_be_disabled() -> None:
    far = make_node("far", latency_ms=500, avg_time_s=0.1)
    near = make_node("near", latency_ms=1, avg_time_s=0.9)
    assert Scheduler("paper", "performance").select(TASK, [far, near]).node == "near"
    no_limit = Scheduler("paper", "performance", latency_threshold_ms=None)
    assert no_limit.select(TASK, [far, near]).node == "far"


@pytest.mark.parametrize("policy", POLICIES)
def test_ties_go_to_the_first_node_in_order(policy: str) -> None:
    a, b, c = (make_node(name) for name in "abc")
    s = Scheduler(policy, "balanced")
    assert s.select(TASK, [a, b, c]).node == "a"
    assert s.select(TASK, [c, b, a]).node == "c"
    assert s.select(TASK, FleetArrays([b, c, a])).node == "b"


@pytest.mark.parametrize("policy", POLICIES)
def test_no_eligible_node_gives_none_with_a_reason_per_node(policy: str) -> None:
    nodes = [make_node("busy", load=0.95), make_node("full", free_memory_mb=10)]
    d = Scheduler(policy, "green").select(TASK, nodes)
    assert d.node is None
    assert d.position == -1
    assert math.isnan(d.score)
    e = d.explain()
    assert [n.reasons for n in e.nodes] == [
        ("load 0.95 > 0.8",),
        ("free_memory_mb 10 < task needs 100",),
    ]
    assert "load 0.95 > 0.8" in e.table()
    assert Scheduler(policy, "green").select(TASK, FleetArrays(nodes)).node is None
    assert Scheduler(policy, "green").select(TASK, []).node is None


def test_paper_never_picks_a_zero_score_like_algorithm_1_line_1() -> None:
    # Only wR counts and the node has no free resources: score 0 is not > best_score 0.
    n = make_node(free_cpu=0.0, free_memory_mb=100.0, memory_mb=1024.0)
    d = Scheduler("paper", Weights(1, 0, 0, 0, 0)).select(Task("t"), [n])
    assert d.node is not None  # SR = (0 + 100/1024)/2 > 0
    zero = make_node(free_cpu=0.0, free_memory_mb=0.0)
    d0 = Scheduler("paper", Weights(1, 0, 0, 0, 0)).select(Task("t"), [zero])
    assert d0.node is None
    assert "initial best_score 0" in d0.explain().nodes[0].note
    # The normalised policy has no such floor.
    assert Scheduler("normalized", Weights(1, 0, 0, 0, 0)).select(Task("t"), [zero]).node == "n"


def test_plain_path_matches_the_straightforward_algorithm_1(paper_fleet: list[NodeState]) -> None:
    for mode, w in MODES.items():
        ref, ref_score = reference_paper_select(TASK, paper_fleet, w, 100.0)
        d = Scheduler("paper", w).select(TASK, paper_fleet)
        assert ref is not None
        assert d.node == ref.name, mode
        assert d.score == pytest.approx(ref_score, rel=1e-12)


def test_normalized_maps_each_component_to_0_1_and_constants_to_0() -> None:
    a = make_node("a", avg_time_s=0.2, intensity_g_per_kwh=800)
    b = make_node("b", avg_time_s=0.5, intensity_g_per_kwh=500)
    c = make_node("c", avg_time_s=0.8, intensity_g_per_kwh=200)
    w = Weights(0.2, 0.2, 0.2, 0.2, 0.2)
    d = Scheduler("normalized", w).select(TASK, [a, b, c])
    rows = d.explain().nodes
    sp = [components(n).sp for n in (a, b, c)]
    assert rows[0].normalized is not None and rows[1].normalized is not None
    assert rows[0].normalized.sp == 1.0
    assert rows[1].normalized.sp == pytest.approx((sp[1] - sp[2]) / (sp[0] - sp[2]))
    assert rows[0].normalized.sr == rows[0].normalized.sl == rows[0].normalized.sb == 0.0
    for row in rows:
        assert row.normalized is not None
        assert all(0.0 <= x <= 1.0 for x in row.normalized)
        assert row.total == pytest.approx(0.2 * sum(row.normalized))
    assert d.score == max(r.total for r in rows if r.total is not None)


def test_normalized_single_eligible_node_is_chosen_with_score_zero() -> None:
    d = Scheduler("normalized", "green").select(TASK, [make_node("only")])
    assert (d.node, d.score) == ("only", 0.0)


def _constrained_fleet() -> list[NodeState]:
    # fast/dirty, medium, slow/clean; predicted latency 1 + 1000 x t ms.
    return [
        make_node("fast", avg_time_s=0.1, intensity_g_per_kwh=1500),
        make_node("mid", avg_time_s=0.3, intensity_g_per_kwh=400),
        make_node("clean", avg_time_s=0.6, intensity_g_per_kwh=100, tasks_in_flight=1),
    ]


def test_constrained_picks_least_carbon_within_slo() -> None:
    nodes = _constrained_fleet()
    assert Scheduler("constrained", slo_ms=2000).select(TASK, nodes).node == "clean"
    d = Scheduler("constrained", slo_ms=500).select(TASK, nodes)  # clean: 1201 ms > 500
    assert (d.node, d.slo_miss, d.budget_miss) == ("mid", False, False)
    # 3 W x 0.3 s = 0.9 J = 2.5e-7 kWh x 400 g/kWh = 1e-4 g
    assert d.score == pytest.approx(1e-4)
    notes = [n.note for n in d.explain().nodes]
    assert notes[2] == "predicted latency > SLO 500 ms"


def test_constrained_slo_miss_takes_the_fastest() -> None:
    nodes = _constrained_fleet()
    d = Scheduler("constrained", slo_ms=50).select(TASK, nodes)
    assert (d.node, d.slo_miss) == ("fast", True)


def test_constrained_budget() -> None:
    nodes = _constrained_fleet()
    # fast emits 3 W x 0.1 s / 3.6e6 x 1500 = 1.25e-4 g: over a 1e-4 g budget.
    d = Scheduler("constrained", slo_ms=150, carbon_budget_g=1e-4).select(TASK, nodes)
    assert (d.node, d.slo_miss, d.budget_miss) == ("fast", False, True)
    ok = Scheduler("constrained", slo_ms=500, carbon_budget_g=1.5e-4).select(TASK, nodes)
    assert (ok.node, ok.budget_miss) == ("mid", False)
    missed = Scheduler("constrained", slo_ms=50, carbon_budget_g=1e-9).select(TASK, nodes)
    assert (missed.node, missed.slo_miss, missed.budget_miss) == ("fast", True, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "quickest"}, "unknown policy 'quickest'"),
        ({"weights": "eco"}, "unknown mode"),
        ({"slo_ms": -1.0}, "slo_ms"),
        ({"carbon_budget_g": math.nan}, "carbon_budget_g"),
        ({"latency_threshold_ms": "x"}, "latency_threshold_ms"),
    ],
)
def test_scheduler_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scheduler(**kwargs)  # type: ignore[arg-type]


def test_decision_repr_and_explanation_dict(paper_fleet: list[NodeState]) -> None:
    d = Scheduler("paper", "green").select(TASK, paper_fleet)
    assert "node='Node-Green'" in repr(d)
    assert "Node-High" not in repr(d)  # the fleet is not dumped
    data = d.explain().to_dict()
    assert data["node"] == "Node-Green"
    assert [n["chosen"] for n in data["nodes"]] == [False, False, True]
    assert set(data["nodes"][0]["components"]) == {"sr", "sl", "sp", "sb", "sc"}
    totals = [n["total"] for n in data["nodes"]]
    assert max(totals) == totals[2] == d.score
