"""Energy rate of a reproduction: each run's own window (``window``) or one rate pooled over
every window of the reproduction (``pooled``, the default).

Why pooling: on a simulated fleet all nodes are slices of ONE physical CPU. Without RAPL,
CodeCarbon models CPU power from host-wide load (``TDP x (0.1 + 0.9 x load^3)``), so a window in
which a small-quota node runs keeps the host less busy and is modelled as cheaper per CPU-second
than a window on a bigger node: an artefact of the model, not a property of the node. Windows of
0.3-1 s (shorter than the 1 s sampling) add noise. Pooling charges every run the same host rate
per unit of work, computed after all runs from the same measurements (a pure recomputation).

- ``cputime`` (rate per node CPU-second), for component ``c`` (CPU, GPU, RAM), in kWh/s::

      rate_c = sum_windows sum_nodes E_node,c / sum_windows sum_nodes cpu_s_node
      E_node,c = cpu_s_node x rate_c

  where ``E_node,c`` in the numerator is the window's *active* energy attributed to the node
  (paper III.B Eq. 1 via ``carbon.attribute``; static energy and other processes excluded).
- ``quota`` (the paper's IV.A.1; rate per second of window)::

      rate_c = sum_windows E_host,c / sum_windows window_s
      E_node,c = rate_c x window_s x q_node / sum_q

Carbon stays Eq. 2 per node: ``C = E_node x I_node x PUE_node``. Over the pooled windows the
charged energy equals the attributed energy exactly; per window it moves between runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from carbonedge.carbon import ComponentEnergy, carbon_g

if TYPE_CHECKING:
    from carbonedge.experiments.records import ExperimentResult, RunRecord, SweepRecord

#: W·s per kWh.
_WS_PER_KWH = 3_600_000.0

#: (name, cpu_quota, memory_mb, intensity_g_per_kwh, pue): ``Environment.nodes``.
NodeRow = tuple[str, float, int, float, float]


class WindowFigures(Protocol):
    """What one meter window recorded (``RunRecord`` and ``SweepRecord`` both have it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def window_s(self) -> float: ...
    @property
    def node_cpu_s(self) -> Mapping[str, float]: ...
    @property
    def cpu_energy_kwh(self) -> float: ...
    @property
    def gpu_energy_kwh(self) -> float: ...
    @property
    def ram_energy_kwh(self) -> float: ...


@dataclass(frozen=True)
class PooledRate:
    """One host energy rate per component, pooled over the windows of a reproduction.

    Attributes:
        attribution: ``cputime`` or ``quota``.
        basis: ``node_cpu_s`` (cputime: per CPU-second of the nodes' processes) or
            ``window_s`` (quota: per second of meter window).
        cpu_kwh_per_s, gpu_kwh_per_s, ram_kwh_per_s: the rate per component, kWh per basis
            second.
        energy_kwh: the pooled numerator (cputime: active energy attributed to nodes; quota:
            host energy), kWh.
        seconds: the pooled denominator (node CPU-seconds or window seconds), s.
        windows: how many windows were pooled.
    """

    attribution: str
    basis: str
    cpu_kwh_per_s: float
    gpu_kwh_per_s: float
    ram_kwh_per_s: float
    energy_kwh: float
    seconds: float
    windows: int

    @property
    def kwh_per_s(self) -> float:
        """CPU + GPU + RAM rate, kWh per basis second."""
        return self.cpu_kwh_per_s + self.gpu_kwh_per_s + self.ram_kwh_per_s

    @property
    def power_w(self) -> float:
        """The rate as power, W (per busy core for ``node_cpu_s``; of the host for
        ``window_s``)."""
        return self.kwh_per_s * _WS_PER_KWH

    def energy(self, seconds: float) -> ComponentEnergy:
        """Energy of ``seconds`` basis seconds at this rate, kWh per component."""
        return ComponentEnergy(
            self.cpu_kwh_per_s * seconds,
            self.gpu_kwh_per_s * seconds,
            self.ram_kwh_per_s * seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(kwh_per_s=self.kwh_per_s, power_w=self.power_w)
        return data


def pooled_rate(windows: Iterable[WindowFigures], attribution: str) -> PooledRate:
    """The pooled rate of ``windows`` (see the module docstring); 0 when nothing was used."""
    e = [0.0, 0.0, 0.0]
    seconds = 0.0
    count = 0
    for w in windows:
        count += 1
        e[0] += w.cpu_energy_kwh
        e[1] += w.gpu_energy_kwh
        e[2] += w.ram_energy_kwh
        seconds += w.window_s if attribution == "quota" else math.fsum(w.node_cpu_s.values())
    cpu, gpu, ram = (x / seconds if seconds > 0 else 0.0 for x in e)
    basis = "window_s" if attribution == "quota" else "node_cpu_s"
    return PooledRate(attribution, basis, cpu, gpu, ram, sum(e), seconds, count)


def charge_nodes(
    window: WindowFigures, rate: PooledRate, nodes: Sequence[NodeRow]
) -> dict[str, ComponentEnergy]:
    """Each node's energy (kWh per component) in ``window`` at the pooled ``rate``."""
    if rate.basis == "window_s":
        host = rate.energy(window.window_s)
        total_q = sum(q for _, q, _, _, _ in nodes)
        return {
            n: ComponentEnergy(
                host.cpu_energy_kwh * q / total_q,
                host.gpu_energy_kwh * q / total_q,
                host.ram_energy_kwh * q / total_q,
            )
            for n, q, _, _, _ in nodes
        }
    return {n: rate.energy(window.node_cpu_s.get(n, 0.0)) for n, _, _, _, _ in nodes}


def carbon_of(node_energy: Mapping[str, ComponentEnergy], nodes: Sequence[NodeRow]) -> float:
    """Eq. 2 per node, summed: ``sum_n E_n x I_n x PUE_n``, gCO2."""
    table = {n: (i, p) for n, _, _, i, p in nodes}
    return math.fsum(
        carbon_g(e.energy_kwh, table[n][0], table[n][1]) for n, e in node_energy.items()
    )


def _sums(node_energy: Mapping[str, ComponentEnergy]) -> tuple[float, float, float]:
    es = node_energy.values()
    return (
        math.fsum(e.cpu_energy_kwh for e in es),
        math.fsum(e.gpu_energy_kwh for e in es),
        math.fsum(e.ram_energy_kwh for e in es),
    )


def charge_run(run: RunRecord, rate: PooledRate, nodes: Sequence[NodeRow]) -> RunRecord:
    """``run`` with its node energies and carbon charged at the pooled ``rate``."""
    energy = charge_nodes(run, rate, nodes)
    cpu, gpu, ram = _sums(energy)
    return dataclasses.replace(
        run,
        node_energy_kwh={n: e.energy_kwh for n, e in energy.items()},
        cpu_energy_kwh=cpu,
        gpu_energy_kwh=gpu,
        ram_energy_kwh=ram,
        carbon_g=carbon_of(energy, nodes),
        energy_rate="pooled",
    )


def charge_sweep(point: SweepRecord, rate: PooledRate, nodes: Sequence[NodeRow]) -> SweepRecord:
    """``point`` with its energy and carbon charged at the pooled ``rate``."""
    energy = charge_nodes(point, rate, nodes)
    cpu, gpu, ram = _sums(energy)
    return dataclasses.replace(
        point,
        node_energy_kwh={n: e.energy_kwh for n, e in energy.items()},
        cpu_energy_kwh=cpu,
        gpu_energy_kwh=gpu,
        ram_energy_kwh=ram,
        energy_kwh=cpu + gpu + ram,
        carbon_g=carbon_of(energy, nodes),
        energy_rate="pooled",
    )


def apply_energy_rate(result: ExperimentResult, energy_rate: str) -> ExperimentResult:
    """``result`` (measured, every record at the ``window`` rate) under ``energy_rate``.

    Pools the rate over every run and sweep point, and keeps the runs under the other rate in
    ``other_rate_runs`` so that the report can show both from the same measurements.
    """
    if result.energy_rate != "window":
        raise ValueError(f"apply_energy_rate needs window-rate records, got {result.energy_rate}")
    nodes = result.env.nodes
    windows: list[WindowFigures] = [*result.runs, *result.sweep]
    rate = pooled_rate(windows, result.params.attribution)
    pooled_runs = tuple(charge_run(r, rate, nodes) for r in result.runs)
    if energy_rate == "window":
        return dataclasses.replace(result, other_rate_runs=pooled_runs, pooled_rate=rate)
    if energy_rate != "pooled":
        raise ValueError(f"energy_rate must be 'pooled' or 'window', got {energy_rate!r}")
    return dataclasses.replace(
        result,
        runs=pooled_runs,
        sweep=tuple(charge_sweep(p, rate, nodes) for p in result.sweep),
        energy_rate="pooled",
        other_rate_runs=result.runs,
        pooled_rate=rate,
    )
