"""Tables II, IV, V and the overhead table, as rows (for CSV/JSON) and as text/Markdown.

Every table puts the paper's published numbers (:mod:`.paper`) in columns whose names start
with ``paper_`` beside ours; none of ours is typed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from carbonedge.experiments import paper
from carbonedge.experiments.params import AMP4EC, CE_SLO, MONOLITHIC, ce_label
from carbonedge.experiments.records import ConfigSummary, ExperimentResult, summaries

Row = dict[str, Any]


def primary_model(result: ExperimentResult) -> str:
    """The model of Tables II and V: MobileNetV2 when it was run (as the paper), else the first."""
    models = result.params.models
    return "mobilenet_v2" if "mobilenet_v2" in models else models[0]


def _ci(row: Row, name: str, value: Any) -> None:
    row[name] = value.mean
    row[f"{name}_ci95"] = value.half_width


def table_ii(result: ExperimentResult, sums: Sequence[ConfigSummary] | None = None) -> list[Row]:
    """Table II: latency, throughput, gCO2/inf, reduction vs Monolithic, for the primary model."""
    model = primary_model(result)
    rows = []
    for s in sums if sums is not None else summaries(result):
        if s.model != model:
            continue
        row: Row = {"model": model, "configuration": s.config}
        _ci(row, "latency_ms", s.latency_ms)
        _ci(row, "throughput_rps", s.throughput_rps)
        _ci(row, "gco2_per_inf", s.gco2_per_inf)
        _ci(row, "reduction_pct", s.reduction_pct)
        _ci(row, "inf_per_g", s.inf_per_g)
        _ci(row, "energy_kwh_per_inf", s.energy_kwh_per_inf)
        p = paper.TABLE_II.get(s.config) if model == "mobilenet_v2" else None
        row["paper_latency_ms"] = p.latency_ms if p else None
        row["paper_throughput_rps"] = p.throughput_rps if p else None
        row["paper_gco2_per_inf"] = p.gco2_per_inf if p else None
        row["paper_reduction_pct"] = p.reduction_pct if p else None
        runs = result.runs_of(model, s.config)
        slos = [r.slo_ms for r in runs if r.slo_ms is not None]
        met = [r.slo_met_pct for r in runs if r.slo_met_pct is not None]
        row["slo_ms"] = sum(slos) / len(slos) if slos else None
        row["slo_met_pct"] = sum(met) / len(met) if met else None
        rows.append(row)
    return rows


def slo_note(rows_ii: Sequence[Row]) -> str:
    """One sentence on CE-SLO's SLO and how many tasks met it (empty if it did not run)."""
    row = next((r for r in rows_ii if r.get("slo_ms") is not None), None)
    if row is None:
        return ""
    return (
        f"{row['configuration']}: least predicted carbon among the nodes whose predicted "
        f"latency meets the SLO of {row['slo_ms']:.1f} ms; {row['slo_met_pct']:.0f}% of its "
        f"tasks met the SLO in measured latency."
    )


def table_iv(result: ExperimentResult, sums: Sequence[ConfigSummary] | None = None) -> list[Row]:
    """Table IV: per model, Monolithic vs CE-Green (and CE-Green (norm.), ours)."""
    wanted = (MONOLITHIC, ce_label("green", "paper"), ce_label("green", "normalized"), CE_SLO)
    rows = []
    for s in sums if sums is not None else summaries(result):
        if s.config not in wanted:
            continue
        row: Row = {"model": s.model, "mode": s.config}
        _ci(row, "latency_ms", s.latency_ms)
        _ci(row, "gco2_per_inf", s.gco2_per_inf)
        _ci(row, "reduction_pct", s.reduction_pct)
        p = paper.TABLE_IV.get(s.model)
        if p is not None and s.config == MONOLITHIC:
            row.update(paper_latency_ms=p.mono_latency_ms, paper_gco2_per_inf=p.mono_gco2_per_inf)
            row["paper_reduction_pct"] = None
        elif p is not None and s.config == ce_label("green", "paper"):
            row.update(
                paper_latency_ms=p.green_latency_ms,
                paper_gco2_per_inf=p.green_gco2_per_inf,
                paper_reduction_pct=p.reduction_pct,
            )
        else:
            row.update(paper_latency_ms=None, paper_gco2_per_inf=None, paper_reduction_pct=None)
        rows.append(row)
    return rows


