"""NVIDIA Jetson boards through their INA3221 power monitors in sysfs (method ``ina3221``).

Two layouts exist, and both are read:

- **hwmon** (mainline ``ina3221`` driver; Jetson Linux 34+, Orin and Xavier on JetPack 5/6):
  ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/`` with, per channel c = 1..3,
  ``in<c>_label`` (rail name; ``NC`` when not connected), ``in<c>_input`` (bus voltage, mV) and
  ``curr<c>_input`` (current, mA). Source: Linux kernel, Documentation/hwmon/ina3221.rst
  ("Sysfs entries"), and NVIDIA Jetson Linux Developer Guide (r35/r36), Platform Power and
  Performance, "Jetson Orin Nano Series, Jetson Orin NX Series and Jetson AGX Orin Series":
  the INA3221 at I2C address 0x40, read at ``/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon<x>``
  (rails ``VDD_IN``, ``VDD_CPU_GPU_CV``, ``VDD_SOC`` on Orin Nano/NX).
- **iio** (NVIDIA's L4T ``ina3221x`` driver; L4T 32.x, Jetson Nano/TX1/TX2):
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/`` with, per channel c = 0..2,
  ``rail_name_<c>``, ``in_power<c>_input`` (mW), ``in_current<c>_input`` (mA) and
  ``in_voltage<c>_input`` (mV). Source: NVIDIA L4T 32.x Development Guide, "Power Management
  for Jetson Nano Devices", Software-Based Power Consumption Modeling (Jetson Nano:
  ``/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0``, rails ``POM_5V_IN``, ``POM_5V_GPU``,
  ``POM_5V_CPU``). ``in_power`` is used; voltage x current where it is absent.

Power per rail is voltage x current. What is summed: the module's input rail (``VDD_IN``,
``POM_5V_IN`` or ``5V_IN``), which already contains every other rail, feeds ``cpu`` and covers
the GPU and DRAM too (``gpu`` and ``ram`` are labelled ``included-in-cpu``); the other rails are
reported only. Boards without an input rail (AGX Xavier, AGX Orin) have disjoint supply rails,
which are all summed, as ``energymon``'s Jetson reader does. ``total_rails`` overrides the choice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from carbonedge.carbon.sensors.base import Rail, RailValue, SensorError, SensorSample
from carbonedge.carbon.sensors.sysfs import Opener, read_file, read_label, read_number

HWMON_DIR = "sys/bus/i2c/drivers/ina3221"
IIO_DIR = "sys/bus/i2c/drivers/ina3221x"
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")
_BUS_ADDR = re.compile(r"^\d+-[0-9a-fA-F]{4}$")
ALL_COMPONENTS = ("cpu", "gpu", "ram")


@dataclass(frozen=True)
class _Channel:
    name: str
    power_file: Path | None  # iio layout: in_power<c>_input (mW)
    volt_file: Path  # mV
    curr_file: Path  # mA


def _hwmon_channels(root: Path, opener: Opener) -> list[_Channel]:
    out: list[_Channel] = []
    base = root / HWMON_DIR
    for dev in sorted(p for p in base.glob("*") if _BUS_ADDR.match(p.name)):
        for hw in sorted((dev / "hwmon").glob("hwmon*")):
            for c in (1, 2, 3):
                label_file = hw / f"in{c}_label"
                if not label_file.exists():
                    continue
                name = read_label(label_file, opener)
                if name and name != "NC":
                    out.append(_Channel(name, None, hw / f"in{c}_input", hw / f"curr{c}_input"))
    return out


def _iio_channels(root: Path, opener: Opener) -> list[_Channel]:
    out: list[_Channel] = []
    base = root / IIO_DIR
    for dev in sorted(p for p in base.glob("*") if _BUS_ADDR.match(p.name)):
        for iio in sorted(dev.glob("iio:device*")):
            for c in (0, 1, 2):
                label_file = iio / f"rail_name_{c}"
                if not label_file.exists():  # channel not connected
                    continue
                name = read_label(label_file, opener)
                power = iio / f"in_power{c}_input"
                out.append(
                    _Channel(
                        name,
                        power if power.exists() else None,
                        iio / f"in_voltage{c}_input",
                        iio / f"in_current{c}_input",
                    )
                )
    return out


class Ina3221Sensor:
    """A :class:`~carbonedge.carbon.sensors.base.PowerSensor` over a Jetson's INA3221 rails."""

    method = "ina3221"

    def __init__(
        self,
        root: str | Path = "/",
        *,
        total_rails: Sequence[str] | None = None,
        opener: Opener = read_file,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        root = Path(root)
        channels = _hwmon_channels(root, opener) or _iio_channels(root, opener)
        if not channels:
            raise SensorError(
                f"{root / HWMON_DIR} or {root / IIO_DIR}: no INA3221 rails (not a Jetson?)"
            )
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise SensorError(f"INA3221: duplicate rail names {names}")
        if total_rails is not None:
            missing = sorted(set(total_rails) - set(names))
            if missing or not total_rails:
                raise SensorError(f"INA3221: total_rails {missing or '[]'} not among {names}")
            summed = list(total_rails)
        else:
            inputs = [n for n in names if n in INPUT_RAILS]
            summed = inputs[:1] or names
        self._summed = tuple(summed)
        self._channels = channels
        self._opener = opener
        self._clock = clock
        self._closed = False

    def rails(self) -> tuple[Rail, ...]:
        return tuple(
            Rail(
                c.name,
                "cpu" if c.name in self._summed else "",
                "power",
                str(c.power_file or c.curr_file.parent),
                ALL_COMPONENTS if c.name in self._summed else (),
            )
            for c in self._channels
        )

    def read(self) -> SensorSample:
        """Every rail's power in W (in_power mW / 1000, or mV x mA / 1e6).

        The INA3221 measures current both ways: near 0 A its shunt noise can read a few mA
        below zero, so a negative power is taken as 0 W, never as negative energy.
        """
        if self._closed:
            raise SensorError("INA3221 sensor read after close()")
        values = {}
        for c in self._channels:
            if c.power_file is not None:
                watts = read_number(c.power_file, self._opener, allow_negative=True) / 1e3
            else:
                mv = read_number(c.volt_file, self._opener)
                ma = read_number(c.curr_file, self._opener, allow_negative=True)
                watts = mv * ma / 1e6
            values[c.name] = RailValue(power_w=max(watts, 0.0))
        return SensorSample(self._clock(), values)

    def close(self) -> None:
        self._closed = True
