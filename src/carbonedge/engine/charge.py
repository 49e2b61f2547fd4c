"""The one per-task charge rule: a finished task's energy (kWh) and carbon (gCO2).

``energy = rate(node) x cpu_s`` per component, where ``rate`` is the node's active energy per
CPU-second from the latest closed measurement window (:mod:`carbonedge.engine.rates`; before the
first window, the node's power profile, Eq. 4's ``P_node``), and ``gCO2 = energy x I x PUE``
(Eq. 2) with ``I`` the intensity the scheduler saw when it placed the task. Every entry point
(``serve``, ``reproduce``, library users of the engine) charges tasks here and nowhere else.

What the charge leaves out, and says so: the host's static energy (CPU idle floor, constant RAM
power) and the energy of processes outside the nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from carbonedge.carbon import ComponentEnergy, IntensityReading, carbon_g
from carbonedge.engine.rates import RateSnapshot

__all__ = ["METHOD_PROFILE", "METHOD_WINDOW", "Charge", "charge_task"]

#: The task's energy is its CPU seconds x its node's active energy per CPU-second, apportioned
#: by CPU time from the host meter's last closed window.
METHOD_WINDOW = "window-cputime"
#: The same with the rate from the node's power profile (no window closed yet).
METHOD_PROFILE = "power-profile"


@dataclass(frozen=True)
class Charge:
    """What one task is charged. Energy in kWh per component, carbon in gCO2.

    ``method``: how the task's share was estimated (:data:`METHOD_WINDOW` or
    :data:`METHOD_PROFILE`). ``energy_method``: how the host energy behind the rate was
    obtained, per component (``rapl``, ``cpu-load-model``, ``constant``, ``fake``, ...).
    ``intensity``: the reading used (value, source, time, fallback). ``note``: one sentence.
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
        method=METHOD_WINDOW if snapshot.source == "window" else METHOD_PROFILE,
        energy_method=snapshot.energy_method,
        energy_method_label=snapshot.method_label,
        intensity=intensity,
        pue=pue,
        note=snapshot.describe(node, now_mono_s),
    )
