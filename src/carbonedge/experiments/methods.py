"""The sensitivity table: the same runs under four accounting methods, side by side.

The headline is ``ledger``: every figure of a run is the sum of its ledger rows, each task
charged once as it finished (:mod:`carbonedge.accounting.charge`) at the rate pooled over the
calibration windows. The other three recompute the same runs from their meter windows and
Eq. 2 per node, ``C = E_node x I_node x PUE_node``, and differ in ``E_node``:

- ``window``: the energy the run's own meter window attributed to each node (the chosen
  attribution). Without RAPL the modelled power depends on host-wide load, so a run on a
  small-quota node looks cheaper per CPU-second, and sub-second windows are noisy.
- ``quota`` (the paper's IV.A.1): host energy, static energy included, pooled over every
  window (``rate = sum E_host / sum window_s``, kWh/s) and split by CPU-quota share:
  ``E_node = rate x window_s x q_node / sum_q``. Every configuration gets the same
  quota-weighted intensity, so carbon follows the run's duration only.
- ``device-profile``: each node's own power profile (fleet spec, ``idle_w + (max_w - idle_w)
  x u``) at its utilisation in the window, ``u = cpu_s_node / (q_node x window_s)``:
  ``E_node = P_node(u) x window_s`` — what a fleet of real devices of those profiles would
  draw (idle power of every node included; no host meter involved).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from carbonedge.accounting.units import kwh_of_power
from carbonedge.errors import CarbonEdgeError
from carbonedge.experiments.params import MONOLITHIC
from carbonedge.experiments.records import ExperimentResult, RunRecord, SweepRecord
from carbonedge.experiments.stats import MeanCI, mean_ci
from carbonedge.fleet.spec import FleetSpec, load_fleet

__all__ = [
    "ACCOUNTING_METHODS",
    "MethodFigures",
    "by_method",
    "describe",
    "g_per_inf",
    "methods_table",
]

#: Names in the order the report shows them.
ACCOUNTING_METHODS = ("ledger", "window", "quota", "device-profile")


@dataclass(frozen=True)
class MethodFigures:
    """One configuration under one accounting method: gCO2 per inference (mean, CI over
    repeats) and the reduction vs Monolithic (%, paired by repeat)."""

    method: str
    g_per_inf: MeanCI
    reduction_pct: MeanCI


def _quota_rate(result: ExperimentResult) -> float:
    """Host energy per second of window, kWh/s, pooled over every run and sweep window."""
    windows: Sequence[RunRecord | SweepRecord] = (*result.runs, *result.sweep)
    energy = math.fsum(w.host_energy_kwh for w in windows)
    seconds = math.fsum(w.window_s for w in windows)
    return energy / seconds if seconds > 0 else math.nan


def g_per_inf(
    result: ExperimentResult, run: RunRecord, method: str, spec: FleetSpec, quota_rate: float
) -> float:
    """gCO2 per inference of ``run`` under ``method`` (see the module docstring)."""
    nodes = {n[0]: n for n in result.env.nodes}  # (name, quota, memory_mb, I, PUE)
    if run.n_tasks <= 0:
        return math.nan
    if method == "ledger":
        return run.carbon_g / run.n_tasks
    if method == "window":
        return run.window_carbon_g / run.n_tasks
    if method == "quota":
        total_q = math.fsum(n[1] for n in nodes.values())
        g = math.fsum(
            quota_rate * run.window_s * q / total_q * i * pue for _, q, _, i, pue in nodes.values()
        )
        return g / run.n_tasks
    if method == "device-profile":
        profiles = {n.name: n.power for n in spec.nodes}
        g = 0.0
        for name, q, _, i, pue in nodes.values():
            power = profiles.get(name)
            if power is None or run.window_s <= 0:
                return math.nan
            u = run.node_cpu_s.get(name, 0.0) / (q * run.window_s)
            g += kwh_of_power(power.power_w(u), run.window_s) * i * pue
        return g / run.n_tasks
    raise ValueError(f"unknown accounting method {method!r}; one of {ACCOUNTING_METHODS}")


def by_method(
    result: ExperimentResult, model: str, config: str, spec: FleetSpec | None = None
) -> dict[str, MethodFigures]:
    """``config`` of ``model`` under every method in :data:`ACCOUNTING_METHODS`. ``spec``: the
    fleet whose power profiles ``device-profile`` uses (None: ``params.fleet_file``)."""
    spec = spec or load_fleet(result.params.fleet_file)
    rate = _quota_rate(result)
    # Runs are matched by repeat.
    runs = {r.repeat: r for r in result.runs_of(model, config)}
    mono = {r.repeat: r for r in result.runs_of(model, MONOLITHIC)}
    out: dict[str, MethodFigures] = {}
    for method in ACCOUNTING_METHODS:
        gs = {k: g_per_inf(result, r, method, spec, rate) for k, r in runs.items()}
        ms = {k: g_per_inf(result, r, method, spec, rate) for k, r in mono.items()}
        reds = [(1.0 - gs[k] / ms[k]) * 100.0 for k in gs if k in ms and ms[k] > 0]
        out[method] = MethodFigures(method, mean_ci(list(gs.values())), mean_ci(reds))
    return out


def describe(figures: Mapping[str, MethodFigures]) -> str:
    """``ledger (headline) +x% ± y; window ...; quota (paper) ...; device-profile ...``."""
    label = {"ledger": "ledger (headline)", "quota": "quota (paper)"}
    parts = []
    for m, f in figures.items():
        r = f.reduction_pct
        if math.isnan(r.mean):
            parts.append(f"{label.get(m, m)} n/a")
            continue
        ci = f" ± {r.half_width:.1f}" if not math.isnan(r.half_width) else ""
        parts.append(f"{label.get(m, m)} {r.mean:+.1f}%{ci}")
    return "; ".join(parts)


def methods_table(result: ExperimentResult, model: str) -> str:
    """Markdown: every configuration of ``model`` under the three methods (gCO2/inf and the
    reduction vs Monolithic, mean ± 95% CI over repeats)."""
    from carbonedge.experiments.params import config_labels

    try:
        spec = load_fleet(result.params.fleet_file)
    except CarbonEdgeError as exc:
        return f"Not computed: {exc}"
    head = " | ".join(f"{m}: gCO2/inf | {m}: vs Mono" for m in ACCOUNTING_METHODS)
    lines = [f"| Configuration | {head} |", "|---" * (1 + 2 * len(ACCOUNTING_METHODS)) + "|"]
    for config in config_labels():
        if not result.runs_of(model, config):
            continue
        figs = by_method(result, model, config, spec)
        cells = []
        for m in ACCOUNTING_METHODS:
            g, r = figs[m].g_per_inf, figs[m].reduction_pct
            g_txt = (
                "n/a"
                if math.isnan(g.mean)
                else f"{g.mean:.3e}"
                + ("" if math.isnan(g.half_width) else f" ± {g.half_width:.1e}")
            )
            r_txt = (
                "n/a"
                if math.isnan(r.mean)
                else f"{r.mean:+.1f}%"
                + ("" if math.isnan(r.half_width) else f" ± {r.half_width:.1f}")
            )
            cells += [g_txt, r_txt]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
