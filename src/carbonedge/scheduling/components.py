"""The score components of Algorithm 1 and the estimates of Eq. 4, one readable function each.

These are the reference definitions. The hot paths (:mod:`.policies`, :mod:`.vectorized`) inline
the very same expressions, in the same order of floating-point operations, so that the plain and
the NumPy path give bit-identical scores; the tests compare them with these functions.
"""

from __future__ import annotations

from typing import NamedTuple

from carbonedge.accounting.units import J_PER_KWH, W_MS_PER_WH
from carbonedge.scheduling.state import NodeState, Task

__all__ = [
    "LOAD_LIMIT",
    "Components",
    "components",
    "energy_estimate_wh",
    "filter_reasons",
    "predicted_carbon_g",
    "predicted_latency_ms",
    "score_carbon",
    "score_fairness",
    "score_load",
    "score_performance",
    "score_resources",
]

#: Algorithm 1, line 3: a node whose load is above this is skipped.
LOAD_LIMIT = 0.8

_MS_PER_S = 1000.0


class Components(NamedTuple):
    """SR, SL, SP, SB, SC of one node (Eq. 3), each dimensionless in [0, 1]."""

    sr: float
    sl: float
    sp: float
    sb: float
    sc: float


def score_resources(node: NodeState) -> float:
    """SR: the fraction of the node's own CPU and memory that is free, averaged.

    ``SR = (free_cpu / cpu_quota + free_memory_mb / memory_mb) / 2``. The paper leaves SR
    undefined; see docs/scheduler.md for why it is relative to the node itself (not to the
    fleet's largest node) and why the task enters only through the sufficiency filter.
    """
    return 0.5 * (node.free_cpu / node.cpu_quota + node.free_memory_mb / node.memory_mb)


def score_load(node: NodeState) -> float:
    """SL = 1 - load (Algorithm 1, line 8)."""
    return 1.0 - node.load


def score_performance(node: NodeState) -> float:
    """SP = 1 / (1 + avg_time), avg_time in seconds (Algorithm 1, line 9)."""
    return 1.0 / (1.0 + node.avg_time_s)


def score_fairness(node: NodeState) -> float:
    """SB = 1 / (1 + 2 x tasks_in_flight) (Algorithm 1, line 10)."""
    return 1.0 / (1.0 + 2.0 * node.tasks_in_flight)


def energy_estimate_wh(node: NodeState) -> float:
    """Eq. 4's ``E_est = P_node x T_avg / 3_600_000``, P in W and T_avg in ms.

    The paper calls the result kWh; W x ms / 3.6e6 is Wh (1 kWh = 3.6e9 W·ms). The printed
    formula is kept because it drives Table V; the unit is named for what it is.
    """
    return node.power_w * (node.avg_time_s * _MS_PER_S) / W_MS_PER_WH


def score_carbon(node: NodeState) -> float:
    """SC = 1 / (1 + I x E_est) with I in gCO2/kWh and E_est from Eq. 4 (Algorithm 1, line 11)."""
    return 1.0 / (1.0 + node.intensity_g_per_kwh * energy_estimate_wh(node))


def components(node: NodeState) -> Components:
    """All five components of ``node``."""
    return Components(
        score_resources(node),
        score_load(node),
        score_performance(node),
        score_fairness(node),
        score_carbon(node),
    )


def predicted_latency_ms(node: NodeState) -> float:
    """Time until a new task would finish on ``node``, in ms: network latency, then the tasks
    already in flight and the task itself, each taking ``avg_time_s``.

    ``latency_ms + (tasks_in_flight + 1) x avg_time_s x 1000``.
    """
    return node.latency_ms + (node.tasks_in_flight + 1.0) * (node.avg_time_s * _MS_PER_S)


def predicted_carbon_g(node: NodeState) -> float:
    """Carbon of one task on ``node`` in gCO2 (Eq. 2 with PUE 1, E in real kWh).

    ``I x P x avg_time_s / 3.6e6``: W x s / 3.6e6 = kWh, times gCO2/kWh.
    """
    return node.intensity_g_per_kwh * (node.power_w * node.avg_time_s / J_PER_KWH)


def filter_reasons(node: NodeState, task: Task, latency_threshold_ms: float) -> tuple[str, ...]:
    """Why Algorithm 1 skips ``node`` for ``task`` (lines 3 and 6); empty if it is eligible."""
    reasons: list[str] = []
    if node.load > LOAD_LIMIT:
        reasons.append(f"load {node.load:g} > {LOAD_LIMIT:g}")
    if node.latency_ms > latency_threshold_ms:
        reasons.append(f"latency_ms {node.latency_ms:g} > threshold {latency_threshold_ms:g}")
    if node.free_memory_mb < task.memory_mb:
        reasons.append(f"free_memory_mb {node.free_memory_mb:g} < task needs {task.memory_mb:g}")
    if node.free_cpu < task.cpu:
        reasons.append(f"free_cpu {node.free_cpu:g} < task needs {task.cpu:g}")
    return tuple(reasons)
