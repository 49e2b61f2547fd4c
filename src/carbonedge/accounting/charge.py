"""The one charge rule: a finished task's energy (kWh) and carbon (gCO2), and the totals of a
set of charged tasks (a run, a tenant, an export).

``energy = rate(node) x cpu_s`` per component, where ``rate`` is the node's active energy per
CPU-second in the current :class:`~carbonedge.accounting.rates.RateSnapshot` (a closed meter
window, a pooled calibration, or the node's power profile), and ``gCO2 = energy x I x PUE``
(Eq. 2) with ``I`` the intensity the scheduler saw when it placed the task. Every entry point
(``serve``, ``reproduce``, library users of the engine) charges tasks here and nowhere else, and
every figure of a run (its table rows, ``runs.csv``, ``emissions.csv``) is :func:`totals` of
its charged rows, so they agree to the last digit.

What the charge leaves out, and says so: the host's static energy (CPU idle floor, constant RAM
power) and the energy of processes outside the nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from carbonedge.accounting.energy import ComponentEnergy
from carbonedge.accounting.equations import carbon_g
from carbonedge.accounting.rates import RateSnapshot

if TYPE_CHECKING:
    from carbonedge.carbon.intensity import IntensityReading

__all__ = ["Charge", "Charged", "Totals", "charge_task", "totals"]


@dataclass(frozen=True)
class Charge:
    """What one task is charged. Energy in kWh per component, carbon in gCO2.

    ``method``: how the task's share was estimated (``window-cputime``,
    ``calibrated-cputime`` or ``power-profile``). ``energy_method``: how the host energy
    behind the rate was obtained, per component (``rapl``, ``cpu-load-model``, ``constant``,
    ``fake``, ...). ``intensity``: the reading used (value, source, time, fallback).
    ``note``: one sentence.
    """

    energy: ComponentEnergy
    gco2: float
    method: str
    energy_method: Mapping[str, str]
    energy_method_label: str
    intensity: IntensityReading
    pue: float
    note: str

    @property
    def energy_kwh(self) -> float:
        return self.energy.energy_kwh


def charge_task(
    node: str,
    cpu_s: float,
    snapshot: RateSnapshot,
    intensity: IntensityReading,
    pue: float,
    *,
    now_mono_s: float,
) -> Charge:
    """Charge one task of ``cpu_s`` CPU seconds on ``node``; see the module docstring."""
    cpu, gpu, ram = snapshot.rates[node]
    energy = ComponentEnergy(cpu * cpu_s, gpu * cpu_s, ram * cpu_s)
    gco2 = carbon_g(energy.energy_kwh, intensity.g_per_kwh, pue)
    return Charge(
        energy=energy,
        gco2=gco2 if math.isfinite(gco2) else 0.0,
        method=snapshot.method,
        energy_method=snapshot.energy_method,
        energy_method_label=snapshot.method_label,
        intensity=intensity,
        pue=pue,
        note=snapshot.describe(node, now_mono_s),
    )


class Charged(Protocol):
    """A charged task as recorded (a ledger row has these fields)."""

    @property
    def node(self) -> str: ...
    @property
    def cpu_energy_kwh(self) -> float: ...
    @property
    def gpu_energy_kwh(self) -> float: ...
    @property
    def ram_energy_kwh(self) -> float: ...
    @property
    def gco2(self) -> float: ...


@dataclass(frozen=True)
class Totals:
    """The sums of charged tasks: IT energy per component and per node (kWh), gCO2."""

    tasks: int
    energy: ComponentEnergy
    by_node: Mapping[str, ComponentEnergy]
    gco2: float

    @property
    def energy_kwh(self) -> float:
        return self.energy.energy_kwh


def totals(rows: Iterable[Charged]) -> Totals:
    """Exactly rounded sums (``math.fsum``: independent of the rows' order) of ``rows``."""
    rows = list(rows)
    nodes: dict[str, list[Charged]] = {}
    for r in rows:
        nodes.setdefault(r.node, []).append(r)

    def energy(of: list[Charged]) -> ComponentEnergy:
        return ComponentEnergy(
            math.fsum(r.cpu_energy_kwh for r in of),
            math.fsum(r.gpu_energy_kwh for r in of),
            math.fsum(r.ram_energy_kwh for r in of),
        )

    return Totals(
        tasks=len(rows),
        energy=energy(rows),
        by_node={n: energy(of) for n, of in nodes.items()},
        gco2=math.fsum(r.gco2 for r in rows),
    )
