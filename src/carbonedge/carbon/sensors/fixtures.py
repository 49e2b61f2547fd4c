"""Fixture trees laid out as the devices document them, for tests and demos without hardware.

``carbonedge sensors --root DIR`` and ``RayFleet(meter="auto:DIR")`` read them like a real
``/``. Each writer creates only what the reader's documentation describes (cited in each
reader's module docstring) plus a few neighbouring attributes a real tree has:

- :func:`write_rapl`: ``sys/devices/virtual/powercap/intel-rapl/intel-rapl:N[:M]`` zones with
  ``name``, ``energy_uj``, ``max_energy_range_uj``, ``max_power_range_uw``, ``enabled``, linked
  from ``sys/class/powercap`` as on a real host (kernel powercap.rst);
- :func:`write_jetson_hwmon`: ``sys/bus/i2c/drivers/ina3221/1-0040`` -> the device directory
  with ``hwmon/hwmon3/in{1,2,3}_label``, ``in{c}_input`` (mV), ``curr{c}_input`` (mA),
  ``in7_label`` (sum of shunt voltages), ``update_interval`` (Jetson Orin, Jetson Linux r35/36);
- :func:`write_jetson_iio`: ``sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0`` with
  ``rail_name_{0,1,2}``, ``in_power{c}_input`` (mW), ``in_current{c}_input`` (mA),
  ``in_voltage{c}_input`` (mV) (Jetson Nano, L4T 32.x);
- :func:`write_pi5`: ``usr/bin/vcgencmd``, a shell script answering ``pmic_read_adc`` with the
  text in ``pmic_read_adc.txt`` beside the tree's root (edit it to change the readings).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

#: Real ``vcgencmd pmic_read_adc`` output of a Raspberry Pi 5, as published at
#: gist.github.com/cleverca22/95d2cb2f4e1f59be2bd94f0e1d446cc9 (names padded with leading
#: spaces, as the firmware prints them).
PI5_PMIC_ADC_SAMPLE = "".join(
    f"{name:>16} {kind}({adc})={value}\n"
    for name, kind, adc, value in (
        ("3V7_WL_SW_A", "current", 0, "0.04782057A"),
        ("3V3_SYS_A", "current", 1, "0.04684464A"),
        ("1V8_SYS_A", "current", 2, "0.17078780A"),
        ("DDR_VDD2_A", "current", 3, "0.02049453A"),
        ("DDR_VDDQ_A", "current", 4, "0.00000000A"),
        ("1V1_SYS_A", "current", 5, "0.18933040A"),
        ("0V8_SW_A", "current", 6, "0.32888840A"),
        ("VDD_CORE_A", "current", 7, "0.92871990A"),
        ("3V3_DAC_A", "current", 17, "0.00054945A"),
        ("3V3_ADC_A", "current", 18, "0.00018315A"),
        ("0V8_AON_A", "current", 16, "0.00586080A"),
        ("HDMI_A", "current", 22, "0.01636140A"),
        ("3V7_WL_SW_V", "volt", 8, "3.70534400V"),
        ("3V3_SYS_V", "volt", 9, "3.31467300V"),
        ("1V8_SYS_V", "volt", 10, "1.80903400V"),
        ("DDR_VDD2_V", "volt", 11, "1.10292900V"),
        ("DDR_VDDQ_V", "volt", 12, "0.61575030V"),
        ("1V1_SYS_V", "volt", 13, "1.10512700V"),
        ("0V8_SW_V", "volt", 14, "0.80292960V"),
        ("VDD_CORE_V", "volt", 15, "0.72097620V"),
        ("3V3_DAC_V", "volt", 20, "3.30952000V"),
        ("3V3_ADC_V", "volt", 21, "3.30952000V"),
        ("0V8_AON_V", "volt", 19, "0.79765500V"),
        ("HDMI_V", "volt", 23, "5.16034000V"),
        ("EXT5V_V", "volt", 24, "5.17105900V"),
        ("BATT_V", "volt", 25, "0.00598290V"),
    )
)

#: ``max_energy_range_uj`` of a package zone on a typical Intel client CPU (2^32 energy units
#: of 61.035 uJ): the counter wraps after about 262 kJ.
RAPL_RANGE_UJ = 262143328850


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(target, link.parent))


def write_rapl(
    root: str | Path,
    zones: Mapping[str, tuple[str, int]] | None = None,
    *,
    range_uj: int = RAPL_RANGE_UJ,
) -> Path:
    """RAPL zones under ``root``; ``zones``: zone id -> (name, energy_uj), e.g.
    ``{"intel-rapl:0": ("package-0", 1000), "intel-rapl:0:0": ("core", 400), ...}``.
    Default: package-0 with core, uncore and dram subzones. Returns the control-type dir."""
    zones = zones or {
        "intel-rapl:0": ("package-0", 10_000_000),
        "intel-rapl:0:0": ("core", 6_000_000),
        "intel-rapl:0:1": ("uncore", 1_000_000),
        "intel-rapl:0:2": ("dram", 2_000_000),
    }
    control = Path(root) / "sys/devices/virtual/powercap/intel-rapl"
    _write(control / "enabled", "1")
    _link(Path(root) / "sys/class/powercap/intel-rapl", control)
    for zone, (name, energy_uj) in zones.items():
        parent = zone.rsplit(":", 1)[0] if zone.count(":") == 2 else None
        d = control / parent / zone if parent else control / zone
        _write(d / "name", name)
        _write(d / "energy_uj", str(energy_uj))
        _write(d / "max_energy_range_uj", str(range_uj))
        _write(d / "max_power_range_uw", "0" if parent else "65000000")
        _write(d / "enabled", "1")
        _link(Path(root) / "sys/class/powercap" / zone, d)
    return control


def set_rapl_energy(root: str | Path, zone: str, energy_uj: int) -> None:
    """Set zone ``zone``'s ``energy_uj`` (through its /sys/class/powercap link)."""
    (Path(root) / "sys/class/powercap" / zone / "energy_uj").write_text(f"{energy_uj}\n")


