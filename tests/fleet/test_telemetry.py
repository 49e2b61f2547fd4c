"""NodeTelemetry's ``avg_time_s``: the median of the last AVG_TIME_WINDOW samples, each the wall
time (real nodes) or the task's CPU time at the node's quota (nodes simulated on a shared host),
and which fleet picks which source. No processes, no Ray cluster."""

from __future__ import annotations

import numpy as np
import pytest

from carbonedge.errors import ConfigError
from carbonedge.fleet import default_fleet
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.local import LocalFleet
from carbonedge.fleet.spec import NodeSpec
from carbonedge.fleet.telemetry import AVG_TIME_WINDOW, NodeTelemetry

from .conftest import small_fleet

HIGH, GREEN = default_fleet().nodes[0], default_fleet().nodes[2]  # 1.0 and 0.4 cores


def _run(t: NodeTelemetry, cpu_s: float, exec_ms: float, model: str = "m", n: int = 1) -> None:
    for _ in range(n):
        t.submitted()
        t.finished(
            now_s=1.0, cpu_s=cpu_s, exec_ms=exec_ms, latency_ms=exec_ms + 1.0, model_key=model
        )


def test_a_slow_warm_up_does_not_move_the_estimate() -> None:
    # node-high's warm-ups in the reproduction: a steady ~23 ms with one at 79 ms (host
    # contention). The old EWMA (alpha 0.2) would move by 0.2 x 56 ms = 11 ms; the median not.
    for source in ("wall", "cpu_share"):
        t = NodeTelemetry(HIGH, window_s=0.0, exec_time_source=source)
        _run(t, cpu_s=0.023, exec_ms=23.0, n=5)
        before = t.state(1.0, "m").avg_time_s
        _run(t, cpu_s=0.023, exec_ms=79.0)  # wall time inflated, CPU time not
        assert before == pytest.approx(0.023)
        assert t.state(1.0, "m").avg_time_s == pytest.approx(0.023), source


def test_cpu_share_sample_is_cpu_seconds_over_the_quota() -> None:
    t = NodeTelemetry(GREEN, window_s=0.0, exec_time_source="cpu_share")
    _run(t, cpu_s=0.02, exec_ms=200.0)  # waited 150 ms for other processes of the host
    assert t.state(1.0, "m").avg_time_s == pytest.approx(0.02 / 0.4)
    assert t.state(1.0).avg_time_s == pytest.approx(0.05)  # node-wide, too
    # A task that reports no CPU time falls back to its wall time.
    t2 = NodeTelemetry(GREEN, window_s=0.0, exec_time_source="cpu_share")
    _run(t2, cpu_s=0.0, exec_ms=40.0)
    assert t2.state(1.0, "m").avg_time_s == pytest.approx(0.040)
    # One inference thread: a quota above one core does not make a task faster.
    big = small_fleet(2.0).nodes[0]
    t3 = NodeTelemetry(big, window_s=0.0, exec_time_source="cpu_share")
    _run(t3, cpu_s=0.03, exec_ms=31.0)
    assert t3.state(1.0, "m").avg_time_s == pytest.approx(0.03)


def test_wall_source_uses_the_measured_execution_time() -> None:
    t = NodeTelemetry(GREEN, window_s=0.0)
    assert t.exec_time_source == "wall"  # the default: real hosts and devices
    _run(t, cpu_s=0.02, exec_ms=70.0)
    _run(t, cpu_s=0.02, exec_ms=60.0)
    _run(t, cpu_s=0.02, exec_ms=90.0)
    assert t.state(1.0, "m").avg_time_s == pytest.approx(0.070)  # median, not cpu_s / quota
    # The dispatch latency is still latency - exec (1 ms here), an EMA as before.
    assert t.state(1.0).latency_ms == pytest.approx(1.0)


