"""The report's calibration section: energy per inference per node x model measured in its own
right (tasks pinned to one node per window), how the run windows sampled, the decisions'
score margins, and Fig. ``fig_node_energy.png``. Every number is computed from the result.
"""

from __future__ import annotations

import math
from pathlib import Path

from carbonedge.accounting.units import MJ_PER_KWH
from carbonedge.experiments.energy_notes import cpu_ms_per_inference
from carbonedge.experiments.records import ExperimentResult, RunRecord, SweepRecord
from carbonedge.experiments.stats import mean_ci, percentile
from carbonedge.experiments.verdict import calibrated_cpu_ms, calibrated_energy


def calibration_table(result: ExperimentResult) -> str:
    """Markdown: per model x node, CPU and energy per inference with CIs over windows."""
    from carbonedge.experiments.tables import render

    energy = calibrated_energy(result)
    cpu = calibrated_cpu_ms(result)
    cpk = {n[0]: n[3] * n[4] for n in result.env.nodes}
    cells = []
    for model in result.params.models:
        in_runs = cpu_ms_per_inference(result, model)
        for node in result.node_names:
            recs = [c for c in result.calibration if c.model == model and c.node == node]
            if not recs:
                continue
            e, c = energy[(model, node)], cpu[(model, node)]
            proc = math.fsum(r.node_cpu_s for r in recs) / math.fsum(r.task_cpu_s for r in recs)
            cells.append(
                [
                    model,
                    node,
                    str(len(recs)),
                    c.format(2),
                    f"{in_runs.get(node, math.nan):.2f}",
                    f"{proc:.2f}",
                    f"{mean_ci([r.exec_ms for r in recs]).mean:.1f}",
                    f"{e.mean * MJ_PER_KWH:.2f} ± {e.half_width * MJ_PER_KWH:.2f}"
                    if e.n > 1
                    else f"{e.mean * MJ_PER_KWH:.2f}",
                    f"{e.mean * cpk[node]:.3e}",
                    f"{100 * e.relative:.1f}%" if e.n > 1 else "-",
                    f"{min(r.meter_samples for r in recs)}",
                    f"{mean_ci([r.window_s for r in recs]).mean:.1f}",
                ]
            )
    if not cells:
        return "No calibration windows were run (`calibration_windows = 0`)."
    return render(
        [
            "Model",
            "Node",
            "Windows",
            "Task CPU ms/inf",
            "… in the config runs",
            "Process/task CPU",
            "Exec ms",
            f"Energy mJ/inf ({result.charge_method})",
            "gCO2/inf at node's I",
            "CI/mean",
            "Min samples",
            "Window s",
        ],
        cells,
        markdown=True,
    )


def windows_text(result: ExperimentResult) -> str:
    """How long the run windows lasted and how many meter samples they held."""
    ws: list[RunRecord | SweepRecord] = [*result.runs, *result.sweep]
    if not ws:
        return ""
    dur = sorted(w.window_s for w in ws)
    smp = sorted(w.meter_samples for w in ws)
    return (
        f"- **Run windows**: {len(ws)} windows (runs and sweep points) of {dur[0]:.2f}–"
        f"{dur[-1]:.2f} s (median {percentile(dur, 50):.2f} s; minimum run time "
        f"{result.params.min_run_s:g} s) holding {smp[0]}–{smp[-1]} meter samples "
        f"(median {percentile(smp, 50):.0f}) at measure_power_secs="
        f"{result.params.measure_power_secs:g}."
        + (
            " This is a smoke test (`--quick`): windows this short hold one or two samples, "
            "so its numbers are not measurements to quote."
            if result.params.min_run_s == 0
            else ""
        )
    )


def margin_table(result: ExperimentResult, model: str) -> str:
    """Markdown: per scheduled configuration, the distribution of decision score margins."""
    from carbonedge.experiments.tables import render

    cells = []
    configs: list[str] = []
    for r in result.runs:
        if r.model == model and r.margins and r.config not in configs:
            configs.append(r.config)
    for config in configs:
        xs = sorted(
            x for r in result.runs_of(model, config) for x in r.margins if not math.isnan(x)
        )
        if not xs:
            continue
        cells.append(
            [
                config,
                str(len(xs)),
                f"{xs[0]:.4g}",
                f"{percentile(xs, 10):.4g}",
                f"{percentile(xs, 50):.4g}",
                f"{percentile(xs, 90):.4g}",
                f"{100 * sum(1 for x in xs if x < 0.01) / len(xs):.0f}%",
            ]
        )
    if not cells:
        return "No scheduled decisions."
    return render(
        ["Configuration", "Decisions", "Min", "p10", "Median", "p90", "Margin < 0.01"],
        cells,
        markdown=True,
    )


def fig_node_energy(result: ExperimentResult, path: Path) -> None:
    """Energy (mJ) and gCO2 per inference per node x model from the calibration, with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energy = calibrated_energy(result)
    cpk = {n[0]: n[3] * n[4] for n in result.env.nodes}
    models = [m for m in result.params.models if any(k[0] == m for k in energy)]
    nodes = result.node_names
    fig, (ax, axc) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(nodes))
    for j, node in enumerate(nodes):
        xs = [i + j * width for i in range(len(models))]
        es = [energy.get((m, node)) for m in models]
        e_mean = [e.mean * MJ_PER_KWH if e else 0.0 for e in es]
        e_err = [
            e.half_width * MJ_PER_KWH if e and e.n > 1 and not math.isnan(e.half_width) else 0.0
            for e in es
        ]
        label = f"{node} ({cpk[node]:.0f} g/kWh)"
        ax.bar(xs, e_mean, width, yerr=e_err, capsize=3, label=label, color=f"C{j}")
        axc.bar(
            xs,
            [x / MJ_PER_KWH * cpk[node] for x in e_mean],
            width,
            yerr=[x / MJ_PER_KWH * cpk[node] for x in e_err],
            capsize=3,
            label=label,
            color=f"C{j}",
        )
    for a in (ax, axc):
        a.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models, fontsize=8)
        a.grid(alpha=0.3, axis="y")
        a.legend(fontsize=8)
    ax.set_ylabel(f"energy per inference (mJ, {result.charge_method})")
    ax.set_title("calibration: tasks pinned to one node (95% CI over windows)")
    axc.set_ylabel("gCO2 per inference (energy x node intensity)")
    axc.set_title("what each node costs per inference")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
