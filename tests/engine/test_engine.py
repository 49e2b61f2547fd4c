"""The engine on an in-process fleet (real telemetry, real scheduler, real ledger; no processes).

Placement, admission, refusal with reasons, retries, the per-task charge, intensity at decision
time from a replayed trace under a clock the test controls, and the ledger row committed before
the task's future resolves.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carbonedge.accounting import carbon_g
from carbonedge.carbon import CsvTrace, IntensityError, IntensityReading
from carbonedge.engine import (
    EngineConfig,
    EngineSettings,
    NoEligibleNode,
    Overloaded,
    ReplayClock,
    open_engine,
)
from carbonedge.engine.intensity import IntensityFeed
from carbonedge.errors import ConfigError
from carbonedge.fleet import ModelRef
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.spec import parse_fleet

X = np.zeros((1, 3, 224, 224), dtype=np.float32)


def _spec(**extra: Any) -> Any:
    nodes = [
        {"name": "high", "cpu_quota": 1.0, "memory_mb": 1024, "intensity_g_per_kwh": 620,
         "idle_w": 0.0, "max_w": 8.0},
        {"name": "green", "cpu_quota": 0.4, "memory_mb": 512, "intensity_g_per_kwh": 380,
         "idle_w": 0.0, "max_w": 3.2},
    ]  # fmt: skip
    for node in nodes:
        node.update(extra.get(node["name"], {}))  # type: ignore[arg-type]
    return parse_fleet({"nodes": nodes}, "engine-test")


def _engine(fleet: InProcessFleet, tmp_path: Path, **kw: Any) -> Any:
    config = kw.pop("config", EngineConfig(max_wait_s=1.0, poll_s=0.01))
    settings = EngineSettings(
        meter="fake",
        window_s=0.0,
        ledger=tmp_path / "ledger.sqlite",
        policy=kw.pop("policy", "paper"),
        mode=kw.pop("mode", "green"),
        run_id="test-run",
        engine=config,
    )
    return open_engine(settings, fleet=fleet, models=[ModelRef("m")], **kw)


def _rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    try:
        return db.execute(
            "SELECT task_id, node, intensity_g_per_kwh, intensity_source, intensity_at, "
            "intensity_fallback, attempts, gco2, cpu_energy_kwh + gpu_energy_kwh + "
            "ram_energy_kwh, pue FROM tasks ORDER BY rowid"
        ).fetchall()
    finally:
        db.close()


def _warm(engine: Any) -> None:
    """One pinned task per node: until a node has run a task, Eq. 4's T_avg is 0, so its
    E_est and the carbon score ignore the intensity (the paper's cold start)."""
    for node in engine.fleet.spec.names:
        engine.run(X, engine.model_keys[0], task_id=f"warm-{node}", node=node)


def test_a_task_is_placed_charged_and_recorded_before_its_future_resolves(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec(), cpu_s=0.02)
    with _engine(fleet, tmp_path) as engine:
        _warm(engine)
        out = engine.run(X, engine.model_keys[0], task_id="a")
        # committed: another connection sees the row as soon as the future is done
        row = _rows(tmp_path)[-1]
    assert out.node == "green"  # Green mode, both idle, equal times: the greener node
    assert out.recorded and out.row is not None and out.row.task_id == "a"
    assert row[:4] == ("a", "green", 380.0, "static (fleet spec)")
    assert row[5] == 0 and row[6] == 1
    # the power-profile prior: (max_w - idle_w) / quota J per CPU-s x 0.02 CPU-s
    energy_kwh = 3.2 / 0.4 * 0.02 / 3.6e6
    assert row[8] == pytest.approx(energy_kwh, rel=1e-12)
    assert row[7] == pytest.approx(carbon_g(energy_kwh, 380.0, 1.0), rel=1e-12)
    assert out.charge.method == "power-profile"


def test_busy_nodes_make_tasks_wait_not_fail_and_every_node_is_used(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec(), exec_s=0.02)
    with _engine(fleet, tmp_path, config=EngineConfig(max_wait_s=30.0, poll_s=0.01)) as engine:
        futures = [engine.submit(X, engine.model_keys[0], task_id=f"t{i}") for i in range(30)]
        outs = [f.result(timeout=60) for f in futures]
        stats = engine.stats()
    assert {o.node for o in outs} == {"high", "green"}  # occupancy load: a busy node is skipped
    assert stats["completed"] == 30 and stats["queued"] == 0 and stats["in_flight"] == 0
    assert max(o.queue_ms for o in outs) > 0
    assert len(_rows(tmp_path)) == 30


def test_full_queue_is_refused_at_once_with_retry_after(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    fleet.hold = {"high", "green"}
    config = EngineConfig(max_queue=3, max_wait_s=30.0, poll_s=0.01)
    with _engine(fleet, tmp_path, config=config) as engine:
        key = engine.model_keys[0]
        running = [engine.submit(X, key, task_id=f"r{i}") for i in range(2)]
        deadline = time.monotonic() + 10
        while engine.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = [engine.submit(X, key, task_id=f"w{i}") for i in range(3)]
        t0 = time.perf_counter()
        with pytest.raises(Overloaded, match="max_queue 3") as refused:
            engine.submit(X, key, task_id="x")
        assert time.perf_counter() - t0 < 1.0  # at once, not after a wait
        assert refused.value.status == 503 and refused.value.retry_after_s is not None
        assert refused.value.retry_after_s >= 1.0
        fleet.release()
        assert all(f.result(timeout=30).recorded for f in running + waiting)


@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
def test_a_node_holds_at_most_max_in_flight_tasks(tmp_path: Path, max_in_flight: int) -> None:
    fleet = InProcessFleet(_spec(), max_in_flight=max_in_flight)
    fleet.hold = {"high", "green"}
    config = EngineConfig(max_wait_s=30.0, poll_s=0.01)
    with _engine(fleet, tmp_path, config=config) as engine:
        key = engine.model_keys[0]
        futures = [engine.submit(X, key, task_id=f"t{i}") for i in range(8)]
        deadline = time.monotonic() + 10
        while engine.in_flight < 2 * max_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # a dispatcher that ignored the limit would send more by now
        states = {s.name: s for s in fleet.node_states(key)}
        assert engine.in_flight == 2 * max_in_flight and engine.queued == 8 - 2 * max_in_flight
        assert all(s.tasks_in_flight == max_in_flight and s.load == 1.0 for s in states.values())
        fleet.release()
        assert all(f.result(timeout=30).recorded for f in futures)
    with pytest.raises(ConfigError, match="max_in_flight: must be a whole number from 1 to 4"):
        EngineSettings(max_in_flight=5)


def test_no_eligible_node_is_refused_after_the_wait_with_reasons_then_recovers(
    tmp_path: Path,
) -> None:
    fleet = InProcessFleet(_spec())
    fleet.hold = {"high", "green"}
    with _engine(fleet, tmp_path, config=EngineConfig(max_wait_s=0.3, poll_s=0.01)) as engine:
        key = engine.model_keys[0]
        held = [engine.submit(X, key, task_id=f"h{i}") for i in range(2)]
        late = engine.submit(X, key, task_id="late")
        with pytest.raises(NoEligibleNode) as refused:
            late.result(timeout=10)
        assert "load" in str(refused.value) and refused.value.retry_after_s is not None
        assert {r["node"] for r in refused.value.reasons} == {"high", "green"}
        fleet.release()
        for f in held:
            f.result(timeout=10)
        # nothing stays refused once the load has passed
        assert engine.run(X, key, task_id="after").recorded


def test_a_node_down_mid_task_is_replaced_once_and_recorded_once(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    with _engine(fleet, tmp_path) as engine:
        _warm(engine)
        fleet.die_once = {"green"}
        out = engine.run(X, engine.model_keys[0], task_id="t")
        assert engine.stats()["redispatched"] == 1
    assert out.node == "high" and out.attempts == 2 and out.failed_nodes == ("green",)
    row = _rows(tmp_path)[-1]
    assert row[0] == "t" and row[1] == "high" and row[6] == 2


def test_every_node_down_is_a_clear_refusal(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    fleet.die_once = {"green", "high"}
    with (
        _engine(fleet, tmp_path, config=EngineConfig(max_wait_s=0.2, max_attempts=2)) as engine,
        pytest.raises(NoEligibleNode, match="went down"),
    ):
        engine.run(X, engine.model_keys[0], task_id="t")
    assert _rows(tmp_path) == []


def test_pinned_tasks_skip_the_scheduler(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    with _engine(fleet, tmp_path) as engine:
        outs = [engine.run(X, engine.model_keys[0], task_id=f"p{i}", node="high") for i in range(3)]
    assert {o.node for o in outs} == {"high"} and all(o.decision_us == 0 for o in outs)


class _Clock:
    """Grid time that moves only when the test says."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_green_mode_follows_a_replayed_trace_at_the_first_decision_after_the_change(
    tmp_path: Path,
) -> None:
    """node-green's intensity rises above node-high's at T: the first decision after T goes to
    node-high, and the rows before and after T carry the two intensities and their times."""
    t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    trace = tmp_path / "day.csv"
    trace.write_text(
        "timestamp,zone,gco2_per_kwh\n"
        f"{(t - timedelta(hours=1)).isoformat()},HIGH,500\n"
        f"{(t - timedelta(hours=1)).isoformat()},GREEN,200\n"
        f"{t.isoformat()},GREEN,700\n",
        encoding="utf-8",
    )
    source = {"source": "trace", "file": "day.csv"}
    # equal power and task time on both nodes: equal energy per task, so intensity decides
    spec = _spec(high={"intensity": {**source, "zone": "HIGH"}},
                 green={"intensity": {**source, "zone": "GREEN"}, "max_w": 8.0})  # fmt: skip
    spec = type(spec)(spec.nodes, spec.source, base_dir=str(tmp_path))
    clock = _Clock(t - timedelta(seconds=1))
    fleet = InProcessFleet(spec)
    with _engine(fleet, tmp_path, policy="normalized", clock=clock) as engine:
        key = engine.model_keys[0]
        _warm(engine)
        before = engine.run(X, key, task_id="before")
        clock.now = t  # the step is at T (step interpolation)
        after = engine.run(X, key, task_id="after")
    assert (before.node, after.node) == ("green", "high")
    rows = _rows(tmp_path)[2:]
    assert [(r[1], r[2]) for r in rows] == [("green", 200.0), ("high", 500.0)]
    assert rows[0][3] == rows[1][3] == "csv:day.csv:step"
    assert rows[0][4] == (t - timedelta(seconds=1)).isoformat() and rows[1][4] == t.isoformat()


class _Failing:
    def __init__(self) -> None:
        self.fail = False

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        if self.fail:
            raise IntensityError("API down")
        return IntensityReading(300.0, zone, at or datetime.now(UTC), "test-api")


def test_a_failing_source_falls_back_to_its_last_reading_and_says_so(tmp_path: Path) -> None:
    api = _Failing()
    clock = _Clock(datetime(2024, 5, 1, tzinfo=UTC))
    feed = IntensityFeed(_spec(), clock, sources={"green": api})
    assert feed.reading("green").g_per_kwh == 300.0 and not feed.reading("green").fallback
    api.fail = True
    reading = feed.reading("green")
    assert reading.g_per_kwh == 300.0 and reading.fallback
    assert reading.fallback_reason == "API down"
    with pytest.raises(IntensityError, match="no intensity"):
        IntensityFeed(_spec(), clock, sources={"green": api})  # nothing to fall back on


def test_fleet_file_intensity_tables_are_validated() -> None:
    with pytest.raises(Exception, match=r"nodes\[1\]\.intensity\.source must be one of"):
        _spec(green={"intensity": {"source": "sun"}})
    with pytest.raises(Exception, match=r"intensity\.file is required"):
        _spec(green={"intensity": {"source": "trace"}})
    with pytest.raises(Exception, match=r"intensity\.zone is required"):
        parse_fleet(
            {"nodes": [{"name": "n", "cpu_quota": 1, "memory_mb": 64, "idle_w": 0, "max_w": 1,
                        "intensity": {"source": "electricitymaps"}}]},
            "f",
        )  # fmt: skip


def test_replay_clock_runs_at_its_speedup() -> None:
    ticks = iter([0.0, 2.0])
    clock = ReplayClock(datetime(2024, 1, 1, tzinfo=UTC), 3600.0, monotonic=lambda: next(ticks))
    assert clock() == datetime(2024, 1, 1, 2, tzinfo=UTC)  # 2 s x 3600 = 2 h


def test_a_trace_source_is_read_at_decision_time_not_cached(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,zone,gco2_per_kwh\n2024-01-01T00:00Z,Z,1\n2024-01-01T01:00Z,Z,2\n")
    clock = _Clock(datetime(2024, 1, 1, 0, 30, tzinfo=UTC))
    feed = IntensityFeed(_spec(green={"zone": "Z"}), clock, sources={"green": CsvTrace(trace)})
    assert feed.reading("green").g_per_kwh == 1.0
    clock.now = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
    assert feed.reading("green").g_per_kwh == 2.0


def test_close_drains_running_tasks(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    fleet.hold = {"green", "high"}
    engine = _engine(fleet, tmp_path)
    futures = [engine.submit(X, engine.model_keys[0], task_id=f"d{i}") for i in range(2)]
    threading.Timer(0.3, fleet.release).start()
    engine.close(drain_s=10.0)
    assert all(f.result(timeout=1).recorded for f in futures)
    assert len(_rows(tmp_path)) == 2
    with pytest.raises(Overloaded, match="stopping"):
        engine.submit(X, "m/torch", task_id="late")


def test_dynamic_batching_runs_one_batch_and_splits_its_cost(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec(), cpu_s=0.04)
    config = EngineConfig(max_batch=4, batch_wait_ms=300.0, max_wait_s=10.0, poll_s=0.01)
    with _engine(fleet, tmp_path, config=config) as engine:
        key = engine.model_keys[0]
        futures = [engine.submit(X, key, task_id=f"b{i}") for i in range(4)]
        outs = [f.result(timeout=30) for f in futures]
    assert fleet.batch_sizes == [4]  # one fleet task for the four requests
    assert all(o.batch_size == 4 and o.result.cpu_s == pytest.approx(0.01) for o in outs)
    assert all(o.output.shape == (1, 1000) for o in outs)
    assert [o.task_id for o in outs] == [f"b{i}" for i in range(4)]
    rows = _rows(tmp_path)
    assert len(rows) == 4 and len({r[1] for r in rows}) == 1  # one node ran them all
    # the batch's cost, split: four shares of 0.01 CPU-s at the node's rate
    assert sum(r[8] for r in rows) == pytest.approx(4 * rows[0][8], rel=1e-12)


def test_batches_never_mix_input_formats(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec(), cpu_s=0.04)
    config = EngineConfig(max_batch=4, batch_wait_ms=300.0, max_wait_s=10.0, poll_s=0.01)
    crops = np.zeros((1, 224, 224, 3), dtype=np.uint8)  # what the server sends
    with _engine(fleet, tmp_path, config=config) as engine:
        key = engine.model_keys[0]
        batches = [X, crops, X, crops, X.astype(np.float64), X]
        futures = [engine.submit(b, key, task_id=f"m{i}") for i, b in enumerate(batches)]
        outs = [f.result(timeout=30) for f in futures]
    assert all(o.recorded for o in outs)
    assert sorted(fleet.batch_sizes) == [1, 2, 3]  # float32 x3, uint8 x2, float64 x1


def test_explain_records_the_engines_own_decision_margin(tmp_path: Path) -> None:
    fleet = InProcessFleet(_spec())
    with _engine(fleet, tmp_path) as engine:
        _warm(engine)
        plain = engine.run(X, engine.model_keys[0], task_id="plain")
        explained = engine.run(X, engine.model_keys[0], task_id="explained", explain=True)
    assert plain.row.decision_margin is None
    margin = explained.row.decision_margin
    assert margin is not None and margin > 0  # the chosen node scored higher than the other
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    stored = db.execute("SELECT decision_margin FROM tasks WHERE task_id = 'explained'").fetchone()
    db.close()
    assert stored[0] == pytest.approx(margin)
