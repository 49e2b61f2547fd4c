"""The pooled energy rate (experiments.rates) on synthetic records, with hand-computed numbers,
and the CE-SLO configuration's SLO on the default fleet."""

from __future__ import annotations

import argparse
import dataclasses
import math
from datetime import UTC, datetime

import pytest

from carbonedge.carbon import ComponentEnergy, IntensityReading, task_row
from carbonedge.errors import ConfigError
from carbonedge.experiments import (
    CE_SLO,
    Environment,
    ExperimentParams,
    ExperimentResult,
    RunRecord,
    SweepRecord,
    config_labels,
    summaries,
)
from carbonedge.experiments.rates import (
    apply_energy_rate,
    charge_run,
    pooled_rate,
)
from carbonedge.experiments.report import headline, write_report
from carbonedge.experiments.tables import slo_note, table_ii, table_v

NODES = ("node-high", "node-medium", "node-green")
INTENSITY = {"node-high": 620.0, "node-medium": 530.0, "node-green": 380.0}
QUOTA = {"node-high": 1.0, "node-medium": 0.6, "node-green": 0.4}
PUE = {"node-high": 1.0, "node-medium": 1.0, "node-green": 1.2}
ENV_NODES = tuple((n, QUOTA[n], 512, INTENSITY[n], PUE[n]) for n in NODES)


def _run(
    config: str,
    repeat: int,
    cpu_s: dict[str, float],
    node_kwh: dict[str, float],
    *,
    window_s: float = 1.0,
    attribution: str = "cputime",
) -> RunRecord:
    """A window-rate run whose nodes were attributed ``node_kwh`` (all CPU energy)."""
    energy = {n: node_kwh.get(n, 0.0) for n in NODES}
    carbon = sum(e * INTENSITY[n] * PUE[n] for n, e in energy.items())
    busy = [n for n in NODES if cpu_s.get(n, 0.0) > 0.05]
    return RunRecord(
        model="mobilenet_v2",
        config=config,
        repeat=repeat,
        n_tasks=10,
        latency_ms=50.0,
        wall_s=window_s,
        throughput_rps=10 / window_s,
        node_energy_kwh=energy,
        cpu_energy_kwh=sum(energy.values()),
        gpu_energy_kwh=0.0,
        ram_energy_kwh=0.0,
        idle_energy_kwh=1e-6,
        other_energy_kwh=1e-7,
        host_energy_kwh=sum(energy.values()) + 1.1e-6,
        carbon_g=carbon,
        usage_pct={n: (100.0 / len(busy) if n in busy else 0.0) for n in NODES},
        attribution=attribution,
        run_id=f"mobilenet_v2/{config}/r{repeat}",
        node_cpu_s={n: cpu_s.get(n, 0.0) for n in NODES},
        window_s=window_s,
    )


def _env() -> Environment:
    return Environment(
        energy_method="cpu=fake gpu=fake ram=fake",
        energy_method_text="CPU: FAKE",
        meter="fake",
        attribution="cputime",
        enforcement="cgroup",
        runtime="torch",
        weights="random (seed 0)",
        images="10 images",
        machine="test",
        fleet="default",
        nodes=ENV_NODES,
        mono_node="node-medium",
    )


def test_pooled_rate_by_hand() -> None:
    # Run A: node-high used 1.0 CPU-s and was attributed 3e-6 kWh (rate 3e-6 kWh/s).
    # Run B: node-green used 2.0 CPU-s and was attributed 1e-6 kWh (rate 0.5e-6 kWh/s).
    a = _run("Monolithic", 0, {"node-high": 1.0}, {"node-high": 3e-6})
    b = _run("CE-Green", 0, {"node-green": 2.0}, {"node-green": 1e-6})
    rate = pooled_rate([a, b], "cputime")
    assert rate.basis == "node_cpu_s" and rate.windows == 2
    assert rate.cpu_kwh_per_s == pytest.approx(4e-6 / 3.0)
    assert rate.seconds == pytest.approx(3.0) and rate.energy_kwh == pytest.approx(4e-6)
    assert rate.power_w == pytest.approx(4e-6 / 3.0 * 3.6e6)  # 4.8 W per busy core
    pa, pb = charge_run(a, rate, ENV_NODES), charge_run(b, rate, ENV_NODES)
    assert pa.node_energy_kwh["node-high"] == pytest.approx(4e-6 / 3.0)
    assert pb.node_energy_kwh["node-green"] == pytest.approx(8e-6 / 3.0)
    assert pa.carbon_g == pytest.approx(620.0 * 4e-6 / 3.0)
    assert pb.carbon_g == pytest.approx(380.0 * 1.2 * 8e-6 / 3.0)  # PUE 1.2 on node-green
    assert pa.energy_rate == pb.energy_rate == "pooled"
    # Pooling moves energy between windows, never creates it.
    assert pa.energy_kwh + pb.energy_kwh == pytest.approx(a.energy_kwh + b.energy_kwh)
    # Measured window figures are kept.
    assert pa.host_energy_kwh == a.host_energy_kwh and pa.node_cpu_s == a.node_cpu_s


