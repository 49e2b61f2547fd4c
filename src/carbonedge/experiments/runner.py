"""The reproduction itself (paper Section IV): every configuration, model and repeat, and the
weight sweep, on one fleet started once.

Per model: the whole model is deployed on every node and the AMP4EC segments on their nodes,
once. Per run: warm-up tasks on every node (telemetry seeded, not measured), then ``n_images``
tasks one after another (closed loop, batch 1) inside one meter window. Repeats are interleaved
(repeat 0 of every configuration, then repeat 1, ...) so that slow drifts of the shared host
spread over all configurations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonedge.accounting import (
    METHOD_CALIBRATED,
    METHOD_PROFILE,
    ComponentEnergy,
    EnergyMeter,
    PooledRate,
    RateSnapshot,
    Totals,
    totals,
)
from carbonedge.carbon import LedgerRow
from carbonedge.engine import Engine, EngineError, IdleBaseline, Measurement, Outcome
from carbonedge.errors import CarbonEdgeError
from carbonedge.experiments.accounting import Accounted, account
from carbonedge.experiments.environment import IDLE_WINDOW_S, environment
from carbonedge.experiments.params import (
    AMP4EC,
    CE_MODES,
    CE_POLICIES,
    CE_SLO,
    MONOLITHIC,
    ExperimentParams,
    ce_label,
    config_labels,
)
from carbonedge.experiments.records import (
    CalibrationRecord,
    ExperimentResult,
    RunRecord,
    SweepRecord,
)
from carbonedge.experiments.sensitivity import free_memory_of
from carbonedge.experiments.setup import amp4ec_pipeline, default_meter_factory, mono_node
from carbonedge.fleet import FleetBackend, FleetError, ModelRef, Pipeline, TaskResult
from carbonedge.scheduling import MODES, Scheduler, Task

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Batches = Sequence[npt.NDArray[np.float32]]

#: How long a scheduled task may wait for an eligible node before the run fails, s.
NO_NODE_TIMEOUT_S = 30.0
#: A calibration window lasts at least this many meter sampling intervals.
CALIBRATION_SAMPLES = 2


class ExperimentError(CarbonEdgeError):
    """A reproduction cannot run (no eligible node, a node keeps failing, ...)."""


class _Ctx:
    """What every run of one reproduction shares (mutable only through its methods).

    Tasks go through the engine (placement, retries, the per-task charge and the streamed
    ledger row); runs are the engine's named measurement windows, and a run's energy and carbon
    are the totals of its rows.
    """

    def __init__(self, params: ExperimentParams, engine: Engine, prefix: str) -> None:
        self.params = params
        self.engine = engine
        self.prefix = prefix
        self.fleet = engine.fleet
        self.spec = engine.fleet.spec
        self.intensities = engine.intensity.readings()
        self.mono = mono_node(params, self.spec, self.intensities)
        self.keys: dict[str, str] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.ledger_rows = 0
        self.rows: dict[str, list[LedgerRow]] = {}
        self.calibrated: list[tuple[ComponentEnergy, float]] = []
        self.meter = "none"
        self.methods: list[dict[str, str]] = []
        self.idle_cpu_power_w: float | None = None
        self.idle_baseline: IdleBaseline | None = None
        self.slo_ms: dict[str, float] = {}

    def states(self, model: str | None = None) -> list[Any]:
        return self.fleet.node_states(self.keys.get(model) if model is not None else None)

    # -- one task ---------------------------------------------------------------------------------

    def _labels(self, run_id: str, model: str) -> dict[str, Any]:
        return {"run_id": run_id, "model": model, "runtime": self.params.runtime}

    def _count(self, outcome: Outcome) -> TaskResult:
        self.ledger_rows += outcome.recorded
        self.rows.setdefault(outcome.row.run_id, []).append(outcome.row)
        return replace(outcome.result, attempts=outcome.attempts)

    def run_on(self, node: str, model: str, x: Any, task_id: str, run_id: str) -> TaskResult:
        out = self.engine.run(
            x, self.keys[model], task_id=task_id, node=node, **self._labels(run_id, model)
        )
        return self._count(out)

    def run_pipeline(
        self, model: str, x: Any, task_id: str, run_id: str
    ) -> tuple[float, list[TaskResult]]:
        latency_ms, outs = self.engine.run_pipeline(
            self.pipelines[model], x, task_id=task_id, **self._labels(run_id, model)
        )
        return latency_ms, [self._count(o) for o in outs]

    def run_scheduled(
        self,
        scheduler: Scheduler,
        model: str,
        x: Any,
        task_id: str,
        run_id: str,
        overhead: list[float],
        margins: list[float] | None = None,
    ) -> TaskResult:
        """Algorithm 1 per task on live telemetry, through the engine (which re-places a task
        whose node went down and waits up to ``NO_NODE_TIMEOUT_S`` for an eligible node).

        ``margins``: gets the score margin of the engine's own decision
        (``Decision.margin``; NaN when one node was eligible)."""
        try:
            out = self.engine.run(
                x,
                self.keys[model],
                task_id=task_id,
                scheduler=scheduler,
                explain=margins is not None,
                **self._labels(run_id, model),
            )
        except EngineError as exc:
            raise ExperimentError(f"task {task_id!r} ({scheduler!r}): {exc}") from exc
        overhead.append(out.decision_us)
        if margins is not None:
            margin = out.row.decision_margin
            margins.append(math.nan if margin is None else margin)
        return self._count(out)

    def slo_of(self, model: str) -> float:
        """CE-SLO's latency SLO for ``model``, ms: ``params.slo_ms``, else ``slo_factor`` x the
        fastest node's predicted latency (``latency_ms + avg_time_s x 1000``) on the telemetry
        of the model's first CE-SLO run, after its warm-up; then kept for the reproduction."""
        if self.params.slo_ms is not None:
            return self.params.slo_ms
        if model not in self.slo_ms:
            fastest = min(
                (s.latency_ms + s.avg_time_s * 1000.0 for s in self.states(model) if s.avg_time_s),
                default=math.nan,
            )
            if not fastest > 0:
                raise ExperimentError(
                    f"CE-SLO: no average execution time of {model!r} in the telemetry after "
                    "warm-up; set slo_ms (--slo-ms) or warmup_tasks >= 1"
                )
            self.slo_ms[model] = self.params.slo_factor * fastest
        return self.slo_ms[model]

    def warm(self, model: str, x: Any, run_id: str) -> None:
        """Warm-up tasks of ``model`` on every node (and through its pipeline): not measured
        (recorded in the ledger under ``<run>/warmup``: their energy was spent too)."""
        rid = f"{run_id}/warmup"
        for k in range(self.params.warmup_tasks):
            for node in self.spec.names:
                self.run_on(node, model, x, f"{node}-{k}", rid)
            if model in self.pipelines:
                self.run_pipeline(model, x, f"pipeline-{k}", rid)
        self.rows.pop(rid, None)  # in the ledger; in no table

    # -- one run ----------------------------------------------------------------------------------

    def measured(
        self, run_id: str, body: Callable[[], list[TaskResult]]
    ) -> tuple[Accounted, Measurement, list[TaskResult]]:
        windows = self.engine.windows
        windows.begin_window(run_id)
        try:
            results = body()
        except BaseException:
            windows.cancel(run_id)
            raise
        window = windows.end_window(run_id)
        self.methods.append(dict(window.reading.method))
        self.meter = window.reading.info.meter
        acc = account(
            window,
            self.spec,
            self.intensities,
            self.params.attribution,
            idle_cpu_power_w=self.idle_cpu_power_w,
        )
        return acc, window, results

    def run_config(self, model: str, config: str, repeat: int, batches: Batches) -> RunRecord:
        run_id = f"{self.prefix}/{model}/{_slug(config)}/r{repeat}"
        self.warm(model, batches[0], run_id)
        latencies: list[float] = []
        overhead: list[float] = []
        slo = self.slo_of(model) if config == CE_SLO else None
        scheduler: Scheduler | None = None
        if slo is not None:
            scheduler = Scheduler("constrained", slo_ms=slo)
        elif config not in (MONOLITHIC, AMP4EC):
            scheduler = _scheduler_of(config)

        margins: list[float] = []

        def body() -> list[TaskResult]:
            done: list[TaskResult] = []
            for i, x in self.tasks(batches):
                tid = f"{i:04d}"
                if config == MONOLITHIC:
                    res = self.run_on(self.mono, model, x, tid, run_id)
                    latencies.append(res.latency_ms)
                    done.append(res)
                elif config == AMP4EC:
                    lat, stages = self.run_pipeline(model, x, tid, run_id)
                    latencies.append(lat)
                    done.extend(stages)
                else:
                    assert scheduler is not None
                    res = self.run_scheduled(scheduler, model, x, tid, run_id, overhead, margins)
                    latencies.append(res.latency_ms)
                    done.append(res)
            return done

        acc, window, results = self.measured(run_id, body)
        n_tasks = len(latencies)
        reading = acc.attribution.host
        wall_s = window.duration_s
        charged = totals(self.rows.pop(run_id, []))
        return RunRecord(
            model=model,
            config=config,
            repeat=repeat,
            n_tasks=n_tasks,
            latency_ms=math.fsum(latencies) / len(latencies),
            wall_s=wall_s,
            throughput_rps=n_tasks / wall_s,
            **self.charged_fields(charged),
            idle_energy_kwh=acc.attribution.idle.energy_kwh,
            other_energy_kwh=acc.attribution.other.energy_kwh,
            host_energy_kwh=reading.energy_kwh,
            window_energy_kwh=acc.energy_kwh,
            window_carbon_g=acc.carbon_g,
            usage_pct=_usage(results, self.spec.names),
            overhead_us=tuple(overhead),
            energy_method=reading.method_label,
            attribution=self.params.attribution,
            run_id=run_id,
            node_cpu_s=dict(window.node_cpu_s),
            window_s=reading.duration_s,
            slo_ms=slo,
            slo_met_pct=(
                100.0 * sum(1 for x in latencies if x <= slo) / len(latencies)
                if slo is not None
                else None
            ),
            meter_samples=len(reading.samples),
            margins=tuple(margins),
        )

    def run_sweep_point(self, policy: str, w_c: float, model: str, batches: Batches) -> SweepRecord:
        weights = MODES["performance"].with_carbon(w_c)
        scheduler = Scheduler(policy, weights)
        run_id = f"{self.prefix}/sweep/{model}/{policy}/wc{w_c:.3f}"
        self.warm(model, batches[0], run_id)
        static = scheduler.select(Task("static"), self.states(model)).node
        latencies: list[float] = []
        overhead: list[float] = []

        def body() -> list[TaskResult]:
            done = []
            for i, x in self.tasks(batches):
                res = self.run_scheduled(scheduler, model, x, f"{i:04d}", run_id, overhead)
                latencies.append(res.latency_ms)
                done.append(res)
            return done

        acc, window, results = self.measured(run_id, body)
        att = acc.attribution
        charged = totals(self.rows.pop(run_id, []))
        return SweepRecord(
            policy=policy,
            w_c=w_c,
            weights=weights.as_tuple(),
            model=model,
            n_tasks=len(latencies),
            static_node=static,
            usage_pct=_usage(results, self.spec.names),
            latency_ms=math.fsum(latencies) / len(latencies),
            energy_kwh=charged.energy_kwh,
            run_id=run_id,
            node_cpu_s=dict(window.node_cpu_s),
            **self.charged_fields(charged),
            window_energy_kwh=acc.energy_kwh,
            window_carbon_g=acc.carbon_g,
            idle_energy_kwh=att.idle.energy_kwh,
            other_energy_kwh=att.other.energy_kwh,
            host_energy_kwh=att.host.energy_kwh,
            window_s=att.host.duration_s,
            meter_samples=len(att.host.samples),
        )

    def charged_fields(self, charged: Totals) -> dict[str, Any]:
        """A record's energy and carbon fields: the totals of its ledger rows."""
        return {
            "node_energy_kwh": {
                n: charged.by_node.get(n, ComponentEnergy()).energy_kwh for n in self.spec.names
            },
            "cpu_energy_kwh": charged.energy.cpu_energy_kwh,
            "gpu_energy_kwh": charged.energy.gpu_energy_kwh,
            "ram_energy_kwh": charged.energy.ram_energy_kwh,
            "carbon_g": charged.gco2,
        }

    def fix_rate(self) -> PooledRate | None:
        """Charge every later task at the rate pooled over the calibration windows (None, and
        the nodes' power profiles stay the rate, without calibration)."""
        if not self.calibrated:
            return None
        rate = PooledRate.pool(self.calibrated)
        self.engine.rates.snapshot = RateSnapshot.calibrated(
            self.spec.names, rate, self.methods[-1], self.meter, closed_mono_s=time.monotonic()
        )
        return rate

    def tasks(
        self, batches: Batches, n: int | None = None, min_s: float | None = None
    ) -> Iterator[tuple[int, Any]]:
        """(index, batch): at least ``n`` (default: all) tasks, cycling through ``batches``,
        and more until ``min_s`` (default ``min_run_s``) seconds have passed since the first."""
        want = len(batches) if n is None else n
        t0 = time.perf_counter()
        i = 0
        least_s = self.params.min_run_s if min_s is None else min_s
        while i < want or time.perf_counter() - t0 < least_s:
            yield i, batches[i % len(batches)]
            i += 1

    def calibrate(self, model: str, window: int, batches: Batches) -> list[CalibrationRecord]:
        """One calibration window per node: ``calibration_tasks`` (at least) tasks of ``model``
        pinned to the node, nothing else running (energy per inference per node)."""
        # The charge's rate is pooled over these windows: each must hold several meter samples
        # (CodeCarbon samples every measure_power_secs; a shorter window measures nothing).
        least_s = max(self.params.min_run_s, CALIBRATION_SAMPLES * self.params.measure_power_secs)
        out = []
        for node in self.spec.names:
            run_id = f"{self.prefix}/calibration/{model}/{node}/w{window}"

            def body(node: str = node, run_id: str = run_id) -> list[TaskResult]:
                return [
                    self.run_on(node, model, x, f"{i:04d}", run_id)
                    for i, x in self.tasks(batches, self.params.calibration_tasks, least_s)
                ]

            acc, win, results = self.measured(run_id, body)
            n = len(results)
            self.calibrated.append((acc.energy, math.fsum(r.cpu_s for r in results)))
            self.rows.pop(run_id, None)
            out.append(
                CalibrationRecord(
                    node=node,
                    model=model,
                    window=window,
                    n_tasks=n,
                    task_cpu_s=math.fsum(r.cpu_s for r in results),
                    node_cpu_s=win.node_cpu_s.get(node, 0.0),
                    exec_ms=math.fsum(r.exec_ms for r in results) / n,
                    node_energy_kwh=acc.node_energy[node].energy_kwh,
                    host_energy_kwh=acc.attribution.host.energy_kwh,
                    window_s=win.duration_s,
                    meter_samples=len(acc.attribution.host.samples),
                )
            )
        return out


