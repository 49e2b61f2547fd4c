"""Measure a command: run it inside a meter window, then apply Eq. 2 with an intensity.

This is what ``carbonedge monitor -- COMMAND`` calls; the CLI only parses and prints.
"""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from carbonedge.accounting import Attribution, EnergyMeter, EnergyReading, attribute, carbon_g
from carbonedge.carbon.errors import CommandError
from carbonedge.carbon.intensity import IntensityReading, IntensitySource
from carbonedge.carbon.process_cpu import host_busy_cpu_seconds


@dataclass(frozen=True)
class MonitorResult:
    """A monitored command: its exit code, host energy (kWh) and carbon (gCO2, Eq. 2)."""

    command: tuple[str, ...]
    exit_code: int
    reading: EnergyReading
    intensity: IntensityReading
    pue: float
    command_cpu_s: float
    host_cpu_s: float
    attribution: Attribution

    @property
    def command_energy_kwh(self) -> float:
        """The command's share of host energy by CPU time (``cputime`` attribution), kWh."""
        return self.attribution.by_node["command"].energy_kwh

    @property
    def command_carbon_g(self) -> float:
        """gCO2 of the command's attributed energy (Eq. 2)."""
        return carbon_g(self.command_energy_kwh, self.intensity.g_per_kwh, self.pue)

    @property
    def carbon_g(self) -> float:
        """gCO2 = host energy (kWh) x intensity (gCO2/kWh) x PUE (Eq. 2)."""
        return carbon_g(self.reading.energy_kwh, self.intensity.g_per_kwh, self.pue)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary with units in the keys."""
        r = self.reading
        return {
            "command": list(self.command),
            "exit_code": self.exit_code,
            "duration_s": r.duration_s,
            "cpu_energy_kwh": r.cpu_energy_kwh,
            "gpu_energy_kwh": r.gpu_energy_kwh,
            "ram_energy_kwh": r.ram_energy_kwh,
            "energy_kwh": r.energy_kwh,
            "mean_power_w": {c: r.mean_power_w(c) for c in ("cpu", "gpu", "ram")},
            "method": dict(r.method),
            "meter": r.info.meter,
            "meter_version": r.info.version,
            "hardware": list(r.info.hardware),
            "intensity_g_per_kwh": self.intensity.g_per_kwh,
            "intensity_source": self.intensity.source,
            "intensity_zone": self.intensity.zone,
            "intensity_kind": self.intensity.kind,
            "intensity_fallback": self.intensity.fallback,
            "pue": self.pue,
            "carbon_g": self.carbon_g,
            "command_cpu_s": self.command_cpu_s,
            "host_busy_cpu_s": self.host_cpu_s,
            "command_energy_kwh": self.command_energy_kwh,
            "command_carbon_g": self.command_carbon_g,
            "idle_cpu_energy_kwh": self.attribution.idle.energy_kwh,
            "other_processes_energy_kwh": self.attribution.other.energy_kwh,
            "attribution_method": self.attribution.method,
            "samples": len(r.samples),
        }


def monitor_command(
    command: Sequence[str],
    meter: EnergyMeter,
    intensity: IntensitySource,
    zone: str,
    pue: float = 1.0,
    *,
    baseline_s: float = 0.0,
) -> MonitorResult:
    """Run ``command`` (no shell) while ``meter`` measures the host; return energy and carbon.

    The intensity is read before the command starts so a provider failure costs no run.
    Host energy is also attributed to the command by CPU time (``cputime``): the command's
    CPU seconds (its waited-for process tree, ``getrusage(RUSAGE_CHILDREN)``) against the
    host's busy CPU seconds over the window; the rest is idle baseline and other processes.

    ``baseline_s`` > 0 first measures the host for that many seconds before the command starts
    and takes its lowest CPU power sample (its mean without samples) as the idle baseline. With
    0 the baseline is the lowest CPU sample of the command's own window, which for a command
    that keeps the host busy the whole time is not idle at all.
    """
    if not command:
        raise CommandError("no command given to monitor (use: carbonedge monitor -- COMMAND)")
    carbon_g(0.0, 0.0, pue)  # validates pue before spending time
    reading_i = intensity.intensity(zone)
    idle_cpu_power_w = _idle_cpu_power_w(meter, baseline_s) if baseline_s > 0 else None
    meter.start()
    host_before_s = host_busy_cpu_seconds()
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        completed = subprocess.run(list(command), check=False)
    except OSError as exc:
        meter.stop()
        raise CommandError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from exc
    except BaseException:
        meter.stop()
        raise
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    host_cpu_s = host_busy_cpu_seconds() - host_before_s
    reading = meter.stop()
    command_cpu_s = (child_after.ru_utime - child_before.ru_utime) + (
        child_after.ru_stime - child_before.ru_stime
    )
    shares = attribute(
        reading,
        {"command": command_cpu_s},
        host_cpu_s=host_cpu_s,
        idle_cpu_power_w=idle_cpu_power_w,
    )
    return MonitorResult(
        tuple(command),
        completed.returncode,
        reading,
        reading_i,
        pue,
        command_cpu_s,
        host_cpu_s,
        shares,
    )


def _idle_cpu_power_w(meter: EnergyMeter, baseline_s: float) -> float:
    """The host's CPU power (W) over ``baseline_s`` seconds of doing nothing ourselves."""
    meter.start()
    time.sleep(baseline_s)
    idle = meter.stop()
    samples = [s.cpu_w for s in idle.samples if s.t_s > 0]
    return min(samples) if samples else idle.mean_power_w("cpu")
