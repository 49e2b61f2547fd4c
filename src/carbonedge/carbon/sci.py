"""Software Carbon Intensity (SCI, ISO/IEC 21031:2024) of inference, from ledger rows.

The Green Software Foundation's SCI specification scores software as

    SCI = (E x I + M) / R

- ``E`` (kWh): energy of the software. Per node, the sum of its ledger rows' CPU + GPU + RAM
  energy times the row's PUE (CodeCarbon and the Impact Framework also fold PUE into energy),
  so that ``E x I`` equals the ledger's gCO2 (Eq. 2).
- ``I`` (gCO2/kWh): grid intensity. Per node, the energy-weighted mean of its rows' intensity;
  ``E x I`` is computed row by row, so a node whose intensity changed over time is charged each
  row at the intensity that row used.
- ``M`` (gCO2e): embodied emissions, ``TE x TS x RS`` (the specification's ``TE x (TR/EL) x
  (RR/TR)``): the device's total embodied emissions, the time share (time the software held
  the device over the device's expected life) and the resource share (part of the device
  held). The arithmetic is :func:`carbonedge.carbon.embodied.embodied_g`; the time held is
  the union of the node's task intervals (``started_at`` .. ``finished_at``), so overlapping
  tasks are not charged twice and idle time between tasks is charged to nobody.
- ``R``: the functional unit, one inference. Ledger rows are tasks or pipeline stages; a
  pipelined inference writes one row per stage with task ids ``<id>/<stage>``, so inferences
  are counted as distinct ``(run_id, <id>)``. A node's share of R gives each stage row
  ``1 / stages`` of its inference, so the nodes' shares sum to R.

Each term carries a label saying how it was obtained: ``measured`` (a sensor: RAPL, NVML;
counted inferences), ``modelled`` (a model: CodeCarbon's CPU-load model, constant or paper RAM
power, a power profile, a fake meter), ``sourced`` (a published or configured figure: grid
intensity, a device's embodied footprint) or ``missing`` (no figure: M of a node without an
embodied footprint counts 0 and the label says so). Pure: no I/O.

Source: Green Software Foundation, *Software Carbon Intensity (SCI) Specification*
(sci.greensoftware.foundation), published as ISO/IEC 21031:2024.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from carbonedge.carbon.embodied import EmbodiedProfile, embodied_g
from carbonedge.carbon.ledger import LedgerRow
from carbonedge.errors import CarbonEdgeError

TermLabel = Literal["measured", "modelled", "sourced", "missing"]

#: Energy methods (``EnergyReading.method`` values) that are sensor readings.
MEASURED_ENERGY_METHODS = frozenset({"rapl", "nvml"})

FUNCTIONAL_UNIT = "inference"


class SciError(CarbonEdgeError, ValueError):
    """SCI inputs are unusable: no rows, a resource share outside 0..1, a bad timestamp."""


def energy_label(methods: Iterable[str]) -> TermLabel:
    """``measured`` if every component of every method label (``cpu=rapl gpu=none
    ram=nvml``) is a sensor reading, else ``modelled``; absent components (``none``) and an
    empty input do not count."""
    parts = [
        token.partition("=")[2] if "=" in token else token
        for method in methods
        for token in method.split()
    ]
    used = [p for p in parts if p and p != "none"]
    return "measured" if used and all(p in MEASURED_ENERGY_METHODS for p in used) else "modelled"


def inference_key(row: LedgerRow) -> tuple[str, str]:
    """``(run_id, inference id)``: a pipeline stage row ``<id>/<stage>`` maps to ``<id>``."""
    base, sep, stage = row.task_id.rpartition("/")
    return (row.run_id, base if sep and stage.isdigit() else row.task_id)


@dataclass(frozen=True)
class NodeSci:
    """One node's terms. Energy in kWh, intensity in gCO2/kWh, carbon in gCO2e, time in s.

    ``it_energy_kwh`` is what the ledger charged (CPU + GPU + RAM); ``energy_kwh`` is SCI's E
    (times PUE). ``inferences`` is the node's share of R (pipeline stages split their
    inference). ``busy_s`` is the time the node was held (union of its task intervals);
    ``time_share`` = busy_s / the device's life (None without an embodied footprint).
    """

    node: str
    tasks: int
    inferences: float
    it_energy_kwh: float
    energy_kwh: float
    energy_label: TermLabel
    energy_methods: tuple[str, ...]
    intensity_g_per_kwh: float
    intensity_label: TermLabel
    intensity_sources: tuple[str, ...]
    operational_g: float
    busy_s: float
    lifetime_s: float | None
    time_share: float | None
    resource_share: float
    embodied_total_kgco2e: float | None
    embodied_g: float
    embodied_label: TermLabel
    embodied_source: str | None
    started_at: str
    finished_at: str

    @property
    def total_g(self) -> float:
        """E x I + M of this node, gCO2e."""
        return self.operational_g + self.embodied_g


@dataclass(frozen=True)
class SciScore:
    """``SCI = (E x I + M) / R`` with R = one inference; every term labelled.

    ``sci_g_per_inference`` in gCO2e per inference; ``operational_g`` = E x I and
    ``embodied_g`` = M in gCO2e; ``energy_kwh`` = E (PUE included); ``intensity_g_per_kwh``
    = (E x I) / E. ``missing_embodied`` names the nodes whose M is unknown (counted as 0).
    """

    functional_unit: str
    inferences: int
    inferences_label: TermLabel
    energy_kwh: float
    energy_label: TermLabel
    intensity_g_per_kwh: float
    intensity_label: TermLabel
    operational_g: float
    embodied_g: float
    embodied_label: TermLabel
    total_g: float
    sci_g_per_inference: float
    operational_g_per_inference: float
    embodied_g_per_inference: float
    started_at: str
    finished_at: str
    missing_embodied: tuple[str, ...]
    nodes: tuple[NodeSci, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (node terms under ``nodes``)."""
        data = asdict(self)
        data["nodes"] = [asdict(n) | {"total_g": n.total_g} for n in self.nodes]
        return data


