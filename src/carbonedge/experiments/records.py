"""What a reproduction measures: one record per run, per sweep point, and their summaries.

Units are in the names. A *run* is one configuration of one model for one repeat: ``n_tasks``
closed-loop inferences inside one meter window. A run's energy (kWh) and carbon (gCO2) are the
sums of its ledger rows (:func:`carbonedge.accounting.totals`): every task charged once, as it
finished. The window's own attribution is kept beside them (``window_*``) for the sensitivity
table; host, static and other processes' energy are the window's measurement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from carbonedge.experiments.params import ExperimentParams
from carbonedge.experiments.stats import MeanCI, mean_ci

if TYPE_CHECKING:
    from carbonedge.accounting import PooledRate


@dataclass(frozen=True)
class RunRecord:
    """One configuration x model x repeat.

    Attributes:
        latency_ms: mean submit-to-result time per task (pipeline: first stage to last).
        wall_s: wall time of the run (first submit to last result), s.
        throughput_rps: ``n_tasks / wall_s``, requests per second.
        node_energy_kwh: energy of each node's ledger rows (CPU + GPU + RAM), kWh.
        cpu/gpu/ram_energy_kwh: sums of the run's ledger rows per component, kWh.
        idle_energy_kwh: CPU idle baseline of the window (``cputime``; not in any node), kWh.
        other_energy_kwh: active energy of host processes outside the nodes, kWh.
        host_energy_kwh: the meter's whole-host reading for the window, kWh.
        carbon_g: the sum of the run's ledger rows' gCO2 (Eq. 2 per task), gCO2.
        usage_pct: % of task executions per node (a pipeline task counts once per stage).
        overhead_us: time of every ``Scheduler.select`` call (perf_counter_ns), microseconds;
            empty for configurations without per-task scheduling.
        node_cpu_s: CPU seconds of each node's process in the window (psutil), s.
        window_s: duration of the meter window, s.
        window_energy_kwh: energy the window's own attribution gave the nodes, kWh.
        window_carbon_g: Eq. 2 per node on that energy, summed, gCO2.
        slo_ms: CE-SLO's latency SLO of the run, ms (None for the other configurations).
        slo_met_pct: % of the run's tasks whose measured latency met ``slo_ms``.
        meter_samples: power samples the meter took in the window.
        margins: per scheduled task, the chosen node's score minus the runner-up's, in the
            policy's own score units, recomputed from the telemetry snapshot just before the
            engine decided (``Decision.explain()``); NaN when one node was eligible.
    """

    model: str
    config: str
    repeat: int
    n_tasks: int
    latency_ms: float
    wall_s: float
    throughput_rps: float
    node_energy_kwh: Mapping[str, float]
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    idle_energy_kwh: float
    other_energy_kwh: float
    host_energy_kwh: float
    carbon_g: float
    usage_pct: Mapping[str, float]
    overhead_us: tuple[float, ...] = field(default=(), repr=False)
    energy_method: str = ""
    attribution: str = ""
    run_id: str = ""
    node_cpu_s: Mapping[str, float] = field(default_factory=dict)
    window_s: float = 0.0
    window_energy_kwh: float = math.nan
    window_carbon_g: float = math.nan
    slo_ms: float | None = None
    slo_met_pct: float | None = None
    meter_samples: int = 0
    margins: tuple[float, ...] = field(default=(), repr=False)

    @property
    def energy_kwh(self) -> float:
        """Energy of the run's ledger rows, kWh."""
        return self.cpu_energy_kwh + self.gpu_energy_kwh + self.ram_energy_kwh

    @property
    def gco2_per_inf(self) -> float:
        """gCO2 per inference."""
        return self.carbon_g / self.n_tasks

    @property
    def inf_per_g(self) -> float:
        """Inferences per gCO2 (Fig. 2's x axis); inf when no carbon was attributed."""
        return self.n_tasks / self.carbon_g if self.carbon_g > 0 else math.inf

    @property
    def energy_kwh_per_inf(self) -> float:
        return self.energy_kwh / self.n_tasks

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["overhead_us"] = list(self.overhead_us)
        data["margins"] = list(self.margins)
        data.update(
            energy_kwh=self.energy_kwh,
            gco2_per_inf=self.gco2_per_inf,
            inf_per_g=None if math.isinf(self.inf_per_g) else self.inf_per_g,
        )
        return data


