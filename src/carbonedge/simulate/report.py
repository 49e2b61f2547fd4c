"""The policy table of a simulation: one row per policy and per optimum, as text and JSON.

gCO2 per inference has a 95% CI over the simulated weeks (Student t over the weekly means;
weeks are not independent draws, they are the year's own variation). The cut against the
carbon-agnostic policy is paired: its CI is over the weekly cuts. The gap to the optimum is
against the optimum under the constraints the policy keeps (the SLO optimum for the policies
held to the SLO, the plain optimum for the others); both optima are lower bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonedge.experiments.stats import MeanCI, mean_ci
from carbonedge.simulate.optimum import Optimum
from carbonedge.simulate.policies import AGNOSTIC
from carbonedge.simulate.run import PolicyRun, percentile_ms
from carbonedge.simulate.world import World

__all__ = ["Row", "energy_method", "format_table", "rows"]

Array = npt.NDArray[np.float64]
_WEEK_H = 168


@dataclass(frozen=True)
class Row:
    """One line of the table (a policy or an optimum)."""

    policy: str
    description: str
    requests: float
    gco2_total: float
    per_inference: MeanCI  # gCO2 per inference, over weeks
    cut: MeanCI  # % vs the carbon-agnostic policy, over weeks
    cut_total: float  # % vs the carbon-agnostic policy, over the whole run
    gap_to_optimum_pct: float
    optimum: str
    latency_p50_ms: float
    latency_p99_ms: float
    slo_violation_pct: float
    refused: float
    mean_delay_h: float
    share_by_zone: dict[str, float]
    decisions: int
    wall_s: float
    energy_method: str

    @property
    def gco2_per_inference(self) -> float:
        return self.gco2_total / self.requests if self.requests else math.nan

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "policy": self.policy,
            "description": self.description,
            "requests": self.requests,
            "gco2_total": self.gco2_total,
            "gco2_per_inference": num(self.gco2_per_inference),
            "gco2_per_inference_weekly": self.per_inference.to_dict(),
            "cut_vs_agnostic_pct": num(self.cut_total),
            "cut_vs_agnostic_weekly_pct": self.cut.to_dict(),
            "gap_to_optimum_pct": num(self.gap_to_optimum_pct),
            "optimum": self.optimum,
            "latency_p50_ms": num(self.latency_p50_ms),
            "latency_p99_ms": num(self.latency_p99_ms),
            "slo_violation_pct": num(self.slo_violation_pct),
            "refused": self.refused,
            "mean_delay_h": num(self.mean_delay_h),
            "share_by_zone": self.share_by_zone,
            "decisions": self.decisions,
            "wall_s": self.wall_s,
            "energy_method": self.energy_method,
        }


def _weekly(work: Array, carbon: Array) -> tuple[Array, Array]:
    weeks = work.shape[1] // _WEEK_H
    if weeks == 0:
        return np.array([work.sum()]), np.array([carbon.sum()])
    cut = weeks * _WEEK_H
    w = work[:, :cut].sum(axis=0).reshape(weeks, _WEEK_H).sum(axis=1)
    c = carbon[:, :cut].sum(axis=0).reshape(weeks, _WEEK_H).sum(axis=1)
    return w, c


def _zone_share(world: World, work: Array) -> dict[str, float]:
    total = float(work.sum())
    out: dict[str, float] = {}
    for s, site in enumerate(world.scenario.sites):
        out[site.zone] = out.get(site.zone, 0.0) + (float(work[s].sum()) / total if total else 0.0)
    return out


def _percentiles(run: PolicyRun) -> tuple[float, float]:
    n = run.served_interactive
    return percentile_ms(run.slower, n, 50), percentile_ms(run.slower, n, 99)


def energy_method(world: World) -> str:
    """How every energy and carbon figure of the table was obtained, in one sentence."""
    sc = world.scenario
    bases = sorted({f"{p.name}: {p.basis}" for p in (s.profile for s in sc.sites)})
    return (
        "energy per inference = the power-profile rate (max_w - idle_w) / cores x cpu_s "
        f"({', '.join(bases)}; idle power not charged); gCO2 = that x the hour's ENTSO-E "
        f"production-based average intensity of the site's zone ({sc.factors} factors) x PUE"
    )


def rows(world: World, runs: Sequence[PolicyRun], optima: Sequence[Optimum]) -> list[Row]:
    """The table: the policies in order, then the optima."""
    by_name = {o.name: o for o in optima}
    method = energy_method(world)
    base = next((r for r in runs if r.policy.name == AGNOSTIC), None)
    base_w, base_c = _weekly(base.work, base.carbon) if base is not None else (None, None)
    base_per = float(base.carbon.sum() / base.work.sum()) if base is not None else math.nan

    def cut_of(work: Array, carbon: Array) -> tuple[MeanCI, float]:
        if base_w is None or base_c is None:
            return mean_ci([]), math.nan
        w, c = _weekly(work, carbon)
        weekly = 100.0 * (1.0 - (c / w) / (base_c / base_w))
        per = float(carbon.sum() / work.sum())
        return mean_ci(list(weekly)), 100.0 * (1.0 - per / base_per)

    out: list[Row] = []
    for run in runs:
        w, c = _weekly(run.work, run.carbon)
        served = float(run.work.sum())
        per = float(run.carbon.sum()) / served if served else math.nan
        opt = by_name.get("optimum (SLO)" if run.policy.slo else "optimum")
        gap = math.nan
        if opt is not None:
            opt_per = float(opt.carbon.sum() / opt.work.sum())
            gap = 100.0 * (per / opt_per - 1.0) if opt_per > 0 else math.nan
        p50, p99 = _percentiles(run)
        cut, cut_total = cut_of(run.work, run.carbon)
        deferred = run.served_deferrable + run.refused_deferrable
        row = Row(
            policy=run.policy.name,
            description=run.policy.description,
            requests=served,
            gco2_total=float(run.carbon.sum()),
            per_inference=mean_ci(list(c / w)),
            cut=cut,
            gap_to_optimum_pct=gap,
            optimum=opt.name if opt is not None else "",
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            slo_violation_pct=100.0 * run.slo_violations / run.served_interactive
            if run.served_interactive
            else math.nan,
            refused=float(run.refused_interactive + run.refused_deferrable),
            mean_delay_h=run.delay_request_h / deferred if deferred else 0.0,
            share_by_zone=_zone_share(world, run.work),
            decisions=run.decisions,
            wall_s=run.wall_s,
            energy_method=method,
            cut_total=cut_total,
        )
        out.append(row)
    for opt in optima:
        w, c = _weekly(opt.work, opt.carbon)
        cut, cut_total = cut_of(opt.work, opt.carbon)
        out.append(
            Row(
                policy=opt.name,
                description="perfect knowledge: "
                + ("capacity, threshold, deadlines and SLO" if "SLO" in opt.name else
                   "capacity, threshold and deadlines")
                + (f"; LP on {opt.lp_days} days" if opt.lp_days else "; exact, no LP needed"),
                requests=float(opt.work.sum()),
                gco2_total=float(opt.carbon.sum()),
                per_inference=mean_ci(list(c / w)),
                cut=cut,
                gap_to_optimum_pct=0.0,
                optimum=opt.name,
                latency_p50_ms=math.nan,
                latency_p99_ms=math.nan,
                slo_violation_pct=math.nan,
                refused=opt.unserved,
                mean_delay_h=math.nan,
                share_by_zone=_zone_share(world, opt.work),
                decisions=0,
                wall_s=opt.wall_s,
                energy_method=method,
                cut_total=cut_total,
            )
        )  # fmt: skip
    return out


def _num(x: float, spec: str) -> str:
    return "n/a" if math.isnan(x) else format(x, spec)


def format_table(table: Sequence[Row]) -> str:
    """The table as aligned text (Markdown pipe table)."""
    head = (
        "| policy | gCO2/inf (weekly 95% CI) | cut vs nearest % | gap to optimum % | "
        "p50 ms | p99 ms | SLO viol. % | refused | delay h |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in table:
        pi = r.per_inference
        ci = f"{r.gco2_per_inference:.3e}" + (
            f" ± {pi.half_width:.1e}" if pi.n > 1 and not math.isnan(pi.half_width) else ""
        )
        cut = _num(r.cut_total, ".1f") + (
            f" ± {r.cut.half_width:.1f}" if r.cut.n > 1 and not math.isnan(r.cut.half_width) else ""
        )
        lines.append(
            f"| {r.policy} | {ci} | {cut} | {_num(r.gap_to_optimum_pct, '.1f')} | "
            f"{_num(r.latency_p50_ms, '.1f')} | {_num(r.latency_p99_ms, '.1f')} | "
            f"{_num(r.slo_violation_pct, '.2f')} | {r.refused:.0f} | "
            f"{_num(r.mean_delay_h, '.2f')} |"
        )
    return "\n".join(lines)
