"""Large fleets: node states as NumPy arrays (struct of arrays) and the three policies over them.

Converting 10,000 :class:`NodeState` objects per decision would cost milliseconds, so a
:class:`FleetArrays` is built once and telemetry writes into it in place (``update`` or the arrays
themselves). Every expression repeats :mod:`.policies` with the same order of floating-point
operations, so both paths return bit-identical values and the same node, ties included
(``argmax``/``argmin`` take the first extreme, as the plain loops' strict comparisons do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from carbonedge.accounting.units import J_PER_KWH, W_MS_PER_WH
from carbonedge.errors import ConfigError
from carbonedge.scheduling.components import LOAD_LIMIT
from carbonedge.scheduling.policies import Outcome
from carbonedge.scheduling.state import NodeState
from carbonedge.scheduling.weights import Weights

__all__ = [
    "FleetArrays",
    "VectorPolicy",
    "make_constrained_np",
    "make_fastest_np",
    "make_normalized_np",
    "make_paper_np",
]

Array = npt.NDArray[np.float64]
VectorPolicy = Callable[["FleetArrays", float, float], Outcome]

_FIELDS = (
    "cpu_quota",
    "memory_mb",
    "free_cpu",
    "free_memory_mb",
    "load",
    "latency_ms",
    "avg_time_s",
    "tasks_in_flight",
    "power_w",
    "intensity_g_per_kwh",
)


class FleetArrays:
    """A fleet's node states as one float64 array per :class:`NodeState` field, in node order.

    Units are those of :class:`NodeState` (cores, MB, 0..1, ms, s, count, W, gCO2/kWh).
    ``update(i, state)`` validates through :class:`NodeState`; writing into the arrays directly
    (e.g. ``fleet.load[:] = loads``) is allowed for bulk telemetry and is not validated.
    """

    __slots__ = ("names", *_FIELDS)

    names: tuple[str, ...]
    cpu_quota: Array
    memory_mb: Array
    free_cpu: Array
    free_memory_mb: Array
    load: Array
    latency_ms: Array
    avg_time_s: Array
    tasks_in_flight: Array
    power_w: Array
    intensity_g_per_kwh: Array

    def __init__(self, states: Iterable[NodeState]) -> None:
        states = list(states)
        self.names = tuple(s.name for s in states)
        if len(set(self.names)) != len(self.names):
            raise ConfigError("nodes: node names must be unique")
        for field in _FIELDS:
            setattr(self, field, np.array([getattr(s, field) for s in states], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.names)

    def update(self, index: int, state: NodeState) -> None:
        """Replace node ``index``'s telemetry with ``state`` (same name required)."""
        if state.name != self.names[index]:
            raise ConfigError(
                f"nodes[{index}].name: expected {self.names[index]!r}, got {state.name!r}"
            )
        for field in _FIELDS:
            getattr(self, field)[index] = getattr(state, field)

    def state(self, index: int) -> NodeState:
        """Node ``index`` as a validated :class:`NodeState` (for explanations, not the hot path)."""
        values = {f: float(getattr(self, f)[index]) for f in _FIELDS}
        tasks = values.pop("tasks_in_flight")
        return NodeState(name=self.names[index], tasks_in_flight=int(tasks), **values)

    def states(self) -> list[NodeState]:
        """All nodes as :class:`NodeState` objects, in order."""
        return [self.state(i) for i in range(len(self))]


def _components(f: FleetArrays) -> tuple[Array, Array, Array, Array, Array]:
    t = f.avg_time_s
    return (
        0.5 * (f.free_cpu / f.cpu_quota + f.free_memory_mb / f.memory_mb),
        1.0 - f.load,
        1.0 / (1.0 + t),
        1.0 / (1.0 + 2.0 * f.tasks_in_flight),
        1.0 / (1.0 + f.intensity_g_per_kwh * (f.power_w * (t * 1000.0) / W_MS_PER_WH)),
    )


def _ineligible(f: FleetArrays, mem: float, cpu: float, thr: float) -> npt.NDArray[np.bool_]:
    bad = f.load > LOAD_LIMIT
    bad |= f.latency_ms > thr
    bad |= f.free_memory_mb < mem
    bad |= f.free_cpu < cpu
    return bad