def table_v(
    result: ExperimentResult, sums: Sequence[ConfigSummary] | None = None, model: str | None = None
) -> list[Row]:
    """Table V: % of tasks per node for every configuration (all models unless ``model``).

    The paper's percentages are given for its Node-High/Medium/Green; they are matched to our
    nodes by position in the fleet (the default fleet has the same three nodes in that order).
    """
    nodes = result.node_names
    rows = []
    for s in sums if sums is not None else summaries(result):
        if model is not None and s.model != model:
            continue
        row: Row = {"model": s.model, "mode": s.config}
        for n in nodes:
            row[f"{n}_pct"] = s.usage_pct.get(n, 0.0)
        p = paper.TABLE_V.get(s.config) if len(nodes) == len(paper.TABLE_V_NODES) else None
        for i, n in enumerate(nodes):
            row[f"paper_{n}_pct"] = p[i] if p else None
        rows.append(row)
    return rows


def overhead_table(
    result: ExperimentResult, sums: Sequence[ConfigSummary] | None = None
) -> list[Row]:
    """Scheduling overhead per decision (Scheduler.select, perf_counter_ns), microseconds."""
    rows = []
    for s in sums if sums is not None else summaries(result):
        if s.decisions == 0:
            continue
        rows.append(
            {
                "model": s.model,
                "configuration": s.config,
                "decisions": s.decisions,
                "mean_us": s.overhead_us_mean,
                "p99_us": s.overhead_us_p99,
                "paper_mean_us": paper.OVERHEAD_MS_PER_DECISION * 1000.0,
            }
        )
    return rows


def all_decisions_us(result: ExperimentResult) -> list[float]:
    """Every measured decision time of the CarbonEdge runs, microseconds."""
    return [x for r in result.runs for x in r.overhead_us]


# -- rendering ------------------------------------------------------------------------------


def fmt(value: Any, kind: str = "f2") -> str:
    """Format a cell: None/NaN -> ``-``; ``kind`` is ``f<digits>``, ``e<digits>`` or ``pct``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "pct":
        return f"{value:+.1f}%"
    return format(float(value), f".{kind[1:]}{kind[0]}")


def with_ci(row: Row, name: str, kind: str) -> str:
    """``mean ± ci`` of a row's ``name`` (just the mean when there is no CI)."""
    mean, ci = row.get(name), row.get(f"{name}_ci95")
    text = fmt(mean, kind)
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)) and text != "-":
        body = fmt(ci, kind).lstrip("+").rstrip("%")
        text += f" ± {body}" + ("%" if kind == "pct" else "")
    return text