def test_median_window_is_bounded() -> None:
    t = NodeTelemetry(HIGH, window_s=0.0)
    _run(t, cpu_s=0.1, exec_ms=100.0, n=AVG_TIME_WINDOW)
    _run(t, cpu_s=0.01, exec_ms=10.0, n=AVG_TIME_WINDOW // 2 + 1)  # a majority of the window
    assert t.state(1.0, "m").avg_time_s == pytest.approx(0.010)
    _run(t, cpu_s=0.01, exec_ms=10.0, n=AVG_TIME_WINDOW)  # the old samples are all gone
    assert list(t._samples_by_model["m"]) == [0.010] * AVG_TIME_WINDOW
    assert len(t._samples) == AVG_TIME_WINDOW
    small = NodeTelemetry(HIGH, window_s=0.0, avg_time_window=3)
    _run(small, cpu_s=0.1, exec_ms=100.0, n=10)
    _run(small, cpu_s=0.01, exec_ms=10.0, n=2)
    assert small.state(1.0, "m").avg_time_s == pytest.approx(0.010)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="exec_time_source"):
        NodeTelemetry(HIGH, exec_time_source="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="avg_time_window"):
        NodeTelemetry(HIGH, avg_time_window=0)


def test_occupancy_counts_tasks_against_max_in_flight() -> None:
    for depth, loads in ((1, [0.0, 1.0, 1.0]), (2, [0.0, 0.5, 1.0]), (4, [0.0, 0.25, 0.5])):
        t = NodeTelemetry(HIGH, window_s=0.0, max_in_flight=depth)
        seen = []
        for _ in range(3):
            seen.append(t.load(0.0))
            t.submitted()
        assert seen == loads
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ConfigError, match="max_in_flight"):
            NodeTelemetry(HIGH, max_in_flight=bad)  # type: ignore[arg-type]
    # the fleets refuse it when made, not when they start
    with pytest.raises(ConfigError, match="max_in_flight"):
        LocalFleet(default_fleet(), max_in_flight=0)
    local = LocalFleet(default_fleet(), enforcement="dilation", max_in_flight=2)
    assert local._new_node(HIGH).telemetry.max_in_flight == 2
    from carbonedge.fleet.base import FleetError
    from carbonedge.fleet.ray_backend import RayFleet  # not started: no Ray needed

    RayFleet(default_fleet(), max_in_flight=4)  # the default actor threads leave room
    with pytest.raises(FleetError, match=r"max_concurrency \(2\) must exceed max_in_flight \(2\)"):
        RayFleet(default_fleet(), max_in_flight=2, max_concurrency=2)


def _sources(nodes: list[NodeSpec], fleet: LocalFleet) -> set[str]:
    return {fleet._new_node(n).telemetry.exec_time_source for n in nodes}


def test_simulated_fleets_use_cpu_share_and_real_nodes_wall() -> None:
    spec = default_fleet()
    # The local process fleet: every node is a quota'd slice of this host (not started here:
    # dilation needs no cgroup probe).
    assert _sources(list(spec.nodes), LocalFleet(spec, enforcement="dilation")) == {"cpu_share"}
    # The in-process fake: its scripted exec_ms by default (tests script node speeds with it),
    # cpu_s / quota when asked to behave like the local fleet.
    wall = InProcessFleet(spec, cpu_s=0.01, exec_ms=100.0)
    wall.submit("node-green", "m", np.zeros((1, 3)))
    assert wall.node_states("m")[2].avg_time_s == pytest.approx(0.100)
    fake = InProcessFleet(spec, cpu_s=0.01, exec_ms=100.0, exec_time_source="cpu_share")
    fake.submit("node-green", "m", np.zeros((1, 3)))
    states = {s.name: s for s in fake.node_states("m")}
    assert states["node-green"].avg_time_s == pytest.approx(0.01 / 0.4)
    # Ray: dilated actors simulate quotas on a shared host; enforcement="none" is real devices.
    # (The property is read without starting Ray.)
    from carbonedge.fleet.ray_backend import RayFleet

    assert RayFleet(spec, enforcement="dilation").exec_time_source == "cpu_share"
    assert RayFleet(spec, enforcement="none").exec_time_source == "wall"
