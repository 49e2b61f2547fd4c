"""Carbon Monitor (paper Section III.B): energy meters, Eq. 1-2, intensity, attribution, ledger.

Heavy libraries stay in their adapters: :class:`CodeCarbonMeter` imports codecarbon only in
``start()``; nothing here imports torch.
"""

from carbonedge.carbon.attribution import (
    ATTRIBUTION_METHODS,
    Attribution,
    ComponentEnergy,
    attribute,
    cpu_seconds,
    host_busy_cpu_seconds,
)
from carbonedge.carbon.codecarbon_meter import CodeCarbonConfig, CodeCarbonMeter
from carbonedge.carbon.embodied import (
    SECONDS_PER_YEAR,
    EmbodiedError,
    EmbodiedProfile,
    embodied_g,
)
from carbonedge.carbon.emissions_csv import EmissionsContext, write_emissions_csv
from carbonedge.carbon.energy import EnergyMeter, EnergyReading, MeterInfo, PowerSample
from carbonedge.carbon.equations import (
    PAPER_RAM_W_PER_GB,
    carbon_g,
    energy_kwh,
    integrate_kwh,
    paper_ram_power_w,
)
from carbonedge.carbon.errors import (
    AttributionError,
    CommandError,
    IntensityError,
    LedgerError,
    MeterError,
)
from carbonedge.carbon.fakes import FakeClock, FakeMeter
from carbonedge.carbon.http_sources import ElectricityMapsSource, WattTimeSource
from carbonedge.carbon.intensity import (
    CountryMixIntensity,
    IntensityReading,
    IntensitySource,
    StaticIntensity,
)
from carbonedge.carbon.ledger import EmissionsLedger, LedgerRow, task_row
from carbonedge.carbon.ledger_file import read_ledger
from carbonedge.carbon.monitor import MonitorResult, monitor_command
from carbonedge.carbon.sci import NodeSci, SciError, SciScore, sci_score
from carbonedge.carbon.trace import CsvTrace

__all__ = [
    "ATTRIBUTION_METHODS",
    "PAPER_RAM_W_PER_GB",
    "SECONDS_PER_YEAR",
    "Attribution",
    "AttributionError",
    "CodeCarbonConfig",
    "CodeCarbonMeter",
    "CommandError",
    "ComponentEnergy",
    "CountryMixIntensity",
    "CsvTrace",
    "ElectricityMapsSource",
    "EmbodiedError",
    "EmbodiedProfile",
    "EmissionsContext",
    "EmissionsLedger",
    "EnergyMeter",
    "EnergyReading",
    "FakeClock",
    "FakeMeter",
    "IntensityError",
    "IntensityReading",
    "IntensitySource",
    "LedgerError",
    "LedgerRow",
    "MeterError",
    "MeterInfo",
    "MonitorResult",
    "NodeSci",
    "PowerSample",
    "SciError",
    "SciScore",
    "StaticIntensity",
    "WattTimeSource",
    "attribute",
    "carbon_g",
    "cpu_seconds",
    "embodied_g",
    "energy_kwh",
    "host_busy_cpu_seconds",
    "integrate_kwh",
    "monitor_command",
    "paper_ram_power_w",
    "read_ledger",
    "sci_score",
    "task_row",
    "write_emissions_csv",
]
