"""Host energy meter backed by CodeCarbon's ``OfflineEmissionsTracker`` (Section III.B.1).

CodeCarbon reads RAPL (CPU) and NVML (GPU) where present; otherwise it models the CPU as
TDP x load with a 10% floor and RAM as a constant guess. What this adapter relies on:

- public constructor arguments (``tracking_mode="machine"``, ``measure_power_secs``,
  ``save_to_file=False``, ``allow_multiple_runs=True`` so no lock file in /tmp,
  ``output_handlers`` + ``api_call_interval=1`` so each measurement reaches our handler);
- ``live_out(total, delta)`` / ``out(total, delta)`` of ``BaseOutput``: ``delta`` holds the
  energy (kWh) of each component since the previous call, which gives the power samples;
- ``tracker.final_emissions_data`` after ``stop()`` (totals per component, kWh);
- one private field, ``tracker._conf["hardware"]`` (descriptions such as ``CPU(Intel Rapl)``,
  ``CPU(Cpu Load)``), to say which method CodeCarbon used. If it is absent the method is
  ``unknown`` rather than guessed;
- under the CPU-load model, the CPU object's TDP (``tracker._hardware[i]._tdp``, W): machine
  mode models the host CPU as ``TDP x (0.1 + 0.9 x load^3)`` (codecarbon 3.x
  ``CPU._get_power_from_cpu_load``), so its idle floor is exactly ``0.1 x TDP`` — recorded as
  ``details["cpu_idle_floor_w"]`` (absent when the TDP cannot be read).

CodeCarbon reads config files from ``~`` and the working directory but writes none with these
settings; its logger is set to ``error`` so it does not print on every measurement.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from carbonedge.accounting import EnergyReading, MeterInfo, PowerSample, paper_ram_power_w
from carbonedge.accounting.units import J_PER_KWH, kwh_of_power
from carbonedge.carbon.errors import MeterError

RamModel = Literal["codecarbon", "paper"]


@dataclass(frozen=True)
class CodeCarbonConfig:
    """Settings of the CodeCarbon meter.

    ``country_iso_code`` is a 3-letter ISO code (e.g. ``"FRA"``) recorded with the reading;
    ``measure_power_secs`` the sampling interval in seconds; ``force_cpu_power_w`` /
    ``force_ram_power_w`` pass CodeCarbon's ``force_cpu_power`` / ``force_ram_power`` (W);
    ``ram_model="paper"`` replaces CodeCarbon's RAM figure with 0.375 W/GB x duration.
    """

    country_iso_code: str | None = None
    region: str | None = None
    measure_power_secs: float = 1.0
    force_cpu_power_w: float | None = None
    force_ram_power_w: float | None = None
    ram_model: RamModel = "codecarbon"
    log_level: str = "error"


def cpu_method(hardware: list[str], forced_cpu_power: bool) -> str:
    """Map CodeCarbon's hardware descriptions to a CPU method name."""
    for desc in hardware:
        if desc.startswith("CPU(Intel Rapl"):
            return "rapl"
        if desc.startswith("CPU(Cpu Load"):
            return "cpu-load-model" + ("(forced-tdp)" if forced_cpu_power else "")
        if desc.startswith("CPU(Intel Power Gadget"):
            return "power-gadget"
        if desc.startswith("CPU(Windows Emi"):
            return "windows-emi"
        if desc.startswith("CPU("):
            return "constant"
        if desc.startswith(("AppleSiliconChip", "Raspberry")) and "CPU" in desc:
            return "powermetrics" if desc.startswith("Apple") else "raspberry-pmic"
    return "unknown"


def gpu_method(hardware: list[str], gpu_count: int) -> str:
    """Map CodeCarbon's hardware descriptions to a GPU method name (``none`` without a GPU)."""
    if gpu_count <= 0 and not any(d.startswith("GPU") for d in hardware):
        return "none"
    if any(d.startswith("AppleSiliconChip") and "GPU" in d for d in hardware):
        return "powermetrics"
    return "nvml"


#: CodeCarbon's machine-mode CPU-load model: ``TDP x (LOAD_MODEL_FLOOR + 0.9 x load^3)``.
LOAD_MODEL_FLOOR = 0.1