@dataclass(frozen=True)
class SweepRecord:
    """One wC point of the weight sweep (Fig. 3): real tasks with weights ``w``.

    ``weights`` are (wR, wL, wP, wB, wC) = Performance's with wC set and the other four scaled to
    sum to ``1 - wC`` (``Weights.with_carbon``). ``static_node`` is the node ``sweep_wc`` picks
    on the warmed-up telemetry before the tasks; ``usage_pct`` where the tasks actually went.
    Energy fields (kWh) and ``carbon_g`` are the sums of its ledger rows, as in :class:`RunRecord`;
    ``idle_energy_kwh``, ``other_energy_kwh`` and ``host_energy_kwh`` are the window's static
    energy, other processes' active energy and whole-host energy.
    """

    policy: str
    w_c: float
    weights: tuple[float, float, float, float, float]
    model: str
    n_tasks: int
    static_node: str | None
    usage_pct: Mapping[str, float]
    latency_ms: float
    carbon_g: float
    energy_kwh: float
    run_id: str = ""
    node_energy_kwh: Mapping[str, float] = field(default_factory=dict)
    node_cpu_s: Mapping[str, float] = field(default_factory=dict)
    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    idle_energy_kwh: float = 0.0
    other_energy_kwh: float = 0.0
    host_energy_kwh: float = 0.0
    window_s: float = 0.0
    window_energy_kwh: float = math.nan
    window_carbon_g: float = math.nan
    meter_samples: int = 0

    @property
    def gco2_per_inf(self) -> float:
        return self.carbon_g / self.n_tasks

    @property
    def main_node(self) -> str:
        """The node that ran most of the point's tasks."""
        return max(self.usage_pct, key=lambda n: self.usage_pct[n])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["weights"] = list(self.weights)
        data.update(gco2_per_inf=self.gco2_per_inf, main_node=self.main_node)
        return data


@dataclass(frozen=True)
class CalibrationRecord:
    """One calibration window: ``n_tasks`` tasks of ``model`` pinned to ``node``, nothing else.

    Attributes:
        task_cpu_s: sum of the tasks' own CPU seconds (``time.process_time`` in the node), s.
        node_cpu_s: CPU seconds of the node's process in the window (psutil), s.
        exec_ms: mean execution time per task on the node (throttling included), ms.
        node_energy_kwh: energy the window's own attribution (``cputime``) gave the node, kWh.
        host_energy_kwh: the meter's whole-host energy in the window, kWh.
        window_s: duration of the window, s; meter_samples: power samples in it.
    """

    node: str
    model: str
    window: int
    n_tasks: int
    task_cpu_s: float
    node_cpu_s: float
    exec_ms: float
    node_energy_kwh: float
    host_energy_kwh: float
    window_s: float
    meter_samples: int

    @property
    def cpu_ms_per_inf(self) -> float:
        """Task CPU time per inference, ms."""
        return 1000.0 * self.task_cpu_s / self.n_tasks

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_ms_per_inf": self.cpu_ms_per_inf}


@dataclass(frozen=True)
class Environment:
    """How the numbers were obtained: shown in report.md's header and in result.json."""

    energy_method: str
    energy_method_text: str
    meter: str
    attribution: str
    enforcement: str
    runtime: str
    weights: str
    images: str
    machine: str
    fleet: str
    nodes: tuple[tuple[str, float, int, float, float], ...]
    mono_node: str
    amp4ec_plan: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [
            {
                "name": n,
                "cpu_quota": q,
                "memory_mb": m,
                "intensity_g_per_kwh": i,
                "pue": p,
            }
            for n, q, m, i, p in self.nodes
        ]
        return data


@dataclass(frozen=True)
class ExperimentResult:
    """Everything one reproduction measured; ``write_outputs`` turns it into files.

    ``ledger_rows`` are every task the reproduction ran; ``runs`` and ``sweep`` sum theirs.
    ``rate``: the rate the tasks were charged at, pooled over the calibration windows (None
    without calibration: the nodes' power profiles); ``charge_method`` names it.
    """

    params: ExperimentParams
    env: Environment
    runs: tuple[RunRecord, ...]
    sweep: tuple[SweepRecord, ...]
    ledger_rows: tuple[Any, ...] = field(repr=False)
    started_at: str = ""
    wall_s: float = 0.0
    rate: PooledRate | None = None
    charge_method: str = ""
    calibration: tuple[CalibrationRecord, ...] = field(default=(), repr=False)
    free_memory_mb: dict[str, float] = field(default_factory=dict)
    """Each node's free memory as the scheduler saw it (the deployed models' footprints taken
    off), for the sensitivity map's resource term."""

    def runs_of(self, model: str, config: str) -> list[RunRecord]:
        return [r for r in self.runs if r.model == model and r.config == config]

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n[0] for n in self.env.nodes)