def test_pooled_equals_window_when_every_window_has_the_same_rate() -> None:
    r = 2.5e-6  # kWh per CPU-second in every window
    runs = [
        _run(c, k, cpu, {n: s * r for n, s in cpu.items()})
        for k, (c, cpu) in enumerate(
            [
                ("Monolithic", {"node-medium": 0.7, "node-high": 0.01}),
                ("CE-Green", {"node-green": 1.3, "node-medium": 0.2}),
                ("CE-Performance", {"node-high": 0.4, "node-green": 0.02}),
            ]
        )
    ]
    rate = pooled_rate(runs, "cputime")
    assert rate.cpu_kwh_per_s == pytest.approx(r)
    for run in runs:
        pooled = charge_run(run, rate, ENV_NODES)
        for n in NODES:
            assert pooled.node_energy_kwh[n] == pytest.approx(run.node_energy_kwh[n], abs=1e-18)
        assert pooled.carbon_g == pytest.approx(run.carbon_g)


def test_pooled_rate_must_be_able_to_differ_from_window() -> None:
    # Different per-window rates: the pooled charge differs from the window's own.
    a = _run("Monolithic", 0, {"node-medium": 1.0}, {"node-medium": 4e-6})
    b = _run("CE-Green", 0, {"node-green": 1.0}, {"node-green": 1e-6})
    rate = pooled_rate([a, b], "cputime")
    assert charge_run(a, rate, ENV_NODES).energy_kwh == pytest.approx(2.5e-6)
    assert charge_run(b, rate, ENV_NODES).energy_kwh == pytest.approx(2.5e-6)


def test_quota_pools_host_power_per_window_second() -> None:
    # quota: nodes get the whole host energy by quota share (0.5 / 0.3 / 0.2).
    a = _run("Monolithic", 0, {"node-medium": 1.0}, {"node-high": 5e-6, "node-medium": 3e-6,
             "node-green": 2e-6}, window_s=2.0, attribution="quota")  # fmt: skip
    b = _run("CE-Green", 0, {"node-green": 1.0}, {"node-high": 1e-6, "node-medium": 0.6e-6,
             "node-green": 0.4e-6}, window_s=1.0, attribution="quota")  # fmt: skip
    rate = pooled_rate([a, b], "quota")
    assert rate.basis == "window_s"
    assert rate.cpu_kwh_per_s == pytest.approx(12e-6 / 3.0)  # 12e-6 kWh over 3 s of windows
    pb = charge_run(b, rate, ENV_NODES)
    assert pb.energy_kwh == pytest.approx(4e-6)
    assert pb.node_energy_kwh["node-high"] == pytest.approx(4e-6 * 0.5)
    assert pb.node_energy_kwh["node-green"] == pytest.approx(4e-6 * 0.2)


def _row(run: RunRecord, tid: str, node: str, cpu_s: float) -> object:
    now = datetime.now(UTC)
    return task_row(
        task_id=tid,
        run_id=run.run_id,
        node=node,
        model=run.model,
        runtime="torch",
        started_at=now,
        finished_at=now,
        latency_ms=10.0,
        cpu_s=cpu_s,
        energy=ComponentEnergy(cpu_energy_kwh=1e-9),  # window-rate value, replaced
        intensity=IntensityReading(INTENSITY[node], node, now, "static"),
        pue=PUE[node],
        energy_method="cpu=fake",
        attribution_method="cputime",
    )


def _result() -> ExperimentResult:
    mono = _run("Monolithic", 0, {"node-medium": 1.0, "node-high": 0.01}, {"node-medium": 4e-6})
    green = _run("CE-Green", 0, {"node-green": 0.9, "node-medium": 0.3}, {"node-green": 1e-6,
                 "node-medium": 0.6e-6})  # fmt: skip
    slo = dataclasses.replace(
        _run("CE-SLO (ours)", 0, {"node-green": 1.1}, {"node-green": 1.5e-6}),
        slo_ms=75.0,
        slo_met_pct=90.0,
    )
    point = SweepRecord(
        "paper", 1.0, (0.0, 0.0, 0.0, 0.0, 1.0), "mobilenet_v2", 5, "node-green",
        {"node-high": 0.0, "node-medium": 0.0, "node-green": 100.0}, 60.0, 380 * 1.2 * 2e-6,
        2e-6, run_id="sweep/p", node_energy_kwh={"node-green": 2e-6},
        node_cpu_s={"node-green": 0.5}, cpu_energy_kwh=2e-6, window_s=0.6,
    )  # fmt: skip
    rows = [
        _row(mono, "0", "node-medium", 0.4),
        _row(mono, "1", "node-medium", 0.5),
        _row(green, "0", "node-green", 0.3),
        _row(green, "1", "node-medium", 0.25),
        _row(green, "2", "node-green", 0.5),
        _row(slo, "0", "node-green", 1.0),
    ]
    return ExperimentResult(
        ExperimentParams.quick(models=("mobilenet_v2",)),
        _env(),
        (mono, green, slo),
        (point,),
        tuple(rows),
    )


