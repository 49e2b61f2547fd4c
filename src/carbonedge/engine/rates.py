"""Rolling meter windows -> energy per CPU-second per node: the rate of the per-task charge.

Starting and stopping a meter per task would cost milliseconds (CodeCarbon samples once a
second anyway). Instead a background thread measures the host in back-to-back named windows of
``window_s`` seconds (:class:`~carbonedge.engine.windows.MeasurementWindows`), which read the CPU
seconds of each node's processes (psutil, or the tasks' ``cpu_s`` where the backend exposes no
pids) and the host's busy CPU seconds, and attributes each with ``carbon.attribute(..., "cputime")``
(Kepler's method, docs/carbon-monitor.md): the idle baseline and static RAM energy stay apart,
active energy is split by CPU-time share of the host's busy CPU seconds.

What it publishes, as one immutable :class:`RateSnapshot`, is each node's *active energy per
CPU-second* (kWh per CPU-s, per component). A request that used ``cpu_s`` CPU seconds on a node
is then estimated at ``rate x cpu_s`` kWh (:func:`carbonedge.accounting.charge_task`) and
``rate x cpu_s x I x PUE`` gCO2 (Eq. 2): a dictionary read and a few multiplications.

Before the first window closes the rate comes from the node's power profile (Eq. 4's
``P_node``): a linear profile draws ``max_w - idle_w`` W above idle when the node's whole quota
is busy, i.e. ``(max_w - idle_w) / cpu_quota`` J per CPU-second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from carbonedge.accounting import AttributionError, Rate, RateSnapshot, attribute, profile_rate
from carbonedge.engine.windows import Measurement, MeasurementWindows
from carbonedge.fleet import FleetSpec

__all__ = ["MIN_NODE_CPU_S", "RollingRates", "WindowTotals", "profile_snapshot"]

# A node that used less CPU than this in a window gets the host-wide rate (active energy per busy
# CPU-second of the whole host) instead of its own ratio of two tiny numbers.
MIN_NODE_CPU_S = 0.05


@dataclass(frozen=True)
class WindowTotals:
    """Cumulative figures over all closed windows, kWh (for /metrics).

    ``host_kwh``: (component, method) -> host energy measured; ``node_kwh``: node -> active
    energy attributed by CPU time; ``idle_kwh``: static energy (idle CPU baseline, constant
    RAM); ``other_kwh``: active energy of processes outside the nodes.
    """

    windows: int = 0
    duration_s: float = 0.0
    host_kwh: Mapping[tuple[str, str], float] = field(default_factory=dict)
    node_kwh: Mapping[str, float] = field(default_factory=dict)
    idle_kwh: float = 0.0
    other_kwh: float = 0.0
    errors: int = 0
    last_error: str = ""


def profile_snapshot(spec: FleetSpec) -> RateSnapshot:
    """The prior: ``(max_w - idle_w) / cpu_quota`` J per CPU-second per node, as kWh/CPU-s."""
    rates = {n.name: profile_rate(n.power.idle_w, n.power.max_w, n.cpu_quota) for n in spec.nodes}
    return RateSnapshot(
        rates=rates,
        basis=dict.fromkeys(spec.names, "power-profile"),
        source="power-profile",
        energy_method={"cpu": "power-profile", "gpu": "none", "ram": "none"},
        meter="none",
        window_s=0.0,
        closed_mono_s=time.monotonic(),
    )


class RollingRates:
    """Back-to-back windows in a background thread; :attr:`snapshot` is the latest rates.

    ``idle_cpu_power_w``: the CPU idle baseline in W for ``cputime``; None takes the lowest CPU
    power sample seen in any window so far (a running minimum: under steady traffic one window's
    lowest sample is not idle). Without :meth:`start` (no rolling windows) the snapshot stays
    the power-profile prior, or whatever :meth:`publish` was last given.
    """

    def __init__(
        self,
        spec: FleetSpec,
        windows: MeasurementWindows,
        window_s: float,
        *,
        idle_cpu_power_w: float | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._spec = spec
        self._windows = windows
        self._window_s = window_s
        self._fixed_idle_w = idle_cpu_power_w
        self._min_cpu_w = math.inf
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.snapshot = profile_snapshot(spec)
        self.totals = WindowTotals()

    def start(self) -> None:
        """Open the first window now (CodeCarbon: ~2 s of hardware detection the first time)."""
        self._windows.begin_window("rolling")
        self._thread = threading.Thread(target=self._run, name="carbonedge-meter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the current window (its energy goes into the totals) and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None

    def _run(self) -> None:
        last = False
        while not last:
            last = self._stop.wait(self._window_s)
            try:
                measurement: Measurement | None = self._windows.end_window("rolling")
            except Exception as exc:  # a meter failure must not stop the service
                self._error(f"meter stop failed: {exc}")
                measurement = None
            if not last:
                try:
                    self._windows.begin_window("rolling")
                except Exception as exc:
                    self._error(f"meter start failed: {exc}")
                    last = True
            if measurement is not None:
                try:
                    self.publish(measurement)
                except AttributionError as exc:
                    self._error(f"attribution failed: {exc}")

    def publish(self, measurement: Measurement) -> None:
        """Turn one closed window into the current rates (and add it to the totals)."""
        reading, cpu = measurement.reading, measurement.node_cpu_s
        host_cpu_s = measurement.host_cpu_s
        for s in reading.samples:
            self._min_cpu_w = min(self._min_cpu_w, s.cpu_w)
        if self._fixed_idle_w is not None:
            idle_w = self._fixed_idle_w
        else:
            idle_w = self._min_cpu_w if math.isfinite(self._min_cpu_w) else 0.0
        att = attribute(
            reading, cpu, None, "cputime", idle_cpu_power_w=idle_w, host_cpu_s=host_cpu_s
        )
        active = (
            reading.cpu_energy_kwh - att.idle.cpu_energy_kwh,
            reading.gpu_energy_kwh - att.idle.gpu_energy_kwh,
            reading.ram_energy_kwh - att.idle.ram_energy_kwh,
        )
        busy_s = max(host_cpu_s or 0.0, sum(cpu.values()))
        host_rate = tuple(a / busy_s for a in active) if busy_s > 0 else None
        previous = self.snapshot
        rates: dict[str, Rate] = {}
        basis: dict[str, str] = {}
        for name in self._spec.names:
            if cpu.get(name, 0.0) >= MIN_NODE_CPU_S:
                rates[name], basis[name] = att.kwh_per_cpu_s[name], "node"
            elif host_rate is not None:
                rates[name], basis[name] = (host_rate[0], host_rate[1], host_rate[2]), "host"
            else:
                rates[name], basis[name] = previous.rates[name], previous.basis[name]
        self.snapshot = RateSnapshot(
            rates=rates,
            basis=basis,
            source="window",
            energy_method=dict(reading.method),
            meter=reading.info.meter,
            window_s=reading.duration_s,
            closed_mono_s=time.monotonic(),
            index=previous.index + 1,
        )
        t = self.totals
        host_kwh = dict(t.host_kwh)
        for comp in ("cpu", "gpu", "ram"):
            key = (comp, reading.method.get(comp, "none"))
            host_kwh[key] = host_kwh.get(key, 0.0) + getattr(reading, f"{comp}_energy_kwh")
        node_kwh = dict(t.node_kwh)
        for name, e in att.by_node.items():
            node_kwh[name] = node_kwh.get(name, 0.0) + e.energy_kwh
        self.totals = WindowTotals(
            windows=t.windows + 1,
            duration_s=t.duration_s + reading.duration_s,
            host_kwh=host_kwh,
            node_kwh=node_kwh,
            idle_kwh=t.idle_kwh + att.idle.energy_kwh,
            other_kwh=t.other_kwh + att.other.energy_kwh,
            errors=t.errors,
            last_error=t.last_error,
        )

    def _error(self, message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        t = self.totals
        self.totals = replace(t, errors=t.errors + 1, last_error=f"{stamp} {message}")
        if self._on_error is not None:
            self._on_error(message)
