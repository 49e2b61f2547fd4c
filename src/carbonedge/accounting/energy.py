"""Energy readings and the meter interface of the Carbon Monitor (paper Section III.B.1).

A meter measures the host over a window (``start()`` .. ``stop()``) and returns an
:class:`EnergyReading`: energy per component in kWh, the power samples it integrated (Eq. 1)
and, per component, *how* the figure was obtained (``method``), one of

- ``rapl``: Intel/AMD RAPL energy counters (measured);
- ``nvml``: NVIDIA NVML power/energy (measured);
- ``ina3221``, ``pi5-pmic``: a Jetson's INA3221 rails, a Raspberry Pi 5's PMIC (measured; see
  :mod:`carbonedge.carbon.sensors`), and ``power-profile``: a node's idle/max power x CPU
  utilisation (modelled); ``included-in-cpu``: inside the ``cpu`` figure (a whole-board rail);
- ``cpu-load-model``: CodeCarbon's model, TDP x CPU load with a 10% floor (modelled);
- ``constant``: a constant power (CodeCarbon's RAM guess, a forced power, a TDP constant);
- ``paper-ram-model``: 0.375 W per GB of RAM, the paper's model (modelled);
- ``none``: the component is absent (0 kWh);
- ``fake``: a deterministic profile, for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from carbonedge.accounting.units import watts

COMPONENTS = ("cpu", "gpu", "ram")


@dataclass(frozen=True)
class PowerSample:
    """Power of each component at ``t_s`` seconds after the window started, in watts.

    For CodeCarbon samples the power is the mean over the interval ending at ``t_s`` (energy
    over the interval divided by its length); for the fake meter it is instantaneous.
    """

    t_s: float
    cpu_w: float
    gpu_w: float
    ram_w: float


@dataclass(frozen=True)
class MeterInfo:
    """What measured: meter name, library version, location and detected hardware."""

    meter: str
    version: str = ""
    country_iso_code: str | None = None
    region: str | None = None
    hardware: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnergyReading:
    """Host energy over one window, per component, in kWh (Eq. 1).

    ``method`` maps ``"cpu"``, ``"gpu"``, ``"ram"`` to how each figure was obtained (see the
    module docstring); ``samples`` are the power samples (W) behind the energy.
    """

    duration_s: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    method: Mapping[str, str]
    samples: tuple[PowerSample, ...] = ()
    info: MeterInfo = field(default_factory=lambda: MeterInfo(meter="unknown"))
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def energy_kwh(self) -> float:
        """Total energy in kWh: CPU + GPU + RAM (Eq. 1)."""
        return self.cpu_energy_kwh + self.gpu_energy_kwh + self.ram_energy_kwh

    @property
    def method_label(self) -> str:
        """One-line label such as ``cpu=cpu-load-model gpu=none ram=constant``."""
        return " ".join(f"{c}={self.method.get(c, 'none')}" for c in COMPONENTS)

    def mean_power_w(self, component: str) -> float:
        """Mean power of ``component`` (``cpu``, ``gpu``, ``ram``) over the window, in W."""
        kwh = {"cpu": self.cpu_energy_kwh, "gpu": self.gpu_energy_kwh, "ram": self.ram_energy_kwh}
        if component not in kwh:
            raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
        return watts(kwh[component], self.duration_s)


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy per component in kWh."""

    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0

    @property
    def energy_kwh(self) -> float:
        """CPU + GPU + RAM energy in kWh."""
        return self.cpu_energy_kwh + self.gpu_energy_kwh + self.ram_energy_kwh


class EnergyMeter(Protocol):
    """Measures host energy over a window: ``start()`` then ``stop()`` -> reading."""

    def start(self) -> None:
        """Begin measuring."""

    def stop(self) -> EnergyReading:
        """Stop measuring and return the energy since ``start()``."""
