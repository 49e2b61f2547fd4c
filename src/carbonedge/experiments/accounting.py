"""One measured run window -> attribution -> per-node energy and carbon (the run's figures).

Around every run the engine's named window (:class:`~carbonedge.engine.Measurement`) measures
the host and the node processes' CPU seconds, so that ``carbon.attribute`` can split the host's
energy among the nodes (``cputime``: by CPU-time share of the host's busy CPU seconds, idle
baseline and other processes kept apart; ``quota``: by CPU-quota share, the paper's IV.A.1).
Carbon per node is Eq. 2, ``C = E x I x PUE``. Per-task energy is not computed here: the engine
charges every task as it finishes (:mod:`carbonedge.engine.charge`) and streams its ledger row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from carbonedge.accounting import Attribution, ComponentEnergy, attribute, carbon_g
from carbonedge.carbon import IntensityReading
from carbonedge.engine import Measurement
from carbonedge.fleet import FleetSpec


@dataclass(frozen=True)
class Accounted:
    """A window turned into energy (kWh) and carbon (gCO2) per node."""

    attribution: Attribution
    node_energy: Mapping[str, ComponentEnergy]
    node_carbon_g: Mapping[str, float]

    @property
    def carbon_g(self) -> float:
        return math.fsum(self.node_carbon_g.values())

    @property
    def energy(self) -> ComponentEnergy:
        """The nodes' energy, summed per component."""
        es = self.node_energy.values()
        return ComponentEnergy(
            math.fsum(e.cpu_energy_kwh for e in es),
            math.fsum(e.gpu_energy_kwh for e in es),
            math.fsum(e.ram_energy_kwh for e in es),
        )

    @property
    def energy_kwh(self) -> float:
        return self.energy.energy_kwh


def account(
    window: Measurement,
    spec: FleetSpec,
    intensities: Mapping[str, IntensityReading],
    method: str,
    *,
    idle_cpu_power_w: float | None,
) -> Accounted:
    """Attribute the window's host energy to nodes; Eq. 2 per node."""
    quotas = {n.name: n.cpu_quota for n in spec.nodes}
    att = attribute(
        window.reading,
        window.node_cpu_s,
        quotas,
        method,  # type: ignore[arg-type]
        idle_cpu_power_w=idle_cpu_power_w,
        host_cpu_s=window.host_cpu_s if method == "cputime" else None,
    )
    pue = {n.name: n.pue for n in spec.nodes}
    node_energy = {n: att.by_node.get(n, ComponentEnergy()) for n in spec.names}
    node_carbon = {
        n: carbon_g(e.energy_kwh, intensities[n].g_per_kwh, pue[n]) for n, e in node_energy.items()
    }
    return Accounted(att, node_energy, node_carbon)
