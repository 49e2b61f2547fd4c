"""A small synthetic reproduction result for report and table tests: three runs and a sweep
point whose figures are the totals of their ledger rows (the headline rule), each task charged
at one calibrated rate, with their own windows' attribution kept beside them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from carbonedge.accounting import METHOD_CALIBRATED, ComponentEnergy, PooledRate, totals
from carbonedge.carbon import IntensityReading, LedgerRow, task_row
from carbonedge.experiments import (
    Environment,
    ExperimentParams,
    ExperimentResult,
    RunRecord,
    SweepRecord,
)

NODES = ("node-high", "node-medium", "node-green")
INTENSITY = {"node-high": 620.0, "node-medium": 530.0, "node-green": 380.0}
QUOTA = {"node-high": 1.0, "node-medium": 0.6, "node-green": 0.4}
PUE = {"node-high": 1.0, "node-medium": 1.0, "node-green": 1.2}
ENV_NODES = tuple((n, QUOTA[n], 512, INTENSITY[n], PUE[n]) for n in NODES)
#: kWh per task CPU-second: the calibrated rate every row is charged at.
RATE = PooledRate(2e-6, 0.0, 0.0, 2e-6 * 10.0, 10.0, 6)


def row(run_id: str, tid: str, node: str, cpu_s: float) -> LedgerRow:
    now = datetime.now(UTC)
    energy = ComponentEnergy(cpu_energy_kwh=RATE.cpu_kwh_per_s * cpu_s)
    return task_row(
        task_id=tid,
        run_id=run_id,
        node=node,
        model="mobilenet_v2",
        runtime="torch",
        started_at=now,
        finished_at=now,
        latency_ms=10.0,
        cpu_s=cpu_s,
        energy=energy,
        intensity=IntensityReading(INTENSITY[node], node, now, "static"),
        pue=PUE[node],
        energy_method="cpu=fake",
        attribution_method=METHOD_CALIBRATED,
    )


def run(
    config: str,
    rows: list[tuple[str, float]],
    node_cpu_s: dict[str, float],
    window_kwh: dict[str, float],
    *,
    window_s: float = 1.0,
    attribution: str = "cputime",
) -> tuple[RunRecord, list[LedgerRow]]:
    """A run of ``rows`` (node, task CPU-s) whose own window attributed ``window_kwh``."""
    run_id = f"mobilenet_v2/{config}/r0"
    charged = [row(run_id, str(i), n, c) for i, (n, c) in enumerate(rows)]
    t = totals(charged)
    used = {n for n, _ in rows}
    record = RunRecord(
        model="mobilenet_v2",
        config=config,
        repeat=0,
        n_tasks=len(rows),
        latency_ms=50.0,
        wall_s=window_s,
        throughput_rps=len(rows) / window_s,
        node_energy_kwh={n: t.by_node.get(n, ComponentEnergy()).energy_kwh for n in NODES},
        cpu_energy_kwh=t.energy.cpu_energy_kwh,
        gpu_energy_kwh=0.0,
        ram_energy_kwh=0.0,
        idle_energy_kwh=1e-6,
        other_energy_kwh=1e-7,
        host_energy_kwh=sum(window_kwh.values()) + 1.1e-6,
        carbon_g=t.gco2,
        usage_pct={
            n: 100.0 * sum(1 for m, _ in rows if m == n) / len(rows) if n in used else 0.0
            for n in NODES
        },
        attribution=attribution,
        run_id=run_id,
        node_cpu_s={n: node_cpu_s.get(n, 0.0) for n in NODES},
        window_s=window_s,
        window_energy_kwh=sum(window_kwh.values()),
        window_carbon_g=sum(e * INTENSITY[n] * PUE[n] for n, e in window_kwh.items()),
    )
    return record, charged


def env(nodes: tuple[tuple[str, float, int, float, float], ...] = ENV_NODES) -> Environment:
    """The method notes of a fake-metered run on ``nodes`` (name, quota, MB, I, PUE)."""
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
        nodes=nodes,
        mono_node="node-medium",
    )


def result(attribution: str = "cputime") -> ExperimentResult:
    """Monolithic (node-medium), CE-Green (node-green and node-medium), CE-SLO (node-green)."""
    mono, r1 = run("Monolithic", [("node-medium", 0.4), ("node-medium", 0.5)],
                   {"node-medium": 1.0, "node-high": 0.01}, {"node-medium": 4e-6})  # fmt: skip
    green, r2 = run("CE-Green", [("node-green", 0.3), ("node-medium", 0.25), ("node-green", 0.5),
                    ("node-medium", 0.25)], {"node-green": 0.9, "node-medium": 0.6},
                    {"node-green": 1e-6, "node-medium": 0.6e-6})  # fmt: skip
    slo, r3 = run("CE-SLO (ours)", [("node-green", 1.0)], {"node-green": 1.1},
                  {"node-green": 1.5e-6})  # fmt: skip
    slo = dataclasses.replace(slo, slo_ms=75.0, slo_met_pct=90.0)
    point = SweepRecord(
        "paper", 1.0, (0.0, 0.0, 0.0, 0.0, 1.0), "mobilenet_v2", 5, "node-green",
        {"node-high": 0.0, "node-medium": 0.0, "node-green": 100.0}, 60.0,
        380 * 1.2 * 2e-6 * 0.5, 2e-6 * 0.5, run_id="sweep/p",
        node_energy_kwh={"node-green": 1e-6}, node_cpu_s={"node-green": 0.5},
        cpu_energy_kwh=1e-6, window_s=0.6,
    )  # fmt: skip
    return ExperimentResult(
        ExperimentParams.quick(models=("mobilenet_v2",), attribution=attribution),
        env(),
        (mono, green, slo),
        (point,),
        tuple(r1 + r2 + r3),
        rate=RATE,
        charge_method=METHOD_CALIBRATED,
    )
