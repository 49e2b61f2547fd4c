"""NVML reader with a fake ``pynvml`` module injected: no GPU is needed, and none was used.

Units and semantics follow the NVIDIA NVML API Reference, Device Queries:
``nvmlDeviceGetTotalEnergyConsumption`` "Retrieves total energy consumption for this GPU in
millijoules (mJ) since the driver was last reloaded. For Volta or newer fully supported
devices."; ``nvmlDeviceGetPowerUsage`` retrieves the power usage "in milliwatts" (Fermi or
newer). A reload resets the counter: the reader reports it as an error, never negative energy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import NvmlSensor, SensorError, SensorMeter, detect_sensors
from carbonedge.carbon.sensors.fixtures import set_rapl_energy, write_rapl
from carbonedge.carbon.sensors.nvml import import_pynvml

from .fakes import FakeGpu, FakeNvml


def test_counter_and_power_gpus() -> None:
    nvml = FakeNvml([FakeGpu("NVIDIA H100", 1_000_000), FakeGpu("Tesla P4", None, 20_000)])
    clock = FakeClock()
    sensor = NvmlSensor(nvml, clock=clock)
    rails = sensor.rails()
    assert [(r.name, r.component, r.kind) for r in rails] == [
        ("gpu0", "gpu", "energy"),
        ("gpu1", "gpu", "power"),
    ]
    assert "nvmlDeviceGetTotalEnergyConsumption(0) [NVIDIA H100]" in rails[0].source
    assert "nvmlDeviceGetPowerUsage(1)" in rails[1].source
    meter = SensorMeter([sensor], background=False, clock=clock)
    meter.start()
    for _ in range(4):  # 4 s: gpu0 draws 300 W (+300 J/s), gpu1 a steady 20 W
        clock.advance(1.0)
        nvml.gpus[0].energy_mj += 300_000
        meter.poll()
    reading = meter.stop()
    assert meter.rail_energy_j["nvml:gpu0"] == pytest.approx(1200.0)
    assert meter.rail_energy_j["nvml:gpu1"] == pytest.approx(80.0)
    assert reading.gpu_energy_kwh * 3.6e6 == pytest.approx(1280.0)
    assert reading.method == {"cpu": "none", "gpu": "nvml", "ram": "none"}
    meter.close()
    assert nvml.shutdowns == 1


def test_counter_going_backwards_is_an_error_then_recovers() -> None:
    nvml = FakeNvml([FakeGpu("NVIDIA A100", 5_000_000)])
    sensor = NvmlSensor(nvml)
    assert sensor.read().values["gpu0"].energy_j == 0.0
    nvml.gpus[0].energy_mj = 6_000_000
    assert sensor.read().values["gpu0"].energy_j == pytest.approx(1000.0)
    nvml.gpus[0].energy_mj = 100_000  # driver reloaded
    with pytest.raises(SensorError, match="counter went backwards"):
        sensor.read()
    nvml.gpus[0].energy_mj = 150_000
    assert sensor.read().values["gpu0"].energy_j == pytest.approx(1050.0)  # never decreases


def test_garbage_and_failing_calls() -> None:
    nvml = FakeNvml([FakeGpu("NVIDIA A100", 0)])
    sensor = NvmlSensor(nvml)
    nvml.gpus[0].energy_mj = float("nan")  # type: ignore[assignment]
    with pytest.raises(SensorError, match="implausible"):
        sensor.read()

    def broken(handle: int) -> int:
        raise nvml.NVMLError("GPU is lost")

    nvml.nvmlDeviceGetTotalEnergyConsumption = broken  # type: ignore[method-assign]
    with pytest.raises(SensorError, match="GPU is lost"):
        sensor.read()


def test_no_driver_no_gpu_no_package() -> None:
    with pytest.raises(SensorError, match=r"nvmlInit failed.*Driver Not Loaded"):
        NvmlSensor(FakeNvml([], init_error="Driver Not Loaded"))
    empty = FakeNvml([])
    with pytest.raises(SensorError, match="reports no GPU"):
        NvmlSensor(empty)
    assert empty.shutdowns == 1


def test_missing_nvidia_ml_py_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(SensorError, match=r"pip install 'carbonedge\[gpu\]'"):
        import_pynvml()


def test_detection_combines_rapl_and_nvml(tmp_path: Path) -> None:
    write_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0), "intel-rapl:0:0": ("dram", 0)})
    nvml = FakeNvml([FakeGpu("NVIDIA L4", 0)])
    clock = FakeClock()
    detection = detect_sensors(tmp_path, nvml=nvml, clock=clock, codecarbon=False)
    assert detection.chosen == ("rapl", "nvml")
    meter = SensorMeter(detection.sensors(), background=False, clock=clock)
    meter.start()
    clock.advance(1.0)
    set_rapl_energy(tmp_path, "intel-rapl:0", 40_000_000)
    nvml.gpus[0].energy_mj = 70_000
    reading = meter.stop()
    assert reading.method == {"cpu": "rapl", "gpu": "nvml", "ram": "rapl"}
    assert (reading.cpu_energy_kwh * 3.6e6, reading.gpu_energy_kwh * 3.6e6) == pytest.approx(
        (40.0, 70.0)
    )