def test_apply_pooled_rate_ledger_rows_sum_to_node_energy_and_follow_eq2() -> None:
    window = _result()
    pooled = apply_energy_rate(window, "pooled")
    assert pooled.energy_rate == "pooled" and pooled.other_rate == "window"
    assert pooled.other_rate_runs == window.runs
    rate = pooled.pooled_rate
    assert rate is not None and rate.windows == 4  # three runs and the sweep point
    # Numerator: active energy attributed to nodes; denominator: node CPU-seconds.
    total_kwh = 4e-6 + 1.6e-6 + 1.5e-6 + 2e-6
    total_cpu_s = 1.01 + 1.2 + 1.1 + 0.5
    assert rate.cpu_kwh_per_s == pytest.approx(total_kwh / total_cpu_s)
    charged = sum(r.energy_kwh for r in pooled.runs) + sum(p.energy_kwh for p in pooled.sweep)
    assert charged == pytest.approx(total_kwh)
    assert pooled.sweep[0].carbon_g == pytest.approx(0.5 * rate.kwh_per_s * 380 * 1.2)
    for run in pooled.runs:
        for node, energy in run.node_energy_kwh.items():
            assert energy == pytest.approx(run.node_cpu_s[node] * rate.kwh_per_s)
    # The ledger keeps the rows as the engine charged them when each task finished.
    assert pooled.ledger_rows == window.ledger_rows


def test_window_rate_keeps_measurements_and_offers_pooled_beside() -> None:
    window = _result()
    kept = apply_energy_rate(window, "window")
    assert kept.runs == window.runs and kept.ledger_rows == window.ledger_rows
    assert [r.energy_rate for r in kept.other_rate_runs] == ["pooled"] * 3
    with pytest.raises(ValueError, match="window-rate"):
        apply_energy_rate(apply_energy_rate(window, "pooled"), "pooled")


def test_report_states_rate_static_energy_and_both_reductions() -> None:
    result = apply_energy_rate(_result(), "pooled")
    sums = summaries(result)
    h = headline(result, sums)
    assert h.energy_rate == "pooled" and h.other_rate == "window"
    # Window rate: mono 4e-6 x 530 (+0) vs green 1e-6 x 380 x 1.2 + 0.6e-6 x 530 (per 10 tasks).
    window_red = (1 - (1e-6 * 380 * 1.2 + 0.6e-6 * 530) / (4e-6 * 530)) * 100
    assert h.green_reduction_other_pct.mean == pytest.approx(window_red)
    rate = result.pooled_rate.kwh_per_s  # type: ignore[union-attr]
    # Pooled: every node CPU-second at one rate (mono: 1.0 s on node-medium, 0.01 s on node-high).
    green_g = rate * (0.9 * 380 * 1.2 + 0.3 * 530)
    pooled_red = (1 - green_g / (rate * (1.0 * 530 + 0.01 * 620))) * 100
    assert h.green_reduction_pct.mean == pytest.approx(pooled_red, rel=1e-6)
    assert h.slo_reduction_pct.n == 1 and h.slo_share_pct == pytest.approx(100.0)
    # Task CPU per inference from the ledger rows: node-green (0.3 + 0.5 + 1.0) / 3 s.
    assert h.cpu_ms_per_inf["node-green"] == pytest.approx(600.0)
    # CE-Green's shares (50% node-green with PUE 1.2, 50% node-medium) at equal CPU time.
    assert h.shares_only_pct == pytest.approx((1 - (0.5 * 380 * 1.2 + 0.5 * 530) / 530) * 100)
    # ... and with the task CPU per inference: node-green 600 ms, node-medium (0.4 + 0.5 + 0.25)
    # / 3 s, Monolithic's node too.
    med = 1150.0 / 3
    green_cpu = 0.5 * 600 * 380 * 1.2 + 0.5 * med * 530
    assert h.expected_pct == pytest.approx((1 - green_cpu / (med * 530)) * 100)
    text = write_report(result, sums)
    for needle in ("Energy rate", "`pooled`", "ONE physical", "Static energy", "% of the",
                   "under `window`", "CE-SLO (ours)", "75.0 ms", "runs_other_rate"):  # fmt: skip
        assert needle in text, needle


