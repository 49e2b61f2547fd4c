"""The reproduction's :class:`Environment`: how every number was obtained (report header)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carbonedge.experiments.params import CE_SLO, ExperimentParams
from carbonedge.experiments.records import Environment
from carbonedge.experiments.setup import describe_method, enforcement_text, machine_text
from carbonedge.fleet import FleetBackend

if TYPE_CHECKING:
    from carbonedge.experiments.runner import _Ctx as Ctx

#: Length of the idle calibration window (s): a few of CodeCarbon's 1 s samples.
IDLE_WINDOW_S = 3.0


def _slo_note(params: ExperimentParams, ctx: Ctx) -> str:
    head = f"{CE_SLO}: Scheduler('constrained'), least predicted carbon whose predicted latency "
    if params.slo_ms is not None:
        return head + f"meets the SLO {params.slo_ms:g} ms (--slo-ms)"
    per_model = ", ".join(f"{m} {v:.1f} ms" for m, v in ctx.slo_ms.items())
    return head + (
        f"meets the SLO = {params.slo_factor:g} x the fastest node's predicted latency after "
        f"warm-up ({per_model})"
    )


def environment(
    params: ExperimentParams,
    ctx: Ctx,
    fleet: FleetBackend,
    images: Any,
    infos: dict[str, Any],
    plans: dict[str, str],
) -> Environment:
    method = ctx.methods[0] if ctx.methods else {}
    labels = sorted(
        {" ".join(f"{c}={m.get(c, 'none')}" for c in ("cpu", "gpu", "ram")) for m in ctx.methods}
    )
    weights = "; ".join(sorted({i.weights_source for i in infos.values()}))
    if "random" in weights:
        weights += " — latency and energy are valid, predictions are not"
    img_text = f"{len(images)} images from {images.source}, seed {params.seed}"
    if images.notes:
        img_text += " (" + " ".join(images.notes) + ")"
    runtime = params.runtime + (
        " (PyTorch eager, the paper's)" if params.runtime == "torch" else " (ONNX Runtime, ours)"
    )
    att = {
        "cputime": "cputime (Kepler's: active energy by the nodes' share of the host's busy CPU "
        "seconds; static energy (CPU idle floor, constant RAM power) and other processes kept "
        "apart; measured GPU energy by the same shares)",
        "quota": "quota (the paper's IV.A.1: host energy split by the nodes' CPU-quota shares)",
    }[params.attribution]
    return Environment(
        energy_method="; ".join(labels),
        energy_method_text=describe_method(method),
        meter=params.meter,
        attribution=att,
        enforcement=enforcement_text(fleet),
        runtime=runtime,
        weights=weights,
        images=img_text,
        machine=machine_text(),
        fleet=ctx.spec.source,
        nodes=tuple(
            (n.name, n.cpu_quota, n.memory_mb, ctx.intensities[n.name].g_per_kwh, n.pue)
            for n in ctx.spec.nodes
        ),
        mono_node=ctx.mono,
        amp4ec_plan=plans,
        notes=(
            "Scheduler power estimate (Eq. 4 P_node): each node's power while running a task "
            "(fleet telemetry)",
            "CPU idle baseline (cputime): "
            + (
                ctx.idle_baseline.describe()
                if ctx.idle_baseline is not None
                else f"{ctx.idle_cpu_power_w or 0.0:.3f} W"
            )
            + f" (source: {ctx.idle_baseline.source if ctx.idle_baseline else 'given'})",
            f"{ctx.ledger_rows} ledger rows",
            _slo_note(params, ctx),
        ),
    )
