"""Raspberry Pi 5 PMIC reader against ``vcgencmd pmic_read_adc`` output.

The output is a real Pi 5's, as published at
gist.github.com/cleverca22/95d2cb2f4e1f59be2bd94f0e1d446cc9 (one line per ADC channel:
``<RAIL>_A current(<n>)=<amps>A`` and ``<RAIL>_V volt(<n>)=<volts>V``; ``EXT5V_V`` and ``BATT_V``
have no current). Raspberry Pi's own vcgencmd documentation does not describe this command;
CodeCarbon's ``Raspberry`` reader parses the same lines. The command runner is injected, and one
test runs the fixture's ``usr/bin/vcgencmd`` script for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from carbonedge.carbon.fakes import FakeClock
from carbonedge.carbon.sensors import Pi5PmicSensor, SensorError, SensorMeter, parse_pmic_adc
from carbonedge.carbon.sensors.fixtures import PI5_PMIC_ADC_SAMPLE, write_pi5
from carbonedge.carbon.sensors.pi5 import run_command

# V x I of the sample, by hand: every rail with both readings.
EXPECTED_W = {
    "3V7_WL_SW": 0.04782057 * 3.70534400,
    "3V3_SYS": 0.04684464 * 3.31467300,
    "1V8_SYS": 0.17078780 * 1.80903400,
    "DDR_VDD2": 0.02049453 * 1.10292900,
    "DDR_VDDQ": 0.0,
    "1V1_SYS": 0.18933040 * 1.10512700,
    "0V8_SW": 0.32888840 * 0.80292960,
    "VDD_CORE": 0.92871990 * 0.72097620,
    "3V3_DAC": 0.00054945 * 3.30952000,
    "3V3_ADC": 0.00018315 * 3.30952000,
    "0V8_AON": 0.00586080 * 0.79765500,
    "HDMI": 0.01636140 * 5.16034000,
}


def runner_of(*outputs: str) -> tuple[list[list[str]], object]:
    calls: list[list[str]] = []
    it = iter(outputs)

    def run(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        return next(it)

    return calls, run


def test_parse_sample_every_rail_volt_times_current() -> None:
    assert PI5_PMIC_ADC_SAMPLE.splitlines()[0] == "     3V7_WL_SW_A current(0)=0.04782057A"
    watts = parse_pmic_adc(PI5_PMIC_ADC_SAMPLE)
    assert watts == pytest.approx(EXPECTED_W)
    assert "EXT5V" not in watts and "BATT" not in watts  # voltage only


def test_sensor_components_and_energy() -> None:
    calls, run = runner_of(*[PI5_PMIC_ADC_SAMPLE] * 4)
    clock = FakeClock()
    sensor = Pi5PmicSensor(runner=run, vcgencmd="/usr/bin/vcgencmd", clock=clock)  # type: ignore[arg-type]
    assert calls[0] == ["/usr/bin/vcgencmd", "pmic_read_adc"]
    comp = {r.name: r.component for r in sensor.rails()}
    assert comp["VDD_CORE"] == "cpu" and comp["DDR_VDD2"] == "ram" and comp["HDMI"] == ""
    meter = SensorMeter([sensor], background=False, clock=clock)
    meter.start()
    clock.advance(4.0)
    meter.poll()
    clock.advance(4.0)
    reading = meter.stop()
    ram_w = EXPECTED_W["DDR_VDD2"] + EXPECTED_W["DDR_VDDQ"]
    cpu_w = sum(EXPECTED_W.values()) - ram_w - EXPECTED_W["HDMI"]
    assert reading.cpu_energy_kwh * 3.6e6 == pytest.approx(cpu_w * 8.0)
    assert reading.ram_energy_kwh * 3.6e6 == pytest.approx(ram_w * 8.0)
    assert reading.method == {"cpu": "pi5-pmic", "gpu": "included-in-cpu", "ram": "pi5-pmic"}
    assert 1.5 < cpu_w < 2.0  # an idle Pi 5's PMIC rails


def test_fixture_script_runs_as_vcgencmd(tmp_path: Path) -> None:
    text = write_pi5(tmp_path)
    sensor = Pi5PmicSensor(tmp_path)  # runs tmp_path/usr/bin/vcgencmd pmic_read_adc
    assert sensor.read().values["VDD_CORE"].power_w == pytest.approx(EXPECTED_W["VDD_CORE"])
    text.write_text(PI5_PMIC_ADC_SAMPLE.replace("0.92871990A", "2.00000000A"))
    assert sensor.read().values["VDD_CORE"].power_w == pytest.approx(2.0 * 0.72097620)


def test_older_board_or_no_vcgencmd(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="vcgencmd: not found"):
        Pi5PmicSensor(tmp_path)
    write_pi5(tmp_path, output="")  # the command exists but prints no rail (not a Pi 5)
    with pytest.raises(SensorError, match="no rail with both a current and a voltage"):
        Pi5PmicSensor(tmp_path)
    # what a Pi 4's firmware answers to a command it does not have
    with pytest.raises(SensorError, match=r"exit 255: .*Command not registered"):
        run_command([str(tmp_path / "usr/bin/vcgencmd"), "pmic_read_adc_v2"])


@pytest.mark.parametrize(
    "bad",
    [
        "VDD_CORE_A current(7)=abcA",
        "VDD_CORE_A current(7)=nanA",
        "VDD_CORE_V volt(15)=-0.7V",
        "VDD_CORE_A current(7)=A",
    ],
)
def test_garbage_reading_is_a_clear_error(bad: str) -> None:
    with pytest.raises(SensorError, match="implausible reading"):
        parse_pmic_adc(PI5_PMIC_ADC_SAMPLE + bad + "\n")


def test_missing_rail_in_a_later_read() -> None:
    without_core = "\n".join(
        line for line in PI5_PMIC_ADC_SAMPLE.splitlines() if "VDD_CORE_V" not in line
    )
    _, run = runner_of(PI5_PMIC_ADC_SAMPLE, without_core)
    sensor = Pi5PmicSensor(runner=run, vcgencmd="vcgencmd")  # type: ignore[arg-type]
    with pytest.raises(SensorError, match=r"rail\(s\) VDD_CORE missing"):
        sensor.read()


def test_permission_denied_running_vcgencmd() -> None:
    def run(argv: Sequence[str]) -> str:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(SensorError, match=r"cannot run \(Permission denied"):
        Pi5PmicSensor(runner=run, vcgencmd="vcgencmd")


def test_mode_000_vcgencmd(tmp_path: Path) -> None:
    write_pi5(tmp_path)
    (tmp_path / "usr/bin/vcgencmd").chmod(0o000)  # root may not execute it without any x bit
    with pytest.raises(SensorError, match="permission denied"):
        Pi5PmicSensor(tmp_path)
