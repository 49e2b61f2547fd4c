"""What :meth:`Scheduler.select` returns, and the explanation built from it on request.

A :class:`Decision` is a named tuple (building one costs about 0.2 us; a frozen dataclass costs
several times more) that keeps references to its inputs. :meth:`Decision.explain` recomputes every
node's filter reasons, components and total with the reference formulas of :mod:`.components`
only when asked, so the per-task path never pays for the explanation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from carbonedge.scheduling.components import (
    Components,
    components,
    filter_reasons,
    predicted_carbon_g,
    predicted_latency_ms,
)
from carbonedge.scheduling.state import NodeState, Task
from carbonedge.scheduling.vectorized import FleetArrays

if TYPE_CHECKING:
    from carbonedge.scheduling.scheduler import Scheduler

__all__ = ["Decision", "Explanation", "NodeExplanation"]


@dataclass(frozen=True, slots=True)
class NodeExplanation:
    """One node's part in a decision.

    Attributes:
        name: node name.
        eligible: passed Algorithm 1's filters (lines 3 and 6).
        reasons: why it was filtered (empty when eligible).
        components: SR, SL, SP, SB, SC as computed (eligible nodes only).
        normalized: the min-max normalised components (``normalized`` policy only).
        total: the policy's value: Eq. 3 score (``paper``), normalised score (``normalized``),
            predicted gCO2 per task (``constrained``), predicted latency in ms (``fastest``);
            None when filtered.
        predicted_latency_ms: ``latency_ms + (tasks_in_flight + 1) x avg_time_s x 1000``.
        predicted_carbon_g: ``I x P x avg_time_s / 3.6e6``, gCO2 per task.
        chosen: this node was selected.
        note: for an eligible node, why it could not win outright (SLO, budget, score <= 0).
    """

    name: str
    eligible: bool
    reasons: tuple[str, ...]
    components: Components | None
    normalized: Components | None
    total: float | None
    predicted_latency_ms: float
    predicted_carbon_g: float
    chosen: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every node's components and total, and why the others were filtered."""

    policy: str
    weights: tuple[float, float, float, float, float]
    task_id: str | int
    node: str | None
    score: float
    slo_miss: bool
    budget_miss: bool
    nodes: tuple[NodeExplanation, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (NaN becomes None)."""

        def num(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else x

        rows = []
        for n in self.nodes:
            row: dict[str, Any] = {
                "name": n.name,
                "eligible": n.eligible,
                "chosen": n.chosen,
                "reasons": list(n.reasons),
                "note": n.note,
                "total": num(n.total),
                "predicted_latency_ms": n.predicted_latency_ms,
                "predicted_carbon_g": n.predicted_carbon_g,
            }
            if n.components is not None:
                row["components"] = n.components._asdict()
            if n.normalized is not None:
                row["normalized"] = n.normalized._asdict()
            rows.append(row)
        return {
            "policy": self.policy,
            "weights": dict(zip(("w_r", "w_l", "w_p", "w_b", "w_c"), self.weights, strict=True)),
            "task_id": self.task_id,
            "node": self.node,
            "score": num(self.score),
            "slo_miss": self.slo_miss,
            "budget_miss": self.budget_miss,
            "nodes": rows,
        }

    def table(self) -> str:
        """A plain-text table: one row per node with SR..SC, total, predictions and reasons."""
        head = ("node", "SR", "SL", "SP", "SB", "SC", "total", "lat_ms", "gCO2", "note")
        lines: list[tuple[str, ...]] = [head]
        for n in self.nodes:
            comps = n.normalized if n.normalized is not None else n.components
            cells = [f"{x:.4f}" for x in comps] if comps is not None else ["-"] * 5
            total = "-" if n.total is None else f"{n.total:.6g}"
            note = "; ".join(("CHOSEN",) * n.chosen + n.reasons + ((n.note,) if n.note else ()))
            lines.append(
                (
                    n.name,
                    *cells,
                    total,
                    f"{n.predicted_latency_ms:.1f}",
                    f"{n.predicted_carbon_g:.3g}",
                    note,
                )
            )
        widths = [max(len(row[k]) for row in lines) for k in range(len(head) - 1)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in lines
        ).rstrip()


class Decision(NamedTuple):
    """The outcome of one :meth:`Scheduler.select` call.

    Attributes:
        node: the chosen node's name, or None when no node is eligible (see :meth:`explain`).
        position: its index in the fleet given to ``select``, or -1.
        score: ``paper``: Eq. 3 score; ``normalized``: normalised score; ``constrained``:
            predicted gCO2 per task; NaN when ``node`` is None.
        slo_miss: ``constrained`` only: no node met the SLO, the fastest was taken.
        budget_miss: ``constrained`` only: the chosen node's predicted carbon exceeds the budget.
        scheduler: the scheduler that decided (policy, weights, limits).
        task: the task placed.
        fleet: the node states it decided on (kept by reference for :meth:`explain`).
    """

    node: str | None
    position: int
    score: float
    slo_miss: bool
    budget_miss: bool
    scheduler: Scheduler
    task: Task
    fleet: Sequence[NodeState] | FleetArrays

    def __repr__(self) -> str:
        return (
            f"Decision(node={self.node!r}, position={self.position}, score={self.score!r}, "
            f"policy={self.scheduler.policy!r}, slo_miss={self.slo_miss}, "
            f"budget_miss={self.budget_miss}, task_id={self.task.task_id!r})"
        )

    def explain(self) -> Explanation:
        """Recompute each node's filter reasons, components and total (on request only)."""
        return _explain(self)

    def margin(self) -> float:
        """How far the runner-up was behind: the chosen node's score minus the best other
        eligible node's (``constrained``: the runner-up's predicted gCO2 minus the chosen
        one's); NaN when fewer than two nodes are eligible. Recomputed (on request only)."""
        explained = self.explain()
        chosen = [n.total for n in explained.nodes if n.chosen and n.total is not None]
        others = [n.total for n in explained.nodes if not n.chosen and n.total is not None]
        if not chosen or not others:
            return math.nan
        if self.scheduler.policy in ("constrained", "fastest"):
            return min(others) - chosen[0]
        return chosen[0] - max(others)


def _explain(d: Decision) -> Explanation:
    sched = d.scheduler
    fleet = d.fleet
    states = fleet.states() if isinstance(fleet, FleetArrays) else list(fleet)
    w = sched.weights.as_tuple()
    rows: list[tuple[NodeState, tuple[str, ...], Components | None]] = []
    for n in states:
        reasons = filter_reasons(n, d.task, sched.latency_threshold_ms)
        rows.append((n, reasons, None if reasons else components(n)))
    totals: list[float | None] = [None] * len(rows)
    normalized: list[Components | None] = [None] * len(rows)
    eligible = [k for k, (_, reasons, _) in enumerate(rows) if not reasons]
    if sched.policy == "paper":
        for k in eligible:
            c = rows[k][2]
            assert c is not None
            totals[k] = w[0] * c.sr + w[1] * c.sl + w[2] * c.sp + w[3] * c.sb + w[4] * c.sc
    elif sched.policy == "normalized" and eligible:
        cols = list(zip(*(rows[k][2] for k in eligible), strict=True))
        lows = [min(col) for col in cols]
        gaps = [max(col) - lo for col, lo in zip(cols, lows, strict=True)]
        ks = [wx / g if g > 0.0 else 0.0 for wx, g in zip(w, gaps, strict=True)]
        for k in eligible:
            c = rows[k][2]
            assert c is not None
            normalized[k] = Components(
                *((x - lo) / g if g > 0.0 else 0.0 for x, lo, g in zip(c, lows, gaps, strict=True))
            )
            totals[k] = (
                ks[0] * (c.sr - lows[0])
                + ks[1] * (c.sl - lows[1])
                + ks[2] * (c.sp - lows[2])
                + ks[3] * (c.sb - lows[3])
                + ks[4] * (c.sc - lows[4])
            )
        if len(eligible) == 1:
            totals[eligible[0]] = 0.0
    elif sched.policy == "constrained":
        for k in eligible:
            totals[k] = predicted_carbon_g(rows[k][0])
    elif sched.policy == "fastest":
        for k in eligible:
            totals[k] = predicted_latency_ms(rows[k][0])
    notes = [""] * len(rows)
    for k in eligible:
        n = rows[k][0]
        total = totals[k]
        if sched.policy == "paper" and total is not None and not total > 0.0:
            notes[k] = "score not above Algorithm 1's initial best_score 0"
        elif sched.policy == "constrained":
            if predicted_latency_ms(n) > sched.slo_ms:
                notes[k] = f"predicted latency > SLO {sched.slo_ms:g} ms"
            elif total is not None and total > sched.carbon_budget_g:
                notes[k] = f"predicted carbon > budget {sched.carbon_budget_g:g} g"
    nodes = tuple(
        NodeExplanation(
            name=n.name,
            eligible=not reasons,
            reasons=reasons,
            components=comps,
            normalized=normalized[k],
            total=totals[k],
            predicted_latency_ms=predicted_latency_ms(n),
            predicted_carbon_g=predicted_carbon_g(n),
            chosen=k == d.position,
            note=notes[k],
        )
        for k, (n, reasons, comps) in enumerate(rows)
    )
    return Explanation(
        policy=sched.policy,
        weights=w,
        task_id=d.task.task_id,
        node=d.node,
        score=d.score,
        slo_miss=d.slo_miss,
        budget_miss=d.budget_miss,
        nodes=nodes,
    )
