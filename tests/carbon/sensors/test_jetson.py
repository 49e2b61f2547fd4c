"""Jetson INA3221 reader against sysfs trees in both documented layouts.

- hwmon layout: Linux kernel Documentation/hwmon/ina3221.rst, "Sysfs entries":
  ``in[123]_label`` (voltage channel labels), ``in[123]_input`` (bus voltage, mV),
  ``curr[123]_input`` (current, mA), ``in7_label`` (sum of shunt voltages); NVIDIA Jetson Linux
  Developer Guide r35/r36, Jetson Orin Nano/NX power monitor at I2C 0x40, read at
  ``/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon<x>``, rails ``VDD_IN``,
  ``VDD_CPU_GPU_CV``, ``VDD_SOC``.
- iio layout: NVIDIA L4T 32.x Development Guide, Power Management for Jetson Nano Devices:
  ``/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_<x>``, ``in_power<x>_input``
  (mW), ``in_current<x>_input`` (mA), ``in_voltage<x>_input`` (mV); rails ``POM_5V_IN``,
  ``POM_5V_GPU``, ``POM_5V_CPU``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import INCLUDED_IN_CPU, Ina3221Sensor, SensorError, SensorMeter
from carbonedge.carbon.sensors.fixtures import write_jetson_hwmon, write_jetson_iio
from carbonedge.carbon.sensors.sysfs import read_file


def test_orin_hwmon_layout_input_rail_is_the_total(tmp_path: Path) -> None:
    hw = write_jetson_hwmon(tmp_path)
    assert (tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040").is_symlink()
    assert hw.name == "hwmon3" and (hw / "in7_label").read_text() == "sum of shunt voltages\n"
    clock = FakeClock()
    sensor = Ina3221Sensor(tmp_path, clock=clock)
    rails = {r.name: r for r in sensor.rails()}
    assert list(rails) == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert rails["VDD_IN"].component == "cpu"
    assert rails["VDD_IN"].covered == ("cpu", "gpu", "ram")
    assert rails["VDD_SOC"].component == ""  # inside VDD_IN: reported, not summed
    sample = sensor.read()
    assert sample.values["VDD_IN"].power_w == pytest.approx(5072 * 1064 / 1e6)
    meter = SensorMeter([sensor], background=False, clock=clock)
    meter.start()
    clock.advance(10.0)
    reading = meter.stop()
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(5072 * 1064 / 1e6 * 10.0)
    assert reading.method == {"cpu": "ina3221", "gpu": INCLUDED_IN_CPU, "ram": INCLUDED_IN_CPU}
    assert meter.rail_energy_j["ina3221:VDD_SOC"] == pytest.approx(5064 * 312 / 1e6 * 10.0)


def test_nano_iio_layout_reads_in_power(tmp_path: Path) -> None:
    iio = write_jetson_iio(tmp_path)
    (iio / "in_power0_input").write_text("2500\n")  # mW, deliberately not V x I
    sensor = Ina3221Sensor(tmp_path)
    assert [r.name for r in sensor.rails()] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
    assert [r.component for r in sensor.rails()] == ["cpu", "", ""]
    assert sensor.read().values["POM_5V_IN"].power_w == pytest.approx(2.5)


def test_iio_without_in_power_uses_voltage_times_current(tmp_path: Path) -> None:
    iio = write_jetson_iio(tmp_path)
    for c in range(3):
        (iio / f"in_power{c}_input").unlink()
    assert Ina3221Sensor(tmp_path).read().values["POM_5V_GPU"].power_w == pytest.approx(
        5040 * 40 / 1e6
    )


def test_board_without_input_rail_sums_all_and_skips_nc(tmp_path: Path) -> None:
    # AGX Xavier style: disjoint supply rails, a not-connected third channel.
    write_jetson_hwmon(tmp_path, {"GPU": (5000, 400), "CPU": (5000, 300)})
    sensor = Ina3221Sensor(tmp_path)
    assert [(r.name, r.component) for r in sensor.rails()] == [("GPU", "cpu"), ("CPU", "cpu")]
    values = sensor.read().values
    assert set(values) == {"GPU", "CPU"}  # "NC" is not a rail


def test_total_rails_override(tmp_path: Path) -> None:
    write_jetson_hwmon(tmp_path)
    sensor = Ina3221Sensor(tmp_path, total_rails=["VDD_CPU_GPU_CV", "VDD_SOC"])
    assert [r.component for r in sensor.rails()] == ["", "cpu", "cpu"]
    with pytest.raises(SensorError, match=r"total_rails \['VDD_GPU'\] not among"):
        Ina3221Sensor(tmp_path, total_rails=["VDD_GPU"])


def test_missing_rail_file_after_start(tmp_path: Path) -> None:
    hw = write_jetson_hwmon(tmp_path)
    sensor = Ina3221Sensor(tmp_path)
    (hw / "curr1_input").unlink()
    with pytest.raises(SensorError, match=r"hwmon3/curr1_input: missing"):
        sensor.read()


def test_no_jetson(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="no INA3221 rails"):
        Ina3221Sensor(tmp_path)


@pytest.mark.parametrize("garbage", ["--", "", "1e999", "5 V"])
def test_garbage_value(tmp_path: Path, garbage: str) -> None:
    hw = write_jetson_hwmon(tmp_path)
    sensor = Ina3221Sensor(tmp_path)
    (hw / "in1_input").write_text(garbage + "\n")
    with pytest.raises(SensorError, match=r"in1_input: (not a number|implausible)"):
        sensor.read()


def test_permission_denied_mode_000_and_opener(tmp_path: Path) -> None:
    hw = write_jetson_hwmon(tmp_path)
    (hw / "curr2_input").chmod(0o000)  # readable anyway when the tests run as root

    def opener(path: Path) -> str:
        if path.stat().st_mode & 0o777 == 0:
            raise PermissionError(13, "Permission denied", str(path))
        return read_file(path)

    sensor = Ina3221Sensor(tmp_path, opener=opener)
    with pytest.raises(SensorError, match=r"curr2_input: permission denied"):
        sensor.read()


def test_negative_current_noise_is_zero_power(tmp_path: Path) -> None:
    hw = write_jetson_hwmon(tmp_path)
    (hw / "curr3_input").write_text("-8\n")  # the INA3221 is bidirectional: noise near 0 A
    assert Ina3221Sensor(tmp_path).read().values["VDD_SOC"].power_w == 0.0
