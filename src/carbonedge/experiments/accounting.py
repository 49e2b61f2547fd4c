"""One measured window: meter + CPU-time snapshots -> attribution -> per-node energy and carbon.

Around every run the Carbon Monitor measures the host (``EnergyMeter.start()``/``stop()``) and
the node processes' CPU seconds are read with psutil, so that ``carbon.attribute`` can split
the host's energy among the nodes (``cputime``: by CPU-time share of the host's busy CPU
seconds, idle baseline and other processes kept apart; ``quota``: by CPU-quota share, the
paper's IV.A.1). Carbon per node is Eq. 2, ``C = E x I x PUE``.

Per task, a node's energy is divided among the tasks it ran in proportion to their CPU
seconds, so the ledger's rows of a node sum exactly to the node's energy. (A node's process also
spends CPU outside inference — heartbeats, pipe I/O — which is counted in the node's energy and
thus spread over its tasks.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carbonedge.carbon import (
    Attribution,
    ComponentEnergy,
    EnergyMeter,
    EnergyReading,
    IntensityReading,
    LedgerRow,
    attribute,
    carbon_g,
    cpu_seconds,
    host_busy_cpu_seconds,
    task_row,
)
from carbonedge.carbon.errors import AttributionError
from carbonedge.fleet import FleetBackend, FleetSpec, TaskResult


@dataclass(frozen=True)
class Window:
    """What one meter window measured.

    ``cpu_s_by_node``: CPU seconds of each node's process in the window (psutil), or the sum of
    its tasks' ``cpu_s`` when the backend exposes no pids. ``host_cpu_s``: busy CPU seconds of
    the whole host in the window. ``wall_s``: the run's own wall time (first submit to last
    result), s.
    """

    reading: EnergyReading
    cpu_s_by_node: Mapping[str, float]
    host_cpu_s: float | None
    wall_s: float


class Meter:
    """Measures windows with one energy meter and the fleet's node processes."""

    def __init__(self, meter: EnergyMeter, fleet: FleetBackend) -> None:
        self._meter = meter
        self._fleet = fleet

    def _pids(self) -> dict[str, int | None] | None:
        # LocalFleet exposes its node pids; a backend without them falls back to task CPU time.
        pids: Callable[[], dict[str, int | None]] | None = getattr(self._fleet, "node_pids", None)
        return pids() if pids is not None else None

    def _cpu(self, pids: Mapping[str, int | None] | None) -> dict[str, float] | None:
        if pids is None:
            return None
        out = {}
        for name, pid in pids.items():
            try:
                out[name] = cpu_seconds([pid]) if pid is not None else 0.0
            except AttributionError:
                out[name] = 0.0
        return out

    def calibrate_idle(self, duration_s: float) -> float:
        """Idle CPU power baseline (W): the lowest CPU power sample of a window of
        ``duration_s`` seconds with the fleet idle, or its mean power without samples.

        Measured once per reproduction and used for every ``cputime`` window, so that a run
        shorter than the meter's sampling interval (one sample) does not count all of its CPU
        energy as idle.
        """
        self._meter.start()
        time.sleep(duration_s)
        reading = self._meter.stop()
        powers = [s.cpu_w for s in reading.samples if s.t_s > 0]
        return min(powers) if powers else reading.mean_power_w("cpu")

    def measure(self, body: Callable[[], Sequence[TaskResult]]) -> tuple[Window, Any]:
        """Run ``body`` inside one meter window; returns the window and what ``body`` returned.

        ``body`` returns the task results it produced (stages of pipelined tasks included).
        """
        self._meter.start()
        pids = self._pids()
        cpu0 = self._cpu(pids)
        host0 = host_busy_cpu_seconds()
        t0 = time.perf_counter()
        results = body()
        wall_s = time.perf_counter() - t0
        host1 = host_busy_cpu_seconds()
        cpu1 = self._cpu(pids)
        reading = self._meter.stop()
        if cpu0 is not None and cpu1 is not None:
            cpu = {n: max(0.0, cpu1[n] - cpu0[n]) for n in cpu0}
            host: float | None = max(0.0, host1 - host0)
        else:
            cpu = {n: 0.0 for n in self._fleet.spec.names}
            for r in results:
                cpu[r.node] = cpu.get(r.node, 0.0) + r.cpu_s
            host = None
        return Window(reading, cpu, host, wall_s), results


@dataclass(frozen=True)
class Accounted:
    """A window turned into energy (kWh) and carbon (gCO2) per node, plus ledger rows."""

    attribution: Attribution
    node_energy: Mapping[str, ComponentEnergy]
    node_carbon_g: Mapping[str, float]
    rows: tuple[LedgerRow, ...]

    @property
    def carbon_g(self) -> float:
        return sum(self.node_carbon_g.values())

    def component_kwh(self, component: str) -> float:
        return float(sum(getattr(e, f"{component}_energy_kwh") for e in self.node_energy.values()))


def account(
    window: Window,
    results: Sequence[TaskResult],
    spec: FleetSpec,
    intensities: Mapping[str, IntensityReading],
    method: str,
    *,
    idle_cpu_power_w: float | None,
    run_id: str,
    model: str,
    runtime: str,
) -> Accounted:
    """Attribute the window's host energy to nodes and tasks; Eq. 2 per node and per task."""
    quotas = {n.name: n.cpu_quota for n in spec.nodes}
    att = attribute(
        window.reading,
        window.cpu_s_by_node,
        quotas,
        method,  # type: ignore[arg-type]
        idle_cpu_power_w=idle_cpu_power_w,
        host_cpu_s=window.host_cpu_s if method == "cputime" else None,
    )
    pue = {n.name: n.pue for n in spec.nodes}
    node_energy = {n: att.by_node.get(n, ComponentEnergy()) for n in spec.names}
    node_carbon = {
        n: carbon_g(e.energy_kwh, intensities[n].g_per_kwh, pue[n]) for n, e in node_energy.items()
    }
    task_cpu: dict[str, float] = {}
    for r in results:
        task_cpu[r.node] = task_cpu.get(r.node, 0.0) + r.cpu_s
    label = window.reading.method_label
    rows = []
    for r in results:
        total = task_cpu[r.node]
        share = r.cpu_s / total if total > 0 else 1.0 / sum(1 for x in results if x.node == r.node)
        e = node_energy[r.node]
        energy = ComponentEnergy(
            e.cpu_energy_kwh * share, e.gpu_energy_kwh * share, e.ram_energy_kwh * share
        )
        rows.append(
            task_row(
                task_id=r.task_id,
                run_id=run_id,
                node=r.node,
                model=model,
                runtime=runtime,
                started_at=datetime.fromtimestamp(r.started_at, UTC),
                finished_at=datetime.fromtimestamp(r.finished_at, UTC),
                latency_ms=r.latency_ms,
                cpu_s=r.cpu_s,
                energy=energy,
                intensity=intensities[r.node],
                pue=pue[r.node],
                energy_method=label,
                attribution_method=method,
            )
        )
    return Accounted(att, node_energy, node_carbon, tuple(rows))
