"""The power-sensor interface: what a node's own hardware says it draws (paper III.B.1).

A :class:`PowerSensor` reads one kind of hardware (RAPL counters, NVML, a Jetson's INA3221, a
Raspberry Pi 5's PMIC) or a documented model, and names its figures with a method label:

- ``rapl``: Intel/AMD RAPL energy counters in ``/sys/class/powercap`` (measured);
- ``nvml``: NVIDIA NVML energy counter or power samples (measured);
- ``ina3221``: a Jetson board's INA3221 power monitors, voltage x current per rail (measured);
- ``pi5-pmic``: a Raspberry Pi 5's PMIC ADCs through ``vcgencmd pmic_read_adc`` (measured);
- ``power-profile``: the node's ``idle_w + (max_w - idle_w) x utilisation`` (modelled).

CodeCarbon (``cpu-load-model`` where it has no sensor) is the other fallback; it is an
:class:`~carbonedge.carbon.energy.EnergyMeter`, not a sensor (see ``detect``).

A sensor reports *rails*. A rail is either a cumulative energy counter (``energy_j``, already
corrected for wrap-around, never decreasing) or an instantaneous power (``power_w``). Each rail
says which component of an :class:`~carbonedge.carbon.energy.EnergyReading` it feeds (``cpu``,
``gpu``, ``ram``) and which components its figure *covers*: a Jetson's ``VDD_IN`` feeds ``cpu``
but covers the GPU and DRAM too, so the reading labels ``gpu`` and ``ram`` as
``included-in-cpu`` instead of ``none``. A rail with component ``""`` is reported but not summed
because another rail already contains it (RAPL ``core`` inside ``package-0``, a Jetson's
``VDD_SOC`` inside ``VDD_IN``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from carbonedge.carbon.errors import MeterError

RailKind = Literal["energy", "power"]

#: Method label of a component whose energy is inside the ``cpu`` figure (a whole-board rail).
INCLUDED_IN_CPU = "included-in-cpu"

SENSOR_METHODS = ("rapl", "nvml", "ina3221", "pi5-pmic", "power-profile")


class SensorError(MeterError):
    """A sensor cannot be read: missing rail, permission denied, garbage, counter backwards.

    The message names the file, command or call at fault and what to do about it.
    """


@dataclass(frozen=True)
class Rail:
    """One measured quantity of a sensor.

    ``name`` is what the device calls it (``package-0``, ``VDD_IN``, ``VDD_CORE``, ``gpu0``);
    ``component`` the reading component it is summed into (``cpu``, ``gpu``, ``ram``, or ``""``
    for reported-only); ``covers`` the components its figure contains (default: its own);
    ``kind`` whether it is a cumulative ``energy`` counter (J) or an instantaneous ``power`` (W);
    ``source`` the file or call it is read from.
    """

    name: str
    component: str
    kind: RailKind
    source: str
    covers: tuple[str, ...] = ()

    @property
    def covered(self) -> tuple[str, ...]:
        """Components inside this rail's figure (``covers``, else its own component)."""
        return self.covers or ((self.component,) if self.component else ())


@dataclass(frozen=True)
class RailValue:
    """One rail at one instant: ``energy_j`` (cumulative J since the sensor's first read,
    wrap-corrected) for counters, ``power_w`` (W) for power rails; the other is ``None``."""

    energy_j: float | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class SensorSample:
    """All rails of a sensor read at ``t_s`` (seconds on the sensor's monotonic clock)."""

    t_s: float
    values: Mapping[str, RailValue]


class PowerSensor(Protocol):
    """A node's power or energy sensor (see the module docstring)."""

    @property
    def method(self) -> str:
        """Method label of every figure this sensor gives (``rapl``, ``ina3221``, ...)."""
        ...

    def rails(self) -> tuple[Rail, ...]:
        """The rails :meth:`read` returns, in a stable order."""
        ...

    def read(self) -> SensorSample:
        """Read every rail now; raises :class:`SensorError` with the reason on failure."""
        ...

    def close(self) -> None:
        """Release the sensor (NVML's ``nvmlShutdown``); reading after close is an error."""
        ...


def checked_number(value: float, what: str, *, allow_negative: bool = False) -> float:
    """``value`` if finite (and >= 0 unless ``allow_negative``), else a SensorError naming
    ``what`` (a file, rail or call)."""
    if not math.isfinite(value) or (value < 0 and not allow_negative):
        raise SensorError(f"{what}: implausible value {value!r}")
    return value


def parse_number(text: str, what: str, *, allow_negative: bool = False) -> float:
    """The number in ``text`` (one sysfs value or a parsed field); garbage is a SensorError."""
    try:
        value = float(text.strip())
    except ValueError:
        raise SensorError(f"{what}: not a number: {text.strip()[:40]!r}") from None
    return checked_number(value, what, allow_negative=allow_negative)


class Counter:
    """Turns a raw cumulative counter into energy (J) since the first update, never decreasing.

    ``range_j``: the value at which the hardware counter wraps to 0 (RAPL's
    ``max_energy_range_uj``); a smaller raw value than the last one is then one wrap (the
    counter must be read at least once per wrap period: minutes at full load). Without a range
    (NVML's 64-bit counter) a smaller value means the counter was reset (driver reloaded): a
    SensorError, after which counting resumes from the new value.
    """

    def __init__(self, what: str, range_j: float | None = None) -> None:
        self.what = what
        self.range_j = range_j
        self._last_j: float | None = None
        self.total_j = 0.0

    def update(self, raw_j: float) -> float:
        """Feed a raw reading (J); return the energy since the first reading (J)."""
        raw_j = checked_number(raw_j, self.what)
        if self.range_j is not None and raw_j > self.range_j:
            raise SensorError(
                f"{self.what}: {raw_j:.6f} J exceeds the counter's range {self.range_j:.6f} J"
            )
        last, self._last_j = self._last_j, raw_j
        if last is None:
            return self.total_j
        delta = raw_j - last
        if delta < 0:
            if self.range_j is None:
                raise SensorError(
                    f"{self.what}: counter went backwards ({last:.3f} J -> {raw_j:.3f} J; "
                    "driver reloaded or counter reset?); the energy since the previous read "
                    "is lost, counting resumes from the new value"
                )
            delta += self.range_j  # one wrap-around
        self.total_j += delta
        return self.total_j
