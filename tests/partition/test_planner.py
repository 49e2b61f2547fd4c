"""Boundary planning: exact DP against brute force, and clear errors for bad input."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from carbonedge.partition import PartitionError, plan_boundaries, plan_from_boundaries
from carbonedge.partition.planner import Objective


def _brute_force(
    costs: list[float],
    caps: list[float],
    comm: list[int],
    w: float,
    objective: Objective,
) -> float:
    n, k = len(costs), len(caps)
    return min(
        plan_from_boundaries(
            costs, caps, comm, cuts, comm_weight=w, objective=objective
        ).objective_value
        for cuts in combinations(range(1, n), k - 1)
    )


def _random_case(rng: random.Random) -> tuple[list[float], list[float], list[int], float]:
    n = rng.randint(1, 9)
    k = rng.randint(1, min(n, 4))
    costs = [rng.choice([0.0, rng.uniform(0, 10), float(rng.randint(1, 5))]) for _ in range(n)]
    if sum(costs) == 0:
        costs[0] = 1.0
    caps = [rng.choice([1.0, 0.6, 0.4, rng.uniform(0.1, 2.0)]) for _ in range(k)]
    comm = [rng.randint(0, 10_000) for _ in range(n - 1)]
    w = rng.choice([0.0, 0.0, 1e-5, 1e-4, 1e-3])
    return costs, caps, comm, w


@pytest.mark.parametrize("objective", ["bottleneck", "paper"])
def test_dp_equals_brute_force_on_random_cases(objective: Objective) -> None:
    rng = random.Random(6)
    for _ in range(400):
        costs, caps, comm, w = _random_case(rng)
        plan = plan_boundaries(costs, caps, comm, w, objective=objective)
        expected = _brute_force(costs, caps, comm, w, objective)
        assert plan.objective_value == pytest.approx(expected, rel=1e-9, abs=1e-12), (
            costs,
            caps,
            comm,
            w,
        )
        assert len(plan.segments) == len(caps)
        assert [s.start for s in plan.segments[1:]] == list(plan.boundaries)
        assert all(s.stop > s.start for s in plan.segments)


def test_plan_reports_loads_shares_and_bytes() -> None:
    plan = plan_boundaries([1, 2, 3, 4, 5, 6], [1.0, 0.6, 0.4], [10, 20, 30, 40, 50])
    # Hand check: cuts (3, 5) and (4, 5) both give the bottleneck (6/21)/0.4 on the last node;
    # the tie goes to fewer bytes sent (30 + 50 < 40 + 50).
    assert plan.boundaries == (3, 5)
    assert [s.share for s in plan.segments] == pytest.approx([6 / 21, 9 / 21, 6 / 21])
    assert [s.load for s in plan.segments] == pytest.approx([6 / 21, 9 / 21 / 0.6, 6 / 21 / 0.4])
    assert plan.bottleneck == pytest.approx((6 / 21) / 0.4)
    assert [s.bytes_out for s in plan.segments] == [30, 50, 0]
    assert plan.comm_bytes == 80


def test_capacity_shifts_work_to_the_faster_node() -> None:
    costs = [1.0] * 10
    assert plan_boundaries(costs, [1.0, 1.0], [0] * 9).boundaries == (5,)
    assert plan_boundaries(costs, [4.0, 1.0], [0] * 9).boundaries == (8,)
    # The paper's objective ignores capacity: equal shares whatever the nodes.
    assert plan_boundaries(costs, [4.0, 1.0], [0] * 9, objective="paper").boundaries == (5,)


def test_comm_weight_moves_cut_to_a_small_activation() -> None:
    costs = [1.0] * 6
    comm = [100, 100, 1_000_000, 100, 100]
    assert plan_boundaries(costs, [1.0, 1.0], comm).boundaries == (3,)
    plan = plan_boundaries(costs, [1.0, 1.0], comm, comm_weight=1e-6)
    assert plan.boundaries in {(2,), (4,)}
    assert plan.comm_bytes == 100


def test_accepts_one_byte_count_per_unit() -> None:
    plan = plan_boundaries([1.0, 1.0, 1.0], [1.0, 1.0], [5, 6, 7])
    assert plan.comm_bytes in {5, 6}


@pytest.mark.parametrize(
    ("costs", "caps", "comm", "message"),
    [
        ([], [1.0], [], "costs is empty"),
        ([1.0, 2.0], [1.0, 1.0, 1.0], [0], "k=3 > units=2"),
        ([1.0, 2.0], [1.0, 0.0], [0], "capacities[1] = 0.0"),
        ([1.0, 2.0], [-0.5], [0], "capacities[0] = -0.5"),
        ([1.0, -2.0], [1.0], [0], "costs[1] = -2.0"),
        ([0.0, 0.0], [1.0], [0], "all unit costs are 0"),
        ([1.0, 2.0, 3.0], [1.0], [0], "comm_bytes has 1 entries"),
        ([1.0], [], [], "capacities is empty"),
    ],
)
def test_bad_input_names_the_value(
    costs: list[float], caps: list[float], comm: list[int], message: str
) -> None:
    with pytest.raises(PartitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_boundaries(costs, caps, comm)


def test_bad_weight_and_objective() -> None:
    with pytest.raises(PartitionError, match="comm_weight = -1"):
        plan_boundaries([1.0, 2.0], [1.0], [0], comm_weight=-1.0)
    with pytest.raises(PartitionError, match="objective 'fastest'"):
        plan_boundaries([1.0, 2.0], [1.0], [0], objective="fastest")  # type: ignore[arg-type]


def test_planning_is_fast_for_a_hundred_units() -> None:
    rng = random.Random(1)
    costs = [rng.uniform(1, 10) for _ in range(100)]
    plan = plan_boundaries(costs, [1.0, 0.6, 0.4], [rng.randint(1, 10**6) for _ in range(99)], 1e-8)
    assert len(plan.segments) == 3


def test_planner_import_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, carbonedge.partition as p; p.plan_boundaries([1.0], [1.0], []); "
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
