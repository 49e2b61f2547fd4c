"""Attribution of host energy to the simulated edge nodes that share the host.

The paper (Section IV.A.1) apportions host energy by Docker CPU-quota shares: method ``quota``.
The default, ``cputime``, follows Kepler: the host's *active* energy is split by each node's
share of the CPU seconds its processes used (psutil); the *static* energy is reported apart,
not hidden in a node. Static means: the CPU idle baseline over the window, and the whole RAM
energy when RAM power is a constant (CodeCarbon's ``constant`` guess or the paper's 0.375 W/GB
model): a constant is drawn whether or not a task runs, so charging it by CPU time would bill a
slow node for the wall time it was busy rather than for the work it did. GPU energy (and RAM
energy from a real measurement) has no per-process signal here and follows the CPU-time shares.

Reconciliation: ``sum(nodes) + idle + other == host`` for every component, exactly up to
floating point; :meth:`Attribution.residual_kwh` reports the difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from carbonedge.accounting.energy import ComponentEnergy, EnergyReading
from carbonedge.accounting.errors import AttributionError
from carbonedge.accounting.units import kwh_of_power

AttributionMethod = Literal["cputime", "quota"]
ATTRIBUTION_METHODS: tuple[str, ...] = ("cputime", "quota")
# Energy methods whose power does not depend on the work done (see the module docstring).
STATIC_POWER_METHODS = frozenset({"constant", "paper-ram-model"})


@dataclass(frozen=True)
class Attribution:
    """Host energy split among nodes, in kWh per component.

    ``idle`` is the static energy over the window (``cputime`` only): the CPU idle baseline and
    RAM energy from a constant power model; ``other`` is active
    energy of host processes outside the nodes (only when ``host_cpu_s`` was given). Per-task
    energy uses ``kwh_per_cpu_s``: a node's energy per CPU-second its processes used.
    """

    method: str
    by_node: Mapping[str, ComponentEnergy]
    idle: ComponentEnergy
    other: ComponentEnergy
    host: EnergyReading
    shares: Mapping[str, float]
    kwh_per_cpu_s: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def attributed_kwh(self) -> float:
        """Energy given to nodes, kWh."""
        return sum(e.energy_kwh for e in self.by_node.values())

    @property
    def unattributed_kwh(self) -> float:
        """Idle baseline plus other processes' energy, kWh."""
        return self.idle.energy_kwh + self.other.energy_kwh

    def residual_kwh(self) -> float:
        """Host energy minus (nodes + unattributed), kWh; 0 up to rounding."""
        return self.host.energy_kwh - self.attributed_kwh - self.unattributed_kwh


def _check(name: str, values: Mapping[str, float]) -> None:
    for node, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise AttributionError(f"{name}[{node!r}] must be a finite number >= 0, got {value}")


def _split(host: ComponentEnergy, shares: Mapping[str, float]) -> dict[str, ComponentEnergy]:
    return {
        n: ComponentEnergy(
            host.cpu_energy_kwh * s, host.gpu_energy_kwh * s, host.ram_energy_kwh * s
        )
        for n, s in shares.items()
    }


def attribute(
    reading: EnergyReading,
    cpu_s_by_node: Mapping[str, float],
    quota_by_node: Mapping[str, float] | None = None,
    method: AttributionMethod = "cputime",
    *,
    idle_cpu_power_w: float | None = None,
    host_cpu_s: float | None = None,
) -> Attribution:
    """Split ``reading`` (host energy, kWh) among nodes.

    ``cpu_s_by_node``: CPU seconds each node's processes used in the window (see
    :func:`cpu_seconds`). ``quota_by_node``: CPU quota in cores (``quota`` method).
    ``idle_cpu_power_w``: idle CPU power in W for ``cputime``; ``None`` takes the lowest CPU
    sample of the window (CodeCarbon's load model floor, 10% of TDP, when it models the CPU).
    ``host_cpu_s``: busy CPU seconds of the whole host in the window; when given, the nodes'
    shares are relative to it and the rest goes to ``other``; otherwise to the nodes' total.
    """
    _check("cpu_s_by_node", cpu_s_by_node)
    host = ComponentEnergy(reading.cpu_energy_kwh, reading.gpu_energy_kwh, reading.ram_energy_kwh)
    zero = ComponentEnergy()
    if method == "quota":
        if not quota_by_node:
            raise AttributionError("method 'quota' needs quota_by_node (CPU cores per node)")
        _check("quota_by_node", quota_by_node)
        total_quota = sum(quota_by_node.values())
        if total_quota <= 0:
            raise AttributionError(f"quota_by_node sums to {total_quota}; need > 0")
        shares = {n: q / total_quota for n, q in quota_by_node.items()}
        by_node = _split(host, shares)
        return Attribution(
            "quota", by_node, zero, zero, reading, shares, _rates(by_node, cpu_s_by_node)
        )
    if method != "cputime":
        raise AttributionError(
            f"attribution method must be one of {ATTRIBUTION_METHODS}, got {method!r}"
        )

    if idle_cpu_power_w is None:
        idle_cpu_power_w = min((s.cpu_w for s in reading.samples), default=0.0)
    if not math.isfinite(idle_cpu_power_w) or idle_cpu_power_w < 0:
        raise AttributionError(f"idle_cpu_power_w must be >= 0, got {idle_cpu_power_w}")
    idle_cpu_kwh = min(kwh_of_power(idle_cpu_power_w, reading.duration_s), reading.cpu_energy_kwh)
    static_ram = reading.method.get("ram") in STATIC_POWER_METHODS
    static_ram_kwh = reading.ram_energy_kwh if static_ram else 0.0
    active = ComponentEnergy(
        reading.cpu_energy_kwh - idle_cpu_kwh,
        reading.gpu_energy_kwh,
        reading.ram_energy_kwh - static_ram_kwh,
    )
    nodes_cpu_s = sum(cpu_s_by_node.values())
    denominator = nodes_cpu_s if host_cpu_s is None else max(host_cpu_s, nodes_cpu_s)
    if denominator <= 0:
        shares = dict.fromkeys(cpu_s_by_node, 0.0)
    else:
        shares = {n: c / denominator for n, c in cpu_s_by_node.items()}
    by_node = _split(active, shares)
    other = ComponentEnergy(
        active.cpu_energy_kwh - sum(e.cpu_energy_kwh for e in by_node.values()),
        active.gpu_energy_kwh - sum(e.gpu_energy_kwh for e in by_node.values()),
        active.ram_energy_kwh - sum(e.ram_energy_kwh for e in by_node.values()),
    )
    idle = ComponentEnergy(cpu_energy_kwh=idle_cpu_kwh, ram_energy_kwh=static_ram_kwh)
    return Attribution(
        "cputime", by_node, idle, other, reading, shares, _rates(by_node, cpu_s_by_node)
    )


def _rates(
    by_node: Mapping[str, ComponentEnergy], cpu_s_by_node: Mapping[str, float]
) -> dict[str, tuple[float, float, float]]:
    rates: dict[str, tuple[float, float, float]] = {}
    for node, e in by_node.items():
        cpu_s = cpu_s_by_node.get(node, 0.0)
        if cpu_s > 0:
            rates[node] = (
                e.cpu_energy_kwh / cpu_s,
                e.gpu_energy_kwh / cpu_s,
                e.ram_energy_kwh / cpu_s,
            )
        else:
            rates[node] = (0.0, 0.0, 0.0)
    return rates