def cpu_load_model_floor_w(tracker: Any) -> float | None:
    """The CPU-load model's power at zero load (``0.1 x TDP``, W), or None when CodeCarbon
    does not model the CPU from load (RAPL, constant) or its TDP cannot be read."""
    for hw in getattr(tracker, "_hardware", None) or []:
        if getattr(hw, "_mode", None) == "cpu_load":
            tdp = getattr(hw, "_tdp", None)
            if isinstance(tdp, int | float) and tdp > 0:
                return LOAD_MODEL_FLOOR * float(tdp)
    return None


class CodeCarbonMeter:
    """An :class:`~carbonedge.carbon.energy.EnergyMeter` over ``OfflineEmissionsTracker``.

    Energy per component is CodeCarbon's (kWh, summed over its ``measure_power_secs``
    intervals); samples are each interval's mean power in W, at seconds after CodeCarbon's
    first measurement. With ``ram_model="paper"`` the RAM
    energy is ``0.375 W/GB x RAM_GB x duration_s / 3.6e6`` kWh instead.
    """

    def __init__(self, config: CodeCarbonConfig | None = None) -> None:
        self.config = config or CodeCarbonConfig()
        if self.config.measure_power_secs <= 0:
            raise MeterError(
                f"measure_power_secs must be > 0, got {self.config.measure_power_secs}"
            )
        self._tracker: Any = None
        self._samples: list[PowerSample] = []
        self._lock = threading.Lock()
        self._ticks = threading.Lock()
        self._started_at: datetime | None = None
        self._last: tuple[float, tuple[float, float, float]] = (0.0, (0.0, 0.0, 0.0))
        self._before_last = self._last
        self._measured = False

    def _record(self, total: Any, delta: Any) -> None:
        """Turn CodeCarbon's cumulative totals into a power sample (W) per interval.

        Cumulative energy and duration (since the tracker started) are used rather than
        ``delta``, so that the samples, step-integrated, add up to CodeCarbon's own total: the
        first sample covers the tracker's start up to its first measurement (inside
        ``start()``), and an interval under 50 ms (the final flush in ``stop()``) is merged
        into the sample before it rather than dropped with its energy.
        """
        t_s = float(total.duration)
        energy = (float(total.cpu_energy), float(total.gpu_energy), float(total.ram_energy))
        with self._lock:
            self._measured = True
            last_t, last_e = self._last
            if t_s - last_t < 0.05:
                if not self._samples:
                    return  # too short to be a rate: the next interval will include it
                last_t, last_e = self._before_last  # widen the last interval to now
                self._samples.pop()
                if len(self._samples) == 1:
                    self._samples.pop()  # the t = 0 copy of the first interval
            dt_s = t_s - last_t
            watts = [(e - le) * J_PER_KWH / dt_s for e, le in zip(energy, last_e, strict=True)]
            if not self._samples:
                self._samples.append(PowerSample(0.0, *watts))
            self._samples.append(PowerSample(t_s, *watts))
            self._before_last = (last_t, last_e)
            self._last = (t_s, energy)

    def _guard_ticks(self, tracker: Any) -> None:
        """Serialise CodeCarbon's periodic measurements with ``stop()``.

        CodeCarbon 3's ``PeriodicScheduler.stop()`` cancels the next timer but does not wait for
        a measurement already running in a timer thread; one that runs while ``stop()`` resets
        the tracker raises ``TypeError`` in that thread (seen under load). Each periodic
        function is wrapped so that it runs under this meter's lock and is skipped unless its
        tracker is this meter's current one (``stop()`` clears that before it takes the lock).
        Where CodeCarbon's internals differ, nothing is wrapped.
        """
        for name in ("_scheduler", "_scheduler_monitor_power"):
            scheduler: Any = getattr(tracker, name, None)
            function = getattr(scheduler, "function", None)
            if scheduler is None or function is None:
                continue

            def guarded(
                *args: Any, _run: Any = function, _owner: Any = tracker, **kwargs: Any
            ) -> Any:
                with self._ticks:
                    # A timer of a stopped tracker can still fire: CodeCarbon's scheduler arms
                    # the next timer before it runs a measurement, so one may outlive stop()
                    # and fire after this meter started a new tracker (seen in the test suite).
                    if self._tracker is not _owner:
                        return None
                    return _run(*args, **kwargs)

            scheduler.function = guarded

    def start(self) -> None:
        """Start CodeCarbon (first call in a process: ~2 s of hardware detection)."""
        if self._tracker is not None:
            raise MeterError("CodeCarbonMeter.start() called twice without stop()")
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.output_methods.base_output import BaseOutput

        logging.getLogger("codecarbon").setLevel(self.config.log_level.upper())
        record = self._record

        class _Collector(BaseOutput):  # type: ignore[misc]
            def live_out(self, total: Any, delta: Any) -> None:
                record(total, delta)

            def out(self, total: Any, delta: Any) -> None:
                record(total, delta)

        cfg = self.config
        self._samples = []
        self._last = self._before_last = (0.0, (0.0, 0.0, 0.0))
        self._measured = False
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=cfg.country_iso_code,
            region=cfg.region,
            project_name="carbonedge",
            measure_power_secs=cfg.measure_power_secs,
            tracking_mode="machine",
            save_to_file=False,
            save_to_api=False,
            allow_multiple_runs=True,
            output_handlers=[_Collector()],
            api_call_interval=1,
            force_cpu_power=cfg.force_cpu_power_w,
            force_ram_power=cfg.force_ram_power_w,
            log_level=cfg.log_level,
        )
        self._started_at = datetime.now(UTC)
        self._guard_ticks(self._tracker)
        self._tracker.start()  # CodeCarbon swallows its own exceptions here
        with self._lock:
            started = self._measured
        if not started:
            self._tracker = None
            raise MeterError(
                "CodeCarbon's tracker did not start (no first measurement); "
                "run with log_level='debug' to see why"
            )

    def stop(self) -> EnergyReading:
        """Stop CodeCarbon and return the window's energy per component (kWh)."""
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            raise MeterError("CodeCarbonMeter.stop() called before start()")
        with self._ticks:  # a running measurement ends first; later ones see no tracker
            tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            raise MeterError("CodeCarbon's tracker stopped without final emissions data")
        hardware = [str(h) for h in getattr(tracker, "_conf", {}).get("hardware", [])]
        floor_w = cpu_load_model_floor_w(tracker)
        duration_s = float(data.duration)
        cpu_kwh, gpu_kwh = float(data.cpu_energy), float(data.gpu_energy)
        ram_kwh = float(data.ram_energy)
        ram_gb = float(data.ram_total_size or 0.0)
        with self._lock:
            samples = list(self._samples)
        # CodeCarbon v3's RAM figure is a per-DIMM estimate: a constant power either way.
        forced_ram = self.config.force_ram_power_w is not None
        ram_method = "constant(forced)" if forced_ram else "constant"
        if self.config.ram_model == "paper":
            ram_w = paper_ram_power_w(ram_gb)
            ram_kwh = kwh_of_power(ram_w, duration_s)
            samples = [PowerSample(s.t_s, s.cpu_w, s.gpu_w, ram_w) for s in samples]
            ram_method = "paper-ram-model"
        method = {
            "cpu": cpu_method(hardware, self.config.force_cpu_power_w is not None),
            "gpu": gpu_method(hardware, int(data.gpu_count or 0)),
            "ram": ram_method,
        }
        info = MeterInfo(
            meter="codecarbon",
            version=str(data.codecarbon_version),
            country_iso_code=data.country_iso_code,
            region=data.region,
            hardware=tuple(hardware),
            details={
                "cpu_model": str(data.cpu_model),
                "cpu_count": str(data.cpu_count),
                "gpu_model": str(data.gpu_model),
                # repr round-trips: exactly the size ram_model="paper" multiplied by 0.375 W/GB
                "ram_total_gb": repr(ram_gb),
                "measure_power_secs": str(self.config.measure_power_secs),
                "tracking_mode": "machine",
                **({"cpu_idle_floor_w": repr(floor_w)} if floor_w is not None else {}),
            },
        )
        return EnergyReading(
            duration_s=duration_s,
            cpu_energy_kwh=cpu_kwh,
            gpu_energy_kwh=gpu_kwh,
            ram_energy_kwh=ram_kwh,
            method=method,
            samples=tuple(samples),
            info=info,
            started_at=self._started_at,
            finished_at=datetime.now(UTC),
        )
