"""Units of energy, once. Every conversion between J, Wh, kWh and mJ in the project uses these.

Power is in W, time in s (or ms where a name says so), energy in kWh unless a name says
otherwise, carbon in gCO2. 1 kWh = 3,600,000 J; 1 Wh = 3,600 J; 1 J = 1,000 mJ.
"""

from __future__ import annotations

__all__ = [
    "J_PER_KWH",
    "J_PER_WH",
    "MJ_PER_KWH",
    "MS_PER_S",
    "W_MS_PER_WH",
    "joules",
    "kwh",
    "kwh_of_power",
    "millijoules",
    "watts",
]

J_PER_WH = 3_600.0
J_PER_KWH = 3_600_000.0
#: Millijoules per kWh; also W·ms per kWh.
MJ_PER_KWH = 3_600_000_000.0
MS_PER_S = 1_000.0
#: W·ms per Wh (Eq. 4 divides W x ms by it and calls the result kWh: it is Wh).
W_MS_PER_WH = 3_600_000.0


def kwh(joules: float) -> float:
    """kWh of ``joules`` J."""
    return joules / J_PER_KWH


def joules(kwh: float) -> float:
    """J of ``kwh`` kWh."""
    return kwh * J_PER_KWH


def millijoules(kwh: float) -> float:
    """mJ of ``kwh`` kWh."""
    return kwh * MJ_PER_KWH


def kwh_of_power(power_w: float, seconds: float) -> float:
    """kWh of a constant ``power_w`` W held for ``seconds`` s."""
    return power_w * seconds / J_PER_KWH


def watts(kwh: float, seconds: float) -> float:
    """Mean power in W of ``kwh`` kWh spent over ``seconds`` s (0 for no time)."""
    return kwh * J_PER_KWH / seconds if seconds > 0 else 0.0
