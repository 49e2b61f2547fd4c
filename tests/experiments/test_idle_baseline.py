"""The CPU idle baseline of ``cputime``: the meter's model floor wins over a busy host's samples."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from carbonedge.accounting import EnergyReading, MeterInfo, PowerSample
from carbonedge.carbon.codecarbon_meter import cpu_load_model_floor_w
from carbonedge.engine import MeasurementWindows, NodeCpu
from carbonedge.engine.windows import IdleBaseline
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.spec import parse_fleet

SPEC = parse_fleet(
    {
        "nodes": [
            {
                "name": "n0",
                "cpu_quota": 1.0,
                "memory_mb": 512,
                "intensity_g_per_kwh": 300,
                "idle_w": 1.0,
                "max_w": 5.0,
            }
        ]
    },
    "one-node",
)


class _Meter:
    """Reports 3 W of CPU at every sample (a host kept busy by other processes)."""

    def __init__(self, details: dict[str, str]) -> None:
        self.details = details
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()

    def stop(self) -> EnergyReading:
        d = time.monotonic() - self.t0
        return EnergyReading(
            duration_s=d,
            cpu_energy_kwh=3.0 * d / 3.6e6,
            gpu_energy_kwh=0.0,
            ram_energy_kwh=0.0,
            method={"cpu": "cpu-load-model", "gpu": "none", "ram": "constant"},
            samples=(PowerSample(0.0, 3.0, 0.0, 0.0), PowerSample(d, 3.0, 0.0, 0.0)),
            info=MeterInfo(meter="stub", details=self.details),
            finished_at=datetime.now(UTC),
        )


def _windows(details: dict[str, str]) -> MeasurementWindows:
    return MeasurementWindows(lambda: _Meter(details), NodeCpu(InProcessFleet(SPEC)))


def test_model_floor_is_used_whatever_the_samples() -> None:
    b = _windows({"cpu_idle_floor_w": "0.8"}).idle_baseline(0.05)
    assert isinstance(b, IdleBaseline)
    assert (b.power_w, b.source, b.measured_min_w) == (0.8, "model-floor", 3.0)
    assert "0.1 x TDP" in b.describe()


def test_measured_baseline_without_a_model_floor() -> None:
    b = _windows({}).idle_baseline(0.05)
    assert b.power_w == 3.0
    assert b.source in ("measured", "measured-busy")  # depends on this host's load
    assert b.model_floor_w is None


def test_codecarbon_floor_is_a_tenth_of_tdp() -> None:
    class Cpu:
        _mode = "cpu_load"
        _tdp = 8

    class Ram:
        pass

    class Tracker:
        def __init__(self, *hardware: Any) -> None:
            self._hardware = list(hardware)

    assert cpu_load_model_floor_w(Tracker(Ram(), Cpu())) == pytest.approx(0.8)
    Cpu._mode = "intel_rapl"
    assert cpu_load_model_floor_w(Tracker(Ram(), Cpu())) is None
