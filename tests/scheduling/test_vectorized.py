"""The NumPy path over FleetArrays gives the same decisions as the plain path."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonedge.errors import ConfigError
from carbonedge.scheduling import POLICIES, FleetArrays, NodeState, Scheduler, Task, Weights

from .conftest import make_node, paper_nodes

# Small value sets produce exact ties; floats cover the rest.
_quota = st.sampled_from([0.25, 0.4, 0.6, 1.0, 2.0])
_mem = st.sampled_from([256.0, 512.0, 1024.0])
_time = st.one_of(st.sampled_from([0.05, 0.3, 0.45, 0.65]), st.floats(0.001, 5.0))
_intensity = st.one_of(st.sampled_from([380.0, 530.0, 620.0]), st.floats(0.0, 1200.0))


@st.composite
def node_states(draw: st.DrawFn, i: int) -> NodeState:
    q = draw(_quota)
    mem = draw(_mem)
    return NodeState(
        name=f"n{i}",
        cpu_quota=q,
        memory_mb=mem,
        free_cpu=q * draw(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 1.0)),
        free_memory_mb=mem * draw(st.sampled_from([0.1, 0.5, 1.0]) | st.floats(0.0, 1.0)),
        load=draw(st.sampled_from([0.0, 0.5, 0.8, 0.81]) | st.floats(0.0, 1.0)),
        latency_ms=draw(st.sampled_from([1.0, 100.0]) | st.floats(0.0, 300.0)),
        avg_time_s=draw(_time),
        tasks_in_flight=draw(st.integers(0, 4)),
        power_w=draw(st.sampled_from([1.2, 3.0]) | st.floats(0.0, 50.0)),
        intensity_g_per_kwh=draw(_intensity),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[NodeState]:
    n = draw(st.integers(0, 12))
    return [draw(node_states(i)) for i in range(n)]


_weight = st.sampled_from([0.0, 0.05, 0.15, 0.3, 0.5]) | st.floats(0.0, 1.0)
weights = (
    st.tuples(_weight, _weight, _weight, _weight, _weight).filter(any).map(lambda w: Weights(*w))
)


@settings(max_examples=150, deadline=None)
@given(
    fleet=fleets(),
    w=weights,
    policy=st.sampled_from(POLICIES),
    mem=st.sampled_from([0.0, 60.0, 300.0]),
    cpu=st.sampled_from([0.0, 0.3]),
    slo=st.sampled_from([None, 200.0, 1000.0]),
    budget=st.sampled_from([None, 1e-4, 1e-3]),
)
def test_plain_and_vectorised_paths_agree(
    fleet: list[NodeState],
    w: Weights,
    policy: str,
    mem: float,
    cpu: float,
    slo: float | None,
    budget: float | None,
) -> None:
    s = Scheduler(policy, w, slo_ms=slo, carbon_budget_g=budget)
    task = Task("t", mem, cpu)
    plain = s.select(task, fleet)
    vec = s.select(task, FleetArrays(fleet))
    assert (plain.node, plain.position, plain.slo_miss, plain.budget_miss) == (
        vec.node,
        vec.position,
        vec.slo_miss,
        vec.budget_miss,
    )
    # Same operations in the same order: the values are bit-identical, not merely close.
    assert plain.score == vec.score or (math.isnan(plain.score) and math.isnan(vec.score))
    # And the explanation's totals agree with the choice.
    e = plain.explain()
    if plain.node is not None and policy != "constrained":
        totals = [n.total for n in e.nodes if n.total is not None]
        best = min(totals) if policy == "fastest" else max(totals)
        assert plain.score == pytest.approx(best, rel=1e-12, abs=1e-15)


def test_fleet_arrays_update_in_place() -> None:
    fleet = FleetArrays(paper_nodes())
    s = Scheduler("paper", "performance")
    assert s.select(Task("t"), fleet).node == "Node-High"
    busy = make_node("Node-High", 1.0, 1024.0, load=0.9, free_cpu=0.1)
    fleet.update(0, busy)
    assert fleet.load[0] == 0.9
    assert fleet.state(0) == busy
    assert s.select(Task("t"), fleet).node == "Node-Medium"
    with pytest.raises(ConfigError, match=r"nodes\[1\].name"):
        fleet.update(1, busy)
    assert len(fleet) == 3
    assert [n.name for n in fleet.states()] == list(fleet.names)


def test_fleet_arrays_reject_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="unique"):
        FleetArrays([make_node("a"), make_node("a")])
