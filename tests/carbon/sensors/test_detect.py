"""Detection: every reader probed under a root, the best one chosen, the reason for the rest.

Fixture trees are the documented layouts of the reader tests (kernel powercap.rst for RAPL,
kernel hwmon/ina3221.rst and NVIDIA's Jetson Linux / L4T guides for INA3221, a real Pi 5's
``vcgencmd pmic_read_adc`` output). Also the Ray actor's ``"auto"`` meter built from a root,
without Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import (
    CODECARBON,
    SensorError,
    SensorMeter,
    detect_sensors,
    meter_for,
)
from carbonedge.carbon.sensors.fixtures import (
    write_jetson_hwmon,
    write_pi5,
    write_rapl,
)
from carbonedge.fleet.ray_actor import is_meter_spec, make_meter
from carbonedge.fleet.spec import PowerProfile

from .fakes import FakeGpu, FakeNvml

PI5_PROFILE = PowerProfile("linear", 1.8, 7.9, "device profile raspberry-pi-5")


def test_board_sensor_wins_and_the_rest_say_why(tmp_path: Path) -> None:
    write_rapl(tmp_path)
    write_jetson_hwmon(tmp_path)
    d = detect_sensors(tmp_path, power_profile=PI5_PROFILE)
    assert d.chosen == ("ina3221",)
    assert d.probe("rapl").available  # present, but the board rail already contains the SoC
    assert "not found" in d.probe("pi5-pmic").detail
    assert "not probed" in d.probe("nvml").detail and "not probed" in d.probe(CODECARBON).detail
    assert d.summary().startswith("using ina3221 (not available: pi5-pmic:")
    assert d.probe("rapl").sensor is not None
    with pytest.raises(SensorError, match="after close"):  # not chosen: closed
        d.probe("rapl").sensor.read()  # type: ignore[union-attr]


def test_pi5(tmp_path: Path) -> None:
    write_pi5(tmp_path)
    assert detect_sensors(tmp_path).chosen == ("pi5-pmic",)


def test_nvml_without_rapl_takes_the_profile_for_the_cpu(tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu("NVIDIA T4", 0)])
    clock = FakeClock()
    d = detect_sensors(
        tmp_path, nvml=nvml, power_profile=PI5_PROFILE, utilisation=lambda: 0.0, clock=clock
    )
    assert d.chosen == ("nvml", "power-profile")
    meter = SensorMeter(d.sensors(), background=False, clock=clock)
    meter.start()
    clock.advance(2.0)
    nvml.gpus[0].energy_mj = 50_000
    r = meter.stop()
    assert r.method == {"cpu": "power-profile", "gpu": "nvml", "ram": "included-in-cpu"}
    assert (r.cpu_energy_kwh * 3.6e6, r.gpu_energy_kwh * 3.6e6) == pytest.approx((3.6, 50.0))
    assert detect_sensors(tmp_path, nvml=nvml).chosen == ("nvml",)  # no profile, no CodeCarbon


def test_profile_then_nothing(tmp_path: Path) -> None:
    assert detect_sensors(tmp_path, power_profile=PI5_PROFILE).chosen == ("power-profile",)
    zero = PowerProfile("linear", 0.0, 0.0, "measured")
    d = detect_sensors(tmp_path, power_profile=zero)
    assert d.chosen == () and d.label == "none"
    with pytest.raises(SensorError, match=r"no power sensor and no fallback under .*rapl: "):
        meter_for(d)


def test_this_host_says_what_it_lacks() -> None:
    d = detect_sensors("/", codecarbon=True)
    rapl = d.probe("rapl")
    if not Path("/sys/class/powercap").exists():
        assert not rapl.available and "no powercap directory" in rapl.detail
    if not d.probe("nvml").available:
        assert "NVML" in d.probe("nvml").detail
    assert d.chosen  # something always measures or models a machine with codecarbon installed
    for p in d.probes:
        if p.sensor is not None:
            p.sensor.close()


def test_node_meter_auto_root(tmp_path: Path) -> None:
    write_jetson_hwmon(tmp_path)
    assert is_meter_spec(f"auto:{tmp_path}") and is_meter_spec("auto")
    assert not is_meter_spec("auto:") and not is_meter_spec("rapl")
    meter = make_meter(f"auto:{tmp_path}", idle_w=1.0, max_w=5.0, cpu_quota=1.0)
    meter.start()
    reading = meter.stop()
    assert reading.method["cpu"] == "ina3221"
    assert reading.info.details["root"] == str(tmp_path)
    assert reading.info.details["sensors"] == "ina3221"


def test_node_meter_auto_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONEDGE_SENSOR_ROOT", str(tmp_path))  # empty tree: the profile
    meter = make_meter("auto", idle_w=1.0, max_w=5.0, cpu_quota=1.0)
    meter.start()
    reading = meter.stop()
    assert reading.method["cpu"] == "power-profile"
