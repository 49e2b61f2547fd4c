"""Accounting: every kWh and gCO2 of the project is computed here (pure: no I/O, no torch, no
codecarbon).

- :mod:`.units`: J, Wh, kWh, mJ, once;
- :mod:`.energy`: energy readings and per-component energy;
- :mod:`.equations`: the paper's Eq. 1 (energy from power) and Eq. 2 (carbon from energy);
- :mod:`.attribution`: host energy split among nodes (``cputime``, ``quota``);
- :mod:`.rates`: active energy per CPU-second (a window, a pooled calibration, a profile);
- :mod:`.charge`: the charge of a task and the totals of charged tasks.
"""

from carbonedge.accounting.attribution import (
    ATTRIBUTION_METHODS,
    STATIC_POWER_METHODS,
    Attribution,
    AttributionMethod,
    attribute,
)
from carbonedge.accounting.charge import Charge, Charged, Totals, charge_task, totals
from carbonedge.accounting.energy import (
    COMPONENTS,
    ComponentEnergy,
    EnergyMeter,
    EnergyReading,
    MeterInfo,
    PowerSample,
)
from carbonedge.accounting.equations import (
    PAPER_RAM_W_PER_GB,
    carbon_g,
    integrate_kwh,
    paper_ram_power_w,
)
from carbonedge.accounting.errors import AttributionError
from carbonedge.accounting.rates import (
    METHOD_CALIBRATED,
    METHOD_PROFILE,
    METHOD_WINDOW,
    PooledRate,
    Rate,
    RateSnapshot,
    profile_rate,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "COMPONENTS",
    "METHOD_CALIBRATED",
    "METHOD_PROFILE",
    "METHOD_WINDOW",
    "PAPER_RAM_W_PER_GB",
    "STATIC_POWER_METHODS",
    "Attribution",
    "AttributionError",
    "AttributionMethod",
    "Charge",
    "Charged",
    "ComponentEnergy",
    "EnergyMeter",
    "EnergyReading",
    "MeterInfo",
    "PooledRate",
    "PowerSample",
    "Rate",
    "RateSnapshot",
    "Totals",
    "attribute",
    "carbon_g",
    "charge_task",
    "integrate_kwh",
    "paper_ram_power_w",
    "profile_rate",
    "totals",
]