def _slug(config: str) -> str:
    return config.lower().replace(" (norm.)", "-norm").replace(" (ours)", "").replace(" ", "-")


def _scheduler_of(config: str) -> Scheduler:
    for policy in CE_POLICIES:
        for mode in CE_MODES:
            if ce_label(mode, policy) == config:
                return Scheduler(policy, MODES[mode])
    raise ExperimentError(f"unknown configuration {config!r}")


def _usage(results: Sequence[TaskResult], nodes: Sequence[str]) -> dict[str, float]:
    counts = dict.fromkeys(nodes, 0)
    for r in results:
        counts[r.node] = counts.get(r.node, 0) + 1
    total = sum(counts.values())
    return {n: 100.0 * c / total if total else 0.0 for n, c in counts.items()}


def sweep_values(points: int) -> list[float]:
    """wC values of the sweep: ``linspace(0, 1, points)`` (none when points is 0)."""
    return [k / (points - 1) for k in range(points)] if points >= 2 else []


def run_experiment(
    params: ExperimentParams,
    *,
    fleet: FleetBackend | None = None,
    meter_factory: Callable[[], EnergyMeter] | None = None,
    progress: bool = True,
    ledger: Path | None = None,
    address: str | None = None,
) -> ExperimentResult:
    """Run the whole reproduction and return what it measured.

    The reproduction runs on an engine (:func:`carbonedge.engine.open_engine`): ``fleet``, a
    started fleet backend to use (None: one of ``params.fleet_file`` on ``params.backend`` is
    started here, at ``address`` for Ray, and stopped at the end). ``meter_factory``: makes the
    energy meters of the run windows (None: the one ``params.meter`` names). ``ledger``: where
    every task's row is streamed as it finishes (None: the default ledger); run ids there start
    with a reproduction id, ``repro-<digest>-<UTC time>``. ``progress``: a tqdm bar (stderr).
    """
    from tqdm import tqdm

    from carbonedge.data import load_images
    from carbonedge.engine import EngineConfig, EngineSettings, open_engine
    from carbonedge.models import describe_model

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    images = load_images(
        Path(params.images_dir) if params.images_dir else None, params.n_images, params.seed
    )
    batches = [images.tensors[i : i + 1] for i in range(len(images))]
    infos = {m: describe_model(m, seed=params.seed) for m in params.models}
    prefix = f"repro-{params.digest()[:8]}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    settings = EngineSettings(
        fleet_file=Path(params.fleet_file) if params.fleet_file else None,
        backend=params.backend,  # type: ignore[arg-type]
        address=address,
        meter=params.meter,
        measure_power_secs=params.measure_power_secs,
        window_s=0.0,  # rates come from the run windows themselves
        ledger=ledger,
        run_id=f"{prefix}/engine",
        restart=False,
        load_window_s=params.load_window_s,
        engine=EngineConfig(max_wait_s=NO_NODE_TIMEOUT_S, max_attempts=3),
    )
    engine = open_engine(
        settings, fleet=fleet, meter=meter_factory or default_meter_factory(params)
    )
    try:
        ctx = _Ctx(params, engine, prefix)
        plans: dict[str, str] = {}
        for model in params.models:
            ctx.keys[model] = engine.fleet.deploy(
                ModelRef(model, seed=params.seed), ctx.spec.names, params.runtime
            )
            try:
                ctx.pipelines[model], plans[model] = amp4ec_pipeline(engine.fleet, model, params)
            except (CarbonEdgeError, ValueError) as exc:
                raise ExperimentError(f"AMP4EC: cannot partition {model!r}: {exc}") from exc
        # One idle window (fleet idle): the CPU idle baseline of every cputime window (the
        # meter's model floor where it has one: a busy host would inflate a measured one).
        ctx.idle_baseline = engine.windows.idle_baseline(IDLE_WINDOW_S)
        ctx.idle_cpu_power_w = ctx.idle_baseline.power_w
        sweep_model = params.resolved_sweep_model
        if sweep_model not in ctx.keys:
            ctx.keys[sweep_model] = engine.fleet.deploy(
                ModelRef(sweep_model, seed=params.seed), ctx.spec.names, params.runtime
            )
        free_memory_mb = free_memory_of(ctx.states(params.models[0]))
        configs = config_labels()
        wcs = sweep_values(params.sweep_points)
        total = len(params.models) * len(configs) * params.repeats + len(CE_POLICIES) * len(wcs)
        total += len(params.models) * params.calibration_windows
        runs: list[RunRecord] = []
        sweep: list[SweepRecord] = []
        calibration: list[CalibrationRecord] = []
        with tqdm(total=total, desc="reproduce", unit="run", disable=not progress) as bar:
            for model in params.models:
                if params.calibration_windows:
                    ctx.warm(model, batches[0], f"{prefix}/calibration/{model}")
                for k in range(params.calibration_windows):
                    bar.set_postfix_str(f"calibration {model} w{k}")
                    calibration.extend(ctx.calibrate(model, k, batches))
                    bar.update()
            rate = ctx.fix_rate()
            for model in params.models:
                for repeat in range(params.repeats):
                    for config in configs:
                        bar.set_postfix_str(f"{model} {config} r{repeat}")
                        runs.append(ctx.run_config(model, config, repeat, batches))
                        bar.update()
            sweep_batches = [batches[i % len(batches)] for i in range(params.sweep_tasks)]
            for policy in CE_POLICIES:
                for w_c in wcs:
                    bar.set_postfix_str(f"sweep {policy} wC={w_c:.2f}")
                    sweep.append(ctx.run_sweep_point(policy, w_c, sweep_model, sweep_batches))
                    bar.update()
        env = environment(params, ctx, engine.fleet, images, infos, plans)
        assert engine.ledger is not None
        rows = engine.ledger.call(lambda led: led.query(run_prefix=prefix + "/"))
    except FleetError as exc:
        raise ExperimentError(f"the fleet failed during the reproduction: {exc}") from exc
    finally:
        engine.close()
    return ExperimentResult(
        params=params,
        env=env,
        runs=tuple(runs),
        sweep=tuple(sweep),
        ledger_rows=tuple(rows),
        started_at=started.isoformat(),
        wall_s=time.perf_counter() - t0,
        calibration=tuple(calibration),
        free_memory_mb=free_memory_mb,
        rate=rate,
        charge_method=METHOD_CALIBRATED if rate is not None else METHOD_PROFILE,
    )