def render(headers: Sequence[str], cells: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """A plain fixed-width table, or a Markdown table with ``markdown=True``."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def render_ii(rows: Sequence[Row], markdown: bool = False) -> str:
    headers = [
        "Configuration",
        "Latency (ms)",
        "Throughput (req/s)",
        "Carbon (gCO2/inf)",
        "Reduction vs Mono",
        "inf/gCO2",
        "paper: Latency",
        "paper: Thr.",
        "paper: gCO2/inf",
        "paper: Red.",
    ]
    cells = [
        [
            r["configuration"],
            with_ci(r, "latency_ms", "f2"),
            with_ci(r, "throughput_rps", "f2"),
            with_ci(r, "gco2_per_inf", "e3"),
            with_ci(r, "reduction_pct", "pct") if r["configuration"] != MONOLITHIC else "-",
            with_ci(r, "inf_per_g", "f0"),
            fmt(r["paper_latency_ms"]),
            fmt(r["paper_throughput_rps"]),
            fmt(r["paper_gco2_per_inf"], "f5"),
            fmt(r["paper_reduction_pct"], "pct"),
        ]
        for r in rows
    ]
    return render(headers, cells, markdown)


def render_iv(rows: Sequence[Row], markdown: bool = False) -> str:
    headers = [
        "Model",
        "Mode",
        "Latency (ms)",
        "Carbon (gCO2/inf)",
        "Reduction",
        "paper: Latency",
        "paper: gCO2/inf",
        "paper: Red.",
    ]
    cells = [
        [
            r["model"],
            r["mode"],
            with_ci(r, "latency_ms", "f2"),
            with_ci(r, "gco2_per_inf", "e3"),
            with_ci(r, "reduction_pct", "pct") if r["mode"] != MONOLITHIC else "-",
            fmt(r["paper_latency_ms"]),
            fmt(r["paper_gco2_per_inf"], "f5"),
            fmt(r["paper_reduction_pct"], "pct"),
        ]
        for r in rows
    ]
    return render(headers, cells, markdown)


def render_v(rows: Sequence[Row], nodes: Sequence[str], markdown: bool = False) -> str:
    headers = ["Model", "Mode", *(f"{n} %" for n in nodes), "paper (High/Med/Green) %"]
    cells = []
    for r in rows:
        paper_cells = [r.get(f"paper_{n}_pct") for n in nodes]
        ptxt = (
            "/".join(f"{p:.0f}" for p in paper_cells)
            if all(p is not None for p in paper_cells)
            else "-"
        )
        cells.append([r["model"], r["mode"], *(f"{r[f'{n}_pct']:.1f}" for n in nodes), ptxt])
    return render(headers, cells, markdown)


def render_overhead(rows: Sequence[Row], markdown: bool = False) -> str:
    headers = ["Model", "Configuration", "Decisions", "Mean (us)", "p99 (us)", "paper (us)"]
    cells = [
        [
            r["model"],
            r["configuration"],
            str(r["decisions"]),
            fmt(r["mean_us"], "f2"),
            fmt(r["p99_us"], "f2"),
            fmt(r["paper_mean_us"], "f0"),
        ]
        for r in rows
    ]
    return render(headers, cells, markdown)


def sweep_rows(result: ExperimentResult) -> list[Row]:
    """The weight sweep (Fig. 3) as rows."""
    nodes = result.node_names
    rows = []
    for p in result.sweep:
        row: Row = {
            "policy": p.policy,
            "w_c": p.w_c,
            "w_r": p.weights[0],
            "w_l": p.weights[1],
            "w_p": p.weights[2],
            "w_b": p.weights[3],
            "model": p.model,
            "n_tasks": p.n_tasks,
            "static_node": p.static_node,
            "main_node": p.main_node,
            "latency_ms": p.latency_ms,
            "gco2_per_inf": p.gco2_per_inf,
            "energy_kwh": p.energy_kwh,
        }
        for n in nodes:
            row[f"{n}_pct"] = p.usage_pct.get(n, 0.0)
        rows.append(row)
    return rows


def render_sweep(rows: Sequence[Row], nodes: Sequence[str], markdown: bool = False) -> str:
    headers = [
        "Policy",
        "wC",
        "Static pick",
        *(f"{n} %" for n in nodes),
        "Latency (ms)",
        "gCO2/inf",
    ]
    cells = [
        [
            r["policy"],
            f"{r['w_c']:.2f}",
            r["static_node"] or "none",
            *(f"{r[f'{n}_pct']:.0f}" for n in nodes),
            fmt(r["latency_ms"]),
            fmt(r["gco2_per_inf"], "e3"),
        ]
        for r in rows
    ]
    return render(headers, cells, markdown)


def by_config(rows: Sequence[Row], key: str = "configuration") -> Mapping[str, Row]:
    return {r[key]: r for r in rows}


__all__ = [
    "AMP4EC",
    "all_decisions_us",
    "by_config",
    "fmt",
    "overhead_table",
    "primary_model",
    "render",
    "render_ii",
    "render_iv",
    "render_overhead",
    "render_sweep",
    "render_v",
    "slo_note",
    "sweep_rows",
    "table_ii",
    "table_iv",
    "table_v",
]