@dataclass(frozen=True)
class ConfigSummary:
    """Mean and 95% CI over repeats of one configuration of one model.

    ``reduction_pct``: ``(1 - gCO2_config / gCO2_mono) x 100`` per repeat (paired by repeat
    index), then averaged; positive means less carbon than Monolithic.
    """

    model: str
    config: str
    latency_ms: MeanCI
    throughput_rps: MeanCI
    gco2_per_inf: MeanCI
    inf_per_g: MeanCI
    energy_kwh_per_inf: MeanCI
    reduction_pct: MeanCI
    usage_pct: Mapping[str, float]
    overhead_us_mean: float
    overhead_us_p99: float
    decisions: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "config": self.config}
        for name in (
            "latency_ms",
            "throughput_rps",
            "gco2_per_inf",
            "inf_per_g",
            "energy_kwh_per_inf",
            "reduction_pct",
        ):
            out[name] = getattr(self, name).to_dict()
        out["usage_pct"] = dict(self.usage_pct)
        out["overhead_us_mean"] = (
            None if math.isnan(self.overhead_us_mean) else self.overhead_us_mean
        )
        out["overhead_us_p99"] = None if math.isnan(self.overhead_us_p99) else self.overhead_us_p99
        out["decisions"] = self.decisions
        return out


def summarize(
    runs: Sequence[RunRecord], mono: Sequence[RunRecord], nodes: Sequence[str]
) -> ConfigSummary:
    """Summary of the repeats ``runs`` of one configuration; ``mono`` are the same model's
    Monolithic repeats (for the paired reduction)."""
    from carbonedge.experiments.stats import percentile

    if not runs:
        raise ValueError("summarize() needs at least one run")
    mono_by_repeat = {r.repeat: r.gco2_per_inf for r in mono}
    reductions = [
        (1.0 - r.gco2_per_inf / mono_by_repeat[r.repeat]) * 100.0
        for r in runs
        if mono_by_repeat.get(r.repeat, 0.0) > 0
    ]
    total_tasks = sum(sum(r.usage_pct.values()) for r in runs)
    usage = {
        n: (sum(r.usage_pct.get(n, 0.0) for r in runs) / len(runs)) if total_tasks else 0.0
        for n in nodes
    }
    overhead = [x for r in runs for x in r.overhead_us]
    return ConfigSummary(
        model=runs[0].model,
        config=runs[0].config,
        latency_ms=mean_ci([r.latency_ms for r in runs]),
        throughput_rps=mean_ci([r.throughput_rps for r in runs]),
        gco2_per_inf=mean_ci([r.gco2_per_inf for r in runs]),
        inf_per_g=mean_ci([r.inf_per_g for r in runs if not math.isinf(r.inf_per_g)]),
        energy_kwh_per_inf=mean_ci([r.energy_kwh_per_inf for r in runs]),
        reduction_pct=mean_ci(reductions),
        usage_pct=usage,
        overhead_us_mean=math.fsum(overhead) / len(overhead) if overhead else math.nan,
        overhead_us_p99=percentile(overhead, 99.0) if overhead else math.nan,
        decisions=len(overhead),
    )


def summaries(result: ExperimentResult) -> list[ConfigSummary]:
    """One summary per (model, configuration) present in ``result``, in run order."""
    from carbonedge.experiments.params import MONOLITHIC

    records = result.runs
    out = []
    seen: list[tuple[str, str]] = []
    for r in records:
        if (r.model, r.config) not in seen:
            seen.append((r.model, r.config))

    def of(model: str, config: str) -> list[RunRecord]:
        return [r for r in records if r.model == model and r.config == config]

    for model, config in seen:
        out.append(summarize(of(model, config), of(model, MONOLITHIC), result.node_names))
    return out
