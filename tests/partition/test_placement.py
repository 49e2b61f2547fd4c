"""Carbon-aware placement: exact search against brute force, SLO handling, hand-checked model."""

from __future__ import annotations

import random
from itertools import combinations, permutations

import pytest

from carbonedge.partition import LinkModel, NodeProfile, PartitionError, evaluate, place

NODES = [
    NodeProfile("high", 1.0, 620.0, 8.0),
    NodeProfile("medium", 0.6, 530.0, 4.8),
    NodeProfile("green", 0.4, 380.0, 3.2),
]


def test_evaluate_matches_hand_computation() -> None:
    link = LinkModel(bandwidth_bytes_per_s=1e6, latency_ms=0.5)
    plan = evaluate([0.5, 0.25, 0.25], [1000, 2000], [1], NODES[:2], 20.0, link)
    # high runs 0.5 x 20 ms = 10 ms; medium 0.5 x 20 / 0.6 ms; one transfer 1000 B at 1 MB/s.
    assert plan.segments[0].compute_ms == pytest.approx(10.0)
    assert plan.segments[1].compute_ms == pytest.approx(10.0 / 0.6)
    assert plan.transfer_ms == pytest.approx(1.0 + 0.5)
    assert plan.latency_ms == pytest.approx(10.0 + 10.0 / 0.6 + 1.5)
    # 10 ms x 8 W = 80 W.ms = 80 / 3.6e9 kWh; x 620 g/kWh.
    assert plan.segments[0].carbon_g == pytest.approx(80 / 3.6e9 * 620)
    assert plan.segments[1].carbon_g == pytest.approx(10.0 / 0.6 * 4.8 / 3.6e9 * 530)
    assert plan.bottleneck_ms == pytest.approx(10.0 / 0.6)


def test_idle_power_is_charged_while_waiting() -> None:
    nodes = [NodeProfile("a", 1.0, 100.0, 10.0, idle_power_w=2.0), NodeProfile("b", 1.0, 0.0, 1.0)]
    plan = evaluate([0.5, 0.5], [0], [1], nodes, 10.0, LinkModel(1e9))
    # a computes 5 ms at 10 W and waits 5 ms at 2 W.
    assert plan.segments[0].energy_kwh == pytest.approx((5 * 10 + 5 * 2) / 3.6e9)


def test_loose_slo_puts_everything_on_the_greenest_node() -> None:
    result = place([1.0, 2.0, 3.0], [10, 10], NODES, 20.0, slo_ms=1000.0)
    assert result.chosen.nodes == ("green",)
    assert result.chosen.latency_ms == pytest.approx(20.0 / 0.4)
    assert result.balanced.nodes == ("high", "medium", "green")
    assert result.chosen.carbon_g < result.balanced.carbon_g


def test_tight_slo_uses_the_fast_node_and_is_met() -> None:
    result = place([1.0] * 10, [100_000] * 9, NODES, 20.0, slo_ms=25.0)
    assert result.chosen.latency_ms <= 25.0
    assert "high" in result.chosen.nodes
    assert result.slo_ms == 25.0


def test_infeasible_slo_names_the_fastest_option() -> None:
    with pytest.raises(PartitionError, match=r"slo_ms=10.*20.00 ms"):
        place([1.0, 1.0], [0], NODES, 20.0, slo_ms=10.0)


def _brute(
    shares: list[float], comm: list[int], nodes: list[NodeProfile], ms: float, slo: float
) -> float | None:
    n, best = len(shares), None
    for k in range(1, min(len(nodes), n) + 1):
        for order in permutations(nodes, k):
            for cuts in combinations(range(1, n), k - 1):
                plan = evaluate(shares, comm, cuts, order, ms, LinkModel(1e6, 0.2))
                if plan.latency_ms <= slo and (best is None or plan.carbon_g < best):
                    best = plan.carbon_g
    return best


def test_search_equals_brute_force_on_random_cases() -> None:
    rng = random.Random(7)
    for _ in range(60):
        n = rng.randint(1, 6)
        costs = [rng.uniform(0.1, 5.0) for _ in range(n)]
        shares = [c / sum(costs) for c in costs]
        comm = [rng.randint(0, 20_000) for _ in range(n - 1)]
        nodes = [
            NodeProfile(
                f"n{i}",
                rng.uniform(0.2, 1.0),
                rng.uniform(50, 700),
                rng.uniform(1, 10),
                idle_power_w=rng.choice([0.0, 1.0]),
            )
            for i in range(rng.randint(1, 3))
        ]
        slo = rng.uniform(15.0, 120.0)
        expected = _brute(shares, comm, nodes, 20.0, slo)
        if expected is None:
            with pytest.raises(PartitionError):
                place(costs, comm, nodes, 20.0, slo, LinkModel(1e6, 0.2))
            continue
        result = place(costs, comm, nodes, 20.0, slo, LinkModel(1e6, 0.2))
        assert result.chosen.carbon_g == pytest.approx(expected, rel=1e-9)
        assert result.chosen.latency_ms <= slo + 1e-9


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (NodeProfile("x", 0.0, 100.0, 1.0), "capacity = 0.0"),
        (NodeProfile("x", 1.0, -0.5, 1.0), "intensity_g_per_kwh = -0.5"),
        (NodeProfile("x", 1.0, 100.0, 1.0, pue=0.9), "pue = 0.9"),
        (NodeProfile("x", 1.0, 100.0, -2.0), "power_w = -2.0"),
    ],
)
def test_bad_nodes_are_named(node: NodeProfile, message: str) -> None:
    with pytest.raises(PartitionError, match=f"node 'x': {message}"):
        place([1.0], [], [node], 20.0, 100.0)