def write_jetson_hwmon(
    root: str | Path, rails: Mapping[str, tuple[int, int]] | None = None
) -> Path:
    """INA3221 hwmon channels: rail -> (bus mV, mA), up to three, channel 1 first; ``NC`` fills
    unused channels. Default: a Jetson Orin Nano near idle. Returns the hwmon directory."""
    rails = rails or {"VDD_IN": (5072, 1064), "VDD_CPU_GPU_CV": (5064, 184), "VDD_SOC": (5064, 312)}
    if len(rails) > 3:
        raise ValueError("an INA3221 has three channels")
    device = Path(root) / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"
    hw = device / "hwmon/hwmon3"
    _write(hw / "name", "ina3221")
    _write(hw / "update_interval", "1")
    _write(hw / "in7_label", "sum of shunt voltages")
    _write(hw / "in7_input", "0")
    items = list(rails.items()) + [("NC", (0, 0))] * (3 - len(rails))
    for c, (name, (mv, ma)) in enumerate(items, start=1):
        _write(hw / f"in{c}_label", name)
        _write(hw / f"in{c}_input", str(mv))
        _write(hw / f"curr{c}_input", str(ma))
        _write(hw / f"in{c + 3}_input", "0")  # shunt voltage, uV
    _link(Path(root) / "sys/bus/i2c/drivers/ina3221/1-0040", device)
    return hw


def write_jetson_iio(root: str | Path, rails: Mapping[str, tuple[int, int]] | None = None) -> Path:
    """L4T ``ina3221x`` iio channels: rail -> (mV, mA); ``in_power`` = mV x mA / 1000 (mW).
    Default: a Jetson Nano (POM_5V_IN, POM_5V_GPU, POM_5V_CPU). Returns the iio directory."""
    rails = rails or {"POM_5V_IN": (5048, 416), "POM_5V_GPU": (5040, 40), "POM_5V_CPU": (5040, 120)}
    iio = Path(root) / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    _write(iio / "name", "ina3221x")
    for c, (name, (mv, ma)) in enumerate(rails.items()):
        _write(iio / f"rail_name_{c}", name)
        _write(iio / f"in_voltage{c}_input", str(mv))
        _write(iio / f"in_current{c}_input", str(ma))
        _write(iio / f"in_power{c}_input", str(mv * ma // 1000))
    return iio


def write_pi5(root: str | Path, output: str = PI5_PMIC_ADC_SAMPLE) -> Path:
    """``root/usr/bin/vcgencmd`` printing ``root/pmic_read_adc.txt`` (= ``output``) for
    ``pmic_read_adc``; other commands fail as on an older board. Returns the text file."""
    root = Path(root)
    text = _write(root / "pmic_read_adc.txt", output)
    script = root / "usr/bin/vcgencmd"
    _write(
        script,
        "#!/bin/sh\n"
        'here="$(cd "$(dirname "$0")/../.." && pwd)"\n'
        'if [ "$1" = pmic_read_adc ]; then cat "$here/pmic_read_adc.txt"; exit 0; fi\n'
        'echo "error=1 error_msg=\\"Command not registered\\"" >&2\nexit 255\n',
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return text
