"""The paper's Eq. 1 (energy from power) and Eq. 2 (carbon from energy), Section III.B.

Eq. 1: ``E_total = integral_0^T (P_GPU + P_CPU + P_RAM) dt``, evaluated per component on sampled
power (W) against time (s) and converted to kWh (:mod:`.units`).

Eq. 2: ``C = E_total x I_carbon x PUE`` with E in kWh, I in gCO2/kWh and PUE dimensionless
(default 1.0 for edge devices), giving grams of CO2.

The RAM model of Section III.B.1: 0.375 W per GB of installed RAM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from carbonedge.accounting.units import kwh

PAPER_RAM_W_PER_GB = 0.375
"""Paper Section III.B.1: RAM power approximated as 0.375 W per GB (typical DDR4)."""

IntegrationRule = Literal["trapezoid", "step"]


def integrate_kwh(
    times_s: Sequence[float], power_w: Sequence[float], rule: IntegrationRule = "trapezoid"
) -> float:
    """Integrate one component's power over time (Eq. 1) and return energy in kWh.

    ``times_s`` are sample times in seconds (strictly increasing), ``power_w`` the power in watts
    at each time. ``trapezoid`` treats the samples as instantaneous readings; ``step`` treats
    ``power_w[i]`` as the mean power over ``(times_s[i-1], times_s[i]]`` (the form CodeCarbon
    reports: energy over an interval divided by its length), so the first sample only marks the
    start. Fewer than two samples integrate to 0 kWh.
    """
    if len(times_s) != len(power_w):
        raise ValueError(f"times_s has {len(times_s)} values but power_w has {len(power_w)}")
    joules = 0.0
    for i in range(1, len(times_s)):
        dt_s = times_s[i] - times_s[i - 1]
        if dt_s < 0:
            raise ValueError(f"sample times must increase: {times_s[i - 1]} then {times_s[i]}")
        if rule == "trapezoid":
            joules += 0.5 * (power_w[i] + power_w[i - 1]) * dt_s
        else:
            joules += power_w[i] * dt_s
    return kwh(joules)


def paper_ram_power_w(total_ram_gb: float) -> float:
    """RAM power in W by the paper's model: 0.375 W per GB of installed RAM (Section III.B.1)."""
    return PAPER_RAM_W_PER_GB * total_ram_gb


def carbon_g(energy_kwh: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Eq. 2: emissions in gCO2 = energy (kWh) x carbon intensity (gCO2/kWh) x PUE.

    Raises ``ValueError`` for a negative or non-finite input or a PUE below 1.0.
    """
    for name, value in (
        ("energy_kwh", energy_kwh),
        ("intensity_g_per_kwh", intensity_g_per_kwh),
        ("pue", pue),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if pue < 1.0:
        raise ValueError(f"pue must be >= 1.0 (facility power / IT power), got {pue!r}")
    return energy_kwh * intensity_g_per_kwh * pue
