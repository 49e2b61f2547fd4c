"""Carbon Monitor (paper Section III.B): energy meters, intensity sources, process CPU time, the
ledger and its exports. The arithmetic (units, Eq. 1-2, attribution, the charge) is in
:mod:`carbonedge.accounting`.

Heavy libraries stay in their adapters: :class:`CodeCarbonMeter` imports codecarbon only in
``start()``; nothing here imports torch.
"""

from carbonedge.carbon.codecarbon_meter import CodeCarbonConfig, CodeCarbonMeter
from carbonedge.carbon.embodied import (
    SECONDS_PER_YEAR,
    EmbodiedError,
    EmbodiedProfile,
    embodied_g,
)
from carbonedge.carbon.emissions_csv import EmissionsContext, write_emissions_csv
from carbonedge.carbon.errors import CommandError, IntensityError, LedgerError, MeterError
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
from carbonedge.carbon.process_cpu import cpu_seconds, host_busy_cpu_seconds
from carbonedge.carbon.sci import NodeSci, SciError, SciScore, sci_score
from carbonedge.carbon.trace import CsvTrace

__all__ = [
    "SECONDS_PER_YEAR",
    "CodeCarbonConfig",
    "CodeCarbonMeter",
    "CommandError",
    "CountryMixIntensity",
    "CsvTrace",
    "ElectricityMapsSource",
    "EmbodiedError",
    "EmbodiedProfile",
    "EmissionsContext",
    "EmissionsLedger",
    "FakeClock",
    "FakeMeter",
    "IntensityError",
    "IntensityReading",
    "IntensitySource",
    "LedgerError",
    "LedgerRow",
    "MeterError",
    "MonitorResult",
    "NodeSci",
    "SciError",
    "SciScore",
    "StaticIntensity",
    "WattTimeSource",
    "cpu_seconds",
    "embodied_g",
    "host_busy_cpu_seconds",
    "monitor_command",
    "read_ledger",
    "sci_score",
    "task_row",
    "write_emissions_csv",
]
