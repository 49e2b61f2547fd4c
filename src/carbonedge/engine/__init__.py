"""The engine: one data path from a task to a ledger row behind ``serve``, ``reproduce`` and the
library (docs/architecture.md). Placement, admission, retries, measurement windows, the per-task
charge and the durable ledger live here and nowhere else.
"""

from carbonedge.engine.build import (
    BACKENDS,
    FAKE_POWER_W,
    METER_KINDS,
    EngineSettings,
    make_fleet,
    meter_factory,
    open_engine,
)
from carbonedge.engine.core import Engine, EngineConfig, Outcome
from carbonedge.engine.errors import (
    EngineError,
    NoEligibleNode,
    Overloaded,
    TaskFailed,
    TaskTimeout,
)
from carbonedge.engine.intensity import IntensityFeed, ReplayClock
from carbonedge.engine.rates import RollingRates, WindowTotals
from carbonedge.engine.windows import IdleBaseline, Measurement, MeasurementWindows, NodeCpu

__all__ = [
    "BACKENDS",
    "FAKE_POWER_W",
    "METER_KINDS",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineSettings",
    "IdleBaseline",
    "IntensityFeed",
    "Measurement",
    "MeasurementWindows",
    "NoEligibleNode",
    "NodeCpu",
    "Outcome",
    "Overloaded",
    "ReplayClock",
    "RollingRates",
    "TaskFailed",
    "TaskTimeout",
    "WindowTotals",
    "make_fleet",
    "meter_factory",
    "open_engine",
]
