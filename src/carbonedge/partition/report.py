"""Plain-text and JSON views of units, plans and placements (pure; used by the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from carbonedge.partition.placement import NodeProfile, PlacedPlan, PlacementResult
from carbonedge.partition.planner import Plan
from carbonedge.partition.units import Unit


def _mib(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.3f}"


def units_table(units: Sequence[Unit]) -> list[str]:
    """One line per unit: name, type, parameters, output, Eq. 5, MMACs, ms."""
    lines = [
        f"{'#':>3} {'unit':<14} {'type':<38} {'params':>9} {'out MiB':>8} "
        f"{'Eq.5 cost':>11} {'MMACs':>8} {'ms':>7}"
    ]
    for u in units:
        lines.append(
            f"{u.index:>3} {u.name:<14} {u.type[:38]:<38} {u.parameters:>9} "
            f"{_mib(u.output_bytes):>8} {u.eq5_cost:>11.0f} {u.macs / 1e6:>8.2f} "
            f"{u.latency_ms:>7.3f}"
        )
    return lines


def plan_table(
    plan: Plan, units: Sequence[Unit], nodes: Sequence[NodeProfile], whole_model_ms: float
) -> list[str]:
    """One line per segment; predicted ms = load x the whole model's measured ms."""
    lines = [
        f"{'seg':>3} {'node':<12} {'cap':>5} {'units':<28} {'cost':>12} {'share':>7} "
        f"{'load':>7} {'pred ms':>8} {'sent MiB':>9}"
    ]
    for s in plan.segments:
        span = f"{units[s.start].name}..{units[s.stop - 1].name}"
        lines.append(
            f"{s.index:>3} {nodes[s.index].name[:12]:<12} {s.capacity:>5.2f} {span[:28]:<28} "
            f"{s.cost:>12.4g} {s.share:>7.3f} {s.load:>7.3f} "
            f"{s.load * whole_model_ms:>8.2f} {_mib(s.bytes_out):>9}"
        )
    lines.append(
        f"bottleneck {plan.bottleneck:.3f} (x {whole_model_ms:.2f} ms whole model on 1.0 CPU "
        f"= {plan.bottleneck * whole_model_ms:.2f} ms per stage); sent across cuts "
        f"{plan.comm_bytes} bytes; objective {plan.objective} = {plan.objective_value:.4g}"
    )
    return lines


def placed_line(label: str, placed: PlacedPlan) -> str:
    """One line summarising a placement: nodes, cuts, latency (ms), carbon (g)."""
    route = " -> ".join(f"{s.node}[{s.start}:{s.stop}]" for s in placed.segments)
    return (
        f"{label:<9} {route}: latency {placed.latency_ms:.2f} ms (transfer "
        f"{placed.transfer_ms:.3f} ms), stage bottleneck {placed.bottleneck_ms:.2f} ms, "
        f"{placed.carbon_g * 1e3:.5f} mgCO2/inference"
    )


def placement_lines(result: PlacementResult) -> list[str]:
    """The chosen placement beside the balanced plan, and the saving in carbon."""
    saving = 1.0 - result.chosen.carbon_g / result.balanced.carbon_g
    note = "" if result.balanced_meets_slo else " (balanced plan misses the SLO)"
    return [
        f"carbon-aware placement within SLO {result.slo_ms:g} ms (predicted; power modelled):",
        placed_line("chosen", result.chosen),
        placed_line("balanced", result.balanced) + note,
        f"carbon saving vs balanced: {saving * 100:.1f}%",
    ]


def to_json(
    *,
    model: str,
    cost: str,
    units: Sequence[Unit],
    plan: Plan,
    nodes: Sequence[NodeProfile],
    whole_model_ms: float,
    placement: PlacementResult | None,
) -> dict[str, Any]:
    """A JSON-ready dict of everything the CLI prints."""
    return {
        "model": model,
        "cost": cost,
        "whole_model_ms": whole_model_ms,
        "whole_model_ms_method": "measured (median, 1 thread)",
        "nodes": [asdict(n) for n in nodes],
        "units": [asdict(u) for u in units],
        "plan": asdict(plan)
        | {"predicted_stage_ms": [s.load * whole_model_ms for s in plan.segments]},
        "placement": asdict(placement) if placement is not None else None,
    }