def _time(text: str, row: LedgerRow, name: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise SciError(f"task {row.task_id!r} of run {row.run_id!r}: {name} {text!r}") from exc


def busy_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    """Length of the union of ``(start, end)`` intervals, s (overlaps counted once)."""
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in sorted(intervals):
        end = max(start, end)
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, end)
        elif end > current[1]:
            current = (current[0], end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def _node_sci(
    node: str,
    rows: list[LedgerRow],
    stages: Mapping[tuple[str, str], int],
    profile: EmbodiedProfile | None,
    share: float,
) -> NodeSci:
    spans = [
        (_time(r.started_at, r, "started_at"), _time(r.finished_at, r, "finished_at")) for r in rows
    ]
    busy_s = busy_seconds(spans)
    it_kwh = sum(r.energy_kwh for r in rows)
    kwh = sum(r.energy_kwh * r.pue for r in rows)
    operational = sum(r.gco2 for r in rows)
    intensity = (
        operational / kwh if kwh > 0 else sum(r.intensity_g_per_kwh for r in rows) / len(rows)
    )
    methods = tuple(sorted({r.energy_method for r in rows}))
    return NodeSci(
        node=node,
        tasks=len(rows),
        inferences=sum(1.0 / stages[inference_key(r)] for r in rows),
        it_energy_kwh=it_kwh,
        energy_kwh=kwh,
        energy_label=energy_label(methods),
        energy_methods=methods,
        intensity_g_per_kwh=intensity,
        intensity_label="sourced",
        intensity_sources=tuple(sorted({r.intensity_source for r in rows})),
        operational_g=operational,
        busy_s=busy_s,
        lifetime_s=profile.lifetime_s if profile else None,
        time_share=busy_s / profile.lifetime_s if profile else None,
        resource_share=share,
        embodied_total_kgco2e=profile.embodied_kgco2e if profile else None,
        embodied_g=embodied_g(profile, busy_s, share) if profile else 0.0,
        embodied_label="sourced" if profile else "missing",
        embodied_source=profile.source if profile else None,
        started_at=min(s for s, _ in spans).isoformat(),
        finished_at=max(e for _, e in spans).isoformat(),
    )


def sci_score(
    rows: Iterable[LedgerRow],
    *,
    embodied_by_node: Mapping[str, EmbodiedProfile | None] | None = None,
    resource_share_by_node: Mapping[str, float] | None = None,
) -> SciScore:
    """SCI per inference of the ledger ``rows`` (one run, several, or a whole ledger).

    ``embodied_by_node`` gives each node's device footprint (``NodeSpec.embodied``; a node
    absent or None has M = 0, labelled ``missing``). ``resource_share_by_node`` is SCI's RS
    per node, 0..1 (default 1.0: the footprint is the node's own device, held whole; for
    several nodes sharing one device give e.g. the node's CPU quota over the device's cores).
    Raises :class:`SciError` for no rows or a share outside 0..1.
    """
    rows = list(rows)
    if not rows:
        raise SciError("no ledger rows: SCI needs at least one inference")
    embodied = embodied_by_node or {}
    shares = resource_share_by_node or {}
    for node, share in shares.items():
        if not (math.isfinite(share) and 0.0 <= share <= 1.0):
            raise SciError(f"resource share of node {node!r} must be between 0 and 1, got {share}")
    stages: dict[tuple[str, str], int] = {}
    by_node: dict[str, list[LedgerRow]] = {}
    for r in rows:
        stages[inference_key(r)] = stages.get(inference_key(r), 0) + 1
        by_node.setdefault(r.node, []).append(r)
    nodes = tuple(
        _node_sci(name, node_rows, stages, embodied.get(name), shares.get(name, 1.0))
        for name, node_rows in by_node.items()
    )
    inferences = len(stages)
    kwh = sum(n.energy_kwh for n in nodes)
    operational = sum(n.operational_g for n in nodes)
    m = sum(n.embodied_g for n in nodes)
    missing = tuple(n.node for n in nodes if n.embodied_label == "missing")
    modelled = any(n.energy_label == "modelled" for n in nodes)
    return SciScore(
        functional_unit=FUNCTIONAL_UNIT,
        inferences=inferences,
        inferences_label="measured",
        energy_kwh=kwh,
        energy_label="modelled" if modelled else "measured",
        intensity_g_per_kwh=operational / kwh if kwh > 0 else 0.0,
        intensity_label="sourced",
        operational_g=operational,
        embodied_g=m,
        embodied_label="missing" if missing else "sourced",
        total_g=operational + m,
        sci_g_per_inference=(operational + m) / inferences,
        operational_g_per_inference=operational / inferences,
        embodied_g_per_inference=m / inferences,
        started_at=min(nodes, key=lambda n: datetime.fromisoformat(n.started_at)).started_at,
        finished_at=max(nodes, key=lambda n: datetime.fromisoformat(n.finished_at)).finished_at,
        missing_embodied=missing,
        nodes=nodes,
    )
