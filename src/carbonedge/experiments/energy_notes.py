"""The report's energy figures: the energy rate used, the static energy left out, CPU seconds
per inference per node and the reduction they imply. Every number is computed from the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from carbonedge.accounting.units import joules
from carbonedge.experiments.params import AMP4EC
from carbonedge.experiments.records import ExperimentResult, RunRecord, SweepRecord
from carbonedge.experiments.stats import mean_ci


def rate_text(result: ExperimentResult) -> str:
    """The header's bullet on the rate every task was charged at (Markdown)."""
    rate = result.rate
    if rate is None:
        return (
            f"- **Charge** (`{result.charge_method}`): no calibration window was measured, so "
            "every task was charged its CPU seconds x its node's power profile, "
            "(max_w - idle_w) / cpu_quota per CPU-second: modelled, not measured. A run's "
            "figures are the sums of its ledger rows."
        )
    return (
        f"- **Charge** (`{result.charge_method}`): every task was charged once, as it finished, "
        f"its CPU seconds x one rate pooled over the {rate.windows} calibration windows: "
        f"{rate.kwh_per_s:.3e} kWh per task CPU-second (= {rate.power_w:.2f} W per busy core: "
        f"CPU {joules(rate.cpu_kwh_per_s):.2f}, GPU {joules(rate.gpu_kwh_per_s):.2f}, RAM "
        f"{joules(rate.ram_kwh_per_s):.2f}), i.e. {rate.energy_kwh:.3e} kWh attributed to the "
        f"nodes over {rate.cpu_s:.1f} s of their tasks' CPU time, so the node processes' own "
        "overhead is in the rate. Every figure of a run (Table II, runs.csv, emissions.csv) is "
        "the sum of its ledger rows. One rate, not one per run: every node is a slice of ONE "
        "physical CPU and, without RAPL, the modelled power of a window depends on host-wide "
        "load (CodeCarbon: TDP x (0.1 + 0.9 x load^3)), not on the node; each run's own window "
        'is in "Accounting methods side by side".'
    )


def static_text(result: ExperimentResult) -> str:
    """The static energy (idle CPU floor + constant RAM) measured and left out of the nodes."""
    windows: list[RunRecord | SweepRecord] = [*result.runs, *result.sweep]
    idle = math.fsum(w.idle_energy_kwh for w in windows)
    other = math.fsum(w.other_energy_kwh for w in windows)
    host = math.fsum(w.host_energy_kwh for w in windows)
    if result.params.attribution == "quota":
        return (
            f"- **Static energy**: under `quota` (the paper's) the whole host energy, "
            f"{host:.3e} kWh over {len(windows)} windows, is split among the nodes; nothing is "
            "left out."
        )

    def pct(x: float) -> str:
        return f"{100.0 * x / host:.1f}%" if host > 0 else "-"

    return (
        f"- **Static energy** (CPU idle floor x window + constant RAM power), measured and left "
        f"out of per-inference carbon under `cputime`: {idle:.3e} kWh = {pct(idle)} of the "
        f"{host:.3e} kWh host energy of all {len(windows)} windows (runs and sweep). Active "
        f"energy of other processes on the shared host, also left out: {other:.3e} kWh "
        f"({pct(other)})."
    )


def task_runs(result: ExperimentResult, model: str) -> dict[str, str]:
    """run_id -> configuration of ``model``'s whole-model runs (AMP4EC's stages excluded)."""
    return {r.run_id: r.config for r in result.runs if r.model == model and r.config != AMP4EC}


def cpu_ms_per_inference(result: ExperimentResult, model: str) -> dict[str, float]:
    """Mean CPU time of one whole-model inference per node (ledger rows' ``cpu_s``), ms.

    From every non-AMP4EC run of ``model``; NaN for a node that ran none.
    """
    runs = task_runs(result, model)
    acc: dict[str, list[float]] = {n: [] for n in result.node_names}
    for row in result.ledger_rows:
        if row.run_id in runs:
            acc.setdefault(row.node, []).append(row.cpu_s * 1000.0)
    return {n: (math.fsum(v) / len(v) if v else math.nan) for n, v in acc.items()}


def process_cpu_ratio(result: ExperimentResult, model: str) -> float:
    """Node processes' CPU seconds / their tasks' CPU seconds over ``model``'s runs (>= 1:
    heartbeats, pipe I/O; idle nodes' heartbeats included)."""
    runs = task_runs(result, model)
    task = math.fsum(r.cpu_s for r in result.ledger_rows if r.run_id in runs)
    proc = math.fsum(sum(r.node_cpu_s.values()) for r in result.runs if r.run_id in runs)
    return proc / task if task > 0 else math.nan


def expected_reduction_pct(
    shares_pct: Mapping[str, float],
    cpu_ms: Mapping[str, float],
    intensity: Mapping[str, float],
    mono: str,
) -> float:
    """Reduction vs Monolithic (%) that one energy rate per CPU-second gives from node shares
    (%), task CPU time per inference (ms) and carbon per kWh (``intensity`` = I x PUE,
    gCO2/kWh) alone: ``1 - sum_n s_n c_n I_n / (c_mono I_mono)`` (process overhead ignored)."""
    base = cpu_ms.get(mono, math.nan) * intensity[mono]
    num = math.fsum(
        s / 100.0 * cpu_ms.get(n, math.nan) * intensity[n] for n, s in shares_pct.items() if s > 0
    )
    return (1.0 - num / base) * 100.0 if base > 0 else math.nan


def energy_breakdown(result: ExperimentResult, model: str) -> str:
    """Markdown table: per configuration of ``model``, host / nodes / static energy, CPU time."""
    from carbonedge.experiments.tables import render

    cells = []
    configs: list[str] = []
    for r in result.runs:
        if r.model == model and r.config not in configs:
            configs.append(r.config)
    for c in configs:
        runs = result.runs_of(model, c)

        def m(values: list[float]) -> str:
            return f"{mean_ci(values).mean:.3e}"

        cells.append(
            [
                c,
                m([r.host_energy_kwh for r in runs]),
                m([r.energy_kwh for r in runs]),
                m([r.window_energy_kwh for r in runs]),
                m([r.cpu_energy_kwh for r in runs]),
                m([r.ram_energy_kwh for r in runs]),
                m([r.idle_energy_kwh for r in runs]),
                m([r.other_energy_kwh for r in runs]),
                f"{mean_ci([sum(r.node_cpu_s.values()) for r in runs]).mean:.3f}",
                f"{mean_ci([r.wall_s for r in runs]).mean:.2f}",
            ]
        )
    return render(
        [
            "Configuration",
            "Host (kWh)",
            "Nodes, ledger (kWh)",
            "Nodes, own window (kWh)",
            "Nodes CPU",
            "Nodes RAM",
            "Static (idle CPU + const. RAM)",
            "Other procs",
            "Node CPU (s)",
            "Wall (s)",
        ],
        cells,
        markdown=True,
    )