def make_paper_np(weights: Weights, latency_threshold_ms: float) -> VectorPolicy:
    """Algorithm 1 over arrays; same choices as :func:`.policies.make_paper`.

    Computed in place in two scratch arrays. IEEE multiplication and addition are commutative,
    so ``x *= w`` equals the plain path's ``w * x`` bit for bit; the five terms are added
    left to right as there.
    """
    wr, wl, wp, wb, wc = weights.as_tuple()
    thr = float(latency_threshold_ms)

    def run(f: FleetArrays, mem: float, cpu: float) -> Outcome:
        if not len(f.names):
            return -1, float("nan"), False, False
        t = f.avg_time_s
        s = np.divide(f.free_cpu, f.cpu_quota)
        tmp = np.divide(f.free_memory_mb, f.memory_mb)
        s += tmp
        s *= 0.5
        s *= wr  # wR SR
        np.subtract(1.0, f.load, out=tmp)
        tmp *= wl
        s += tmp  # + wL SL
        np.add(1.0, t, out=tmp)
        np.divide(1.0, tmp, out=tmp)
        tmp *= wp
        s += tmp  # + wP SP
        np.multiply(2.0, f.tasks_in_flight, out=tmp)
        tmp += 1.0
        np.divide(1.0, tmp, out=tmp)
        tmp *= wb
        s += tmp  # + wB SB
        np.multiply(t, 1000.0, out=tmp)
        tmp *= f.power_w
        tmp /= W_MS_PER_WH  # E_est in Wh (Eq. 4)
        tmp *= f.intensity_g_per_kwh
        tmp += 1.0
        np.divide(1.0, tmp, out=tmp)
        tmp *= wc
        s += tmp  # + wC SC
        np.copyto(s, -np.inf, where=_ineligible(f, mem, cpu, thr))
        i = int(np.argmax(s))
        best = float(s[i])
        if not best > 0.0:
            return -1, float("nan"), False, False
        return i, best, False, False

    return run


def make_normalized_np(weights: Weights, latency_threshold_ms: float) -> VectorPolicy:
    """Min-max normalised scores over arrays; same choices as :func:`.policies.make_normalized`."""
    w = weights.as_tuple()
    thr = float(latency_threshold_ms)

    def run(f: FleetArrays, mem: float, cpu: float) -> Outcome:
        idx = np.flatnonzero(~_ineligible(f, mem, cpu, thr))
        if idx.size == 0:
            return -1, float("nan"), False, False
        if idx.size == 1:
            return int(idx[0]), 0.0, False, False
        total: Array | None = None
        for wx, x in zip(w, _components(f), strict=True):
            xe = x[idx]
            lo = float(xe.min())
            gap = float(xe.max()) - lo
            k = wx / gap if gap > 0.0 else 0.0
            term = k * (xe - lo)
            total = term if total is None else total + term
        assert total is not None
        j = int(np.argmax(total))
        return int(idx[j]), float(total[j]), False, False

    return run


def make_constrained_np(
    latency_threshold_ms: float, slo_ms: float, carbon_budget_g: float
) -> VectorPolicy:
    """SLO and budget policy over arrays; same choices as :func:`.policies.make_constrained`."""
    thr = float(latency_threshold_ms)
    slo = float(slo_ms)
    budget = float(carbon_budget_g)

    def run(f: FleetArrays, mem: float, cpu: float) -> Outcome:
        idx = np.flatnonzero(~_ineligible(f, mem, cpu, thr))
        if idx.size == 0:
            return -1, float("nan"), False, False
        t = f.avg_time_s[idx]
        lat = f.latency_ms[idx] + (f.tasks_in_flight[idx] + 1.0) * (t * 1000.0)
        c = f.intensity_g_per_kwh[idx] * (f.power_w[idx] * t / J_PER_KWH)
        meets = lat <= slo
        within = meets & (c <= budget)
        if within.any():
            j = int(np.argmin(np.where(within, c, np.inf)))
            return int(idx[j]), float(c[j]), False, False
        if meets.any():
            j = int(np.argmin(np.where(meets, c, np.inf)))
            return int(idx[j]), float(c[j]), False, True
        j = int(np.argmin(lat))
        cj = float(c[j])
        return int(idx[j]), cj, True, cj > budget

    return run


def make_fastest_np(latency_threshold_ms: float) -> VectorPolicy:
    """Least predicted latency over arrays; same choices as :func:`.policies.make_fastest`."""
    thr = float(latency_threshold_ms)

    def run(f: FleetArrays, mem: float, cpu: float) -> Outcome:
        lat = f.tasks_in_flight + 1.0
        lat *= f.avg_time_s * 1000.0
        lat += f.latency_ms
        np.copyto(lat, np.inf, where=_ineligible(f, mem, cpu, thr))
        if not len(lat):
            return -1, float("nan"), False, False
        i = int(np.argmin(lat))
        best = float(lat[i])
        if best == np.inf:
            return -1, float("nan"), False, False
        return i, best, False, False

    return run
