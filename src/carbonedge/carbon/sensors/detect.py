"""Which power sensors a node offers, and the best reader among them (``detect_sensors``).

Every reader is probed (built and read once) under ``root`` and reported with what it found or
why not. The choice, best first:

1. ``ina3221`` (a Jetson's module input rail) or ``pi5-pmic`` (a Raspberry Pi 5's PMIC): the
   whole board, measured; used alone.
2. ``rapl`` (CPU packages, DRAM) and/or ``nvml`` (GPUs): measured, disjoint, used together.
   NVML without RAPL takes ``power-profile`` for the CPU side if a profile is given, else
   CodeCarbon (which reads NVML itself and models the CPU), else NVML alone.
3. ``power-profile``: the node's ``idle_w`` / ``max_w`` x host CPU utilisation (modelled;
   preferred to CodeCarbon because a device profile describes the whole board).
4. ``codecarbon``: CodeCarbon's meter, ``cpu-load-model`` where it finds no sensor (modelled).

NVML and CodeCarbon read the real machine, not files, so they are probed only when ``root`` is
``/`` (NVML also when a fake ``nvml`` module is passed). Nothing found and no fallback: an
empty choice, and :func:`meter_for` raises a SensorError listing every reason.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from carbonedge.accounting import EnergyMeter
from carbonedge.carbon.sensors.base import PowerSensor, SensorError
from carbonedge.carbon.sensors.jetson import Ina3221Sensor
from carbonedge.carbon.sensors.meter import SensorMeter
from carbonedge.carbon.sensors.nvml import NvmlSensor
from carbonedge.carbon.sensors.pi5 import Pi5PmicSensor, Runner, run_command
from carbonedge.carbon.sensors.profile import ProfileSensor
from carbonedge.carbon.sensors.rapl import RaplSensor
from carbonedge.carbon.sensors.sysfs import Opener, read_file

CODECARBON = "codecarbon"


class ProfileLike(Protocol):
    """A node power profile (``carbonedge.fleet.spec.PowerProfile`` fits): watts."""

    @property
    def idle_w(self) -> float: ...

    @property
    def max_w(self) -> float: ...

    @property
    def source(self) -> str: ...


@dataclass(frozen=True)
class Probe:
    """One reader's result: ``method`` label, whether it works here, and what it found or why
    not. ``sensor`` is the built sensor when available (already read once)."""

    method: str
    available: bool
    detail: str
    sensor: PowerSensor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Detection:
    """Every probe under ``root`` and the methods chosen (best first; see module docstring)."""

    root: str
    probes: tuple[Probe, ...]
    chosen: tuple[str, ...]

    @property
    def label(self) -> str:
        """The chosen methods joined by ``+`` (``rapl+nvml``), or ``none``."""
        return "+".join(self.chosen) or "none"

    def probe(self, method: str) -> Probe:
        """The probe of ``method``."""
        return next(p for p in self.probes if p.method == method)

    def sensors(self) -> tuple[PowerSensor, ...]:
        """The chosen sensors (CodeCarbon is a meter, not a sensor, and is left out)."""
        return tuple(
            p.sensor for p in self.probes if p.method in self.chosen and p.sensor is not None
        )

    def summary(self) -> str:
        """One line: the choice, then each unavailable reader with its reason."""
        missing = "; ".join(f"{p.method}: {p.detail}" for p in self.probes if not p.available)
        return f"using {self.label}" + (f" (not available: {missing})" if missing else "")


def _probe(method: str, build: Callable[[], PowerSensor]) -> Probe:
    try:
        sensor = build()
    except SensorError as exc:
        return Probe(method, False, str(exc))
    try:
        sample = sensor.read()  # permission and garbage show up on the first read
    except SensorError as exc:
        sensor.close()
        return Probe(method, False, str(exc))
    rails = ", ".join(
        f"{r.name}{'' if r.component else ' (reported only)'}" for r in sensor.rails()
    )
    n = len(sample.values)
    return Probe(method, True, f"{n} rail{'' if n == 1 else 's'}: {rails}", sensor)


def _choose(avail: dict[str, bool]) -> tuple[str, ...]:
    for board in ("ina3221", "pi5-pmic"):
        if avail[board]:
            return (board,)
    if avail["rapl"]:
        return ("rapl", "nvml") if avail["nvml"] else ("rapl",)
    if avail["nvml"]:
        if avail["power-profile"]:
            return ("nvml", "power-profile")
        return (CODECARBON,) if avail[CODECARBON] else ("nvml",)
    for fallback in ("power-profile", CODECARBON):
        if avail[fallback]:
            return (fallback,)
    return ()


def detect_sensors(
    root: str | Path = "/",
    *,
    power_profile: ProfileLike | None = None,
    codecarbon: bool = True,
    nvml: ModuleType | Any | None = None,
    runner: Runner = run_command,
    opener: Opener = read_file,
    clock: Callable[[], float] = time.monotonic,
    utilisation: Callable[[], float] | None = None,
    close_unchosen: bool = True,
) -> Detection:
    """Probe every reader under ``root`` and choose the best (module docstring).

    ``power_profile``: the node's profile for the ``power-profile`` fallback (``max_w > 0``);
    ``codecarbon=False`` leaves CodeCarbon out; ``nvml``, ``runner``, ``opener``, ``clock`` and
    ``utilisation`` are injected into the readers (tests). Sensors not chosen are closed unless
    ``close_unchosen=False`` (the ``sensors`` command reads them all).
    """
    real = Path(root) == Path("/")
    probes = [
        _probe("ina3221", lambda: Ina3221Sensor(root, opener=opener, clock=clock)),
        _probe("pi5-pmic", lambda: Pi5PmicSensor(root, runner=runner, clock=clock)),
        _probe("rapl", lambda: RaplSensor(root, opener=opener, clock=clock)),
    ]
    if real or nvml is not None:
        probes.append(_probe("nvml", lambda: NvmlSensor(nvml, clock=clock)))
    else:
        probes.append(
            Probe("nvml", False, "not probed: root is not / (NVML reads the driver, not files)")
        )
    if power_profile is not None and power_profile.max_w > 0:
        prof = power_profile
        probes.append(
            _probe(
                "power-profile",
                lambda: ProfileSensor(
                    prof.idle_w,
                    prof.max_w,
                    utilisation=utilisation,
                    source=prof.source,
                    clock=clock,
                ),
            )
        )
    else:
        probes.append(Probe("power-profile", False, "no node power profile with max_w > 0"))
    if not codecarbon:
        probes.append(Probe(CODECARBON, False, "left out (codecarbon=False)"))
    elif not real:
        probes.append(
            Probe(CODECARBON, False, "not probed: root is not / (CodeCarbon measures this host)")
        )
    elif importlib.util.find_spec("codecarbon") is None:
        probes.append(Probe(CODECARBON, False, "codecarbon is not installed"))
    else:
        probes.append(
            Probe(
                CODECARBON,
                True,
                "CodeCarbon offline tracker: RAPL/NVML if it finds them, else its "
                "cpu-load-model (TDP x load) and a constant RAM power",
            )
        )
    chosen = _choose({p.method: p.available for p in probes})
    for p in probes:
        if close_unchosen and p.sensor is not None and p.method not in chosen:
            p.sensor.close()
    return Detection(str(root), tuple(probes), chosen)


def meter_for(
    detection: Detection, *, interval_s: float = 1.0, background: bool = True
) -> EnergyMeter:
    """The EnergyMeter of ``detection``'s choice: a :class:`SensorMeter`, or CodeCarbon's."""
    if detection.chosen == (CODECARBON,):
        from carbonedge.carbon.codecarbon_meter import CodeCarbonConfig, CodeCarbonMeter

        return CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=interval_s))
    if not detection.chosen:
        raise SensorError(
            f"no power sensor and no fallback under {detection.root}: " + detection.summary()
        )
    details = {"sensors": detection.label, "root": detection.root, "detection": detection.summary()}
    return SensorMeter(
        detection.sensors(), interval_s=interval_s, background=background, details=details
    )
