"""What a reproduction measures: one record per run, per sweep point, and their summaries.

Units are in the names. A *run* is one configuration of one model for one repeat: ``n_tasks``
closed-loop inferences inside one meter window. Energy figures are the energy attributed to the
fleet's nodes (kWh) by the chosen attribution; carbon is Eq. 2 per node
(``E_node x I_node x PUE_node``) summed over the nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from carbonedge.experiments.params import ExperimentParams
from carbonedge.experiments.stats import MeanCI, mean_ci

if TYPE_CHECKING:
    from carbonedge.experiments.rates import PooledRate


@dataclass(frozen=True)
class RunRecord:
    """One configuration x model x repeat.

    Attributes:
        latency_ms: mean submit-to-result time per task (pipeline: first stage to last).
        wall_s: wall time of the run (first submit to last result), s.
        throughput_rps: ``n_tasks / wall_s``, requests per second.
        node_energy_kwh: energy charged to each node (CPU + GPU + RAM) under ``energy_rate``,
            kWh.
        cpu/gpu/ram_energy_kwh: sums over the nodes per component, kWh.
        idle_energy_kwh: CPU idle baseline of the window (``cputime``; not in any node), kWh.
        other_energy_kwh: active energy of host processes outside the nodes, kWh.
        host_energy_kwh: the meter's whole-host reading for the window, kWh.
        carbon_g: ``sum_nodes E_node x I_node x PUE_node`` (Eq. 2), gCO2.
        usage_pct: % of task executions per node (a pipeline task counts once per stage).
        overhead_us: time of every ``Scheduler.select`` call (perf_counter_ns), microseconds;
            empty for configurations without per-task scheduling.
        node_cpu_s: CPU seconds of each node's process in the window (psutil), s.
        window_s: duration of the meter window, s.
        energy_rate: ``window`` (the window's own attribution) or ``pooled`` (:mod:`.rates`).
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
    energy_rate: str = "window"
    slo_ms: float | None = None
    slo_met_pct: float | None = None
    meter_samples: int = 0
    margins: tuple[float, ...] = field(default=(), repr=False)

    @property
    def energy_kwh(self) -> float:
        """Energy charged to the nodes, kWh."""
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
    Energy fields (kWh) and ``carbon_g`` follow ``energy_rate``, as in :class:`RunRecord`;
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
    energy_rate: str = "window"
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

    ``runs``, ``sweep`` and ``ledger_rows`` are charged at ``energy_rate``; ``other_rate_runs``
    are the same runs under the other rate (``rates.apply_energy_rate``), ``pooled_rate`` the
    pooled rate (None before it is computed).
    """

    params: ExperimentParams
    env: Environment
    runs: tuple[RunRecord, ...]
    sweep: tuple[SweepRecord, ...]
    ledger_rows: tuple[Any, ...] = field(repr=False)
    started_at: str = ""
    wall_s: float = 0.0
    energy_rate: str = "window"
    other_rate_runs: tuple[RunRecord, ...] = field(default=(), repr=False)
    pooled_rate: PooledRate | None = None
    calibration: tuple[CalibrationRecord, ...] = field(default=(), repr=False)
    free_memory_mb: dict[str, float] = field(default_factory=dict)
    """Each node's free memory as the scheduler saw it (the deployed models' footprints taken
    off), for the sensitivity map's resource term."""

    @property
    def other_rate(self) -> str:
        """The rate of ``other_rate_runs``."""
        return "window" if self.energy_rate == "pooled" else "pooled"

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


def summaries(
    result: ExperimentResult, runs: Sequence[RunRecord] | None = None
) -> list[ConfigSummary]:
    """One summary per (model, configuration) present in ``result``, in run order.

    ``runs``: other records of the same runs (e.g. ``result.other_rate_runs``) to summarise
    instead of ``result.runs``.
    """
    from carbonedge.experiments.params import MONOLITHIC

    records = result.runs if runs is None else tuple(runs)
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