def test_slo_row_in_tables_ii_and_v() -> None:
    result = apply_energy_rate(_result(), "pooled")
    ii = table_ii(result)
    row = next(r for r in ii if r["configuration"] == CE_SLO)
    assert row["slo_ms"] == 75.0 and row["slo_met_pct"] == 90.0 and row["paper_latency_ms"] is None
    assert "75.0 ms" in slo_note(ii) and "90%" in slo_note(ii)
    v = next(r for r in table_v(result) if r["mode"] == CE_SLO)
    assert v["node-green_pct"] == 100.0 and v["paper_node-green_pct"] is None
    assert config_labels()[-1] == CE_SLO


def test_default_slo_factor_admits_the_green_node_only_when_idle() -> None:
    """The default SLO (3.5 x the fastest node's predicted latency) on the default fleet: the
    green node (0.4 of the fastest's CPU: 2.5x slower, 3x with its throttling overhead) meets it
    when idle, so CE-SLO picks the least carbon node; with a task already queued there (5x) it
    does not."""
    from carbonedge.fleet import load_fleet
    from carbonedge.scheduling import NodeState, Scheduler, Task

    spec = load_fleet(None)
    t_fast_s = 0.02

    def states(green_in_flight: int) -> list[NodeState]:
        # power_w: the node's power while running (what fleet telemetry reports)
        return [
            NodeState(n.name, n.cpu_quota, n.memory_mb, n.cpu_quota, n.memory_mb, 0.0, 0.0,
                      t_fast_s / n.cpu_quota,
                      green_in_flight if n.name == "node-green" else 0, n.power.power_w(1.0),
                      INTENSITY[n.name])
            for n in spec.nodes
        ]  # fmt: skip

    slo = ExperimentParams().slo_factor * t_fast_s * 1000.0
    assert Scheduler("constrained", slo_ms=slo).select(Task("t"), states(0)).node == "node-green"
    # Measured: a throttled node-green spends up to ~25% more CPU per inference (3.1x, not 2.5x,
    # the fastest's time); the default still admits it (at 3.0 CE-SLO flipped between repeats).
    slowed = [
        dataclasses.replace(s, avg_time_s=3.1 * t_fast_s) if s.name == "node-green" else s
        for s in states(0)
    ]
    assert Scheduler("constrained", slo_ms=slo).select(Task("t"), slowed).node == "node-green"
    # Queued: node-green predicts 2 x 50 ms > 70 ms; node-medium (33 ms) is next in carbon.
    busy = Scheduler("constrained", slo_ms=slo).select(Task("t"), states(1))
    assert busy.node == "node-medium"
    tight = Scheduler("constrained", slo_ms=1.5 * t_fast_s * 1000.0)
    assert tight.select(Task("t"), states(0)).node == "node-high"


def test_params_energy_rate_and_slo() -> None:
    p = ExperimentParams.quick()
    assert p.energy_rate == "pooled" and p.slo_ms is None and p.slo_factor == 3.5
    assert p.digest() != p.with_(energy_rate="window").digest()
    assert p.digest() != p.with_(slo_ms=40.0).digest()
    with pytest.raises(ConfigError, match="energy_rate"):
        ExperimentParams(energy_rate="daily")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="slo_factor"):
        ExperimentParams(slo_factor=0.0)
    with pytest.raises(ConfigError, match="slo_ms"):
        ExperimentParams(slo_ms=math.nan)


def test_cli_options_reach_the_params() -> None:
    from carbonedge.cli.reproduce_cmd import params_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["reproduce", "--quick", "--energy-rate", "window", "--slo-ms", "40"])
    params = params_from_args(args)
    assert params.energy_rate == "window" and params.slo_ms == 40.0 and params.n_images == 20
    default = params_from_args(parser.parse_args(["reproduce", "--slo-factor", "2"]))
    assert default.energy_rate == "pooled" and default.slo_factor == 2.0


def test_quota_headline_explains_quota_shares() -> None:
    measured = dataclasses.replace(
        _result(), params=ExperimentParams.quick(models=("mobilenet_v2",), attribution="quota")
    )
    result = apply_energy_rate(measured, "pooled")
    assert result.pooled_rate is not None and result.pooled_rate.basis == "window_s"
    text = write_report(result, summaries(result))
    assert "per second of window" in text and "quota-weighted intensity" in text
    assert "nothing is left out" in text
