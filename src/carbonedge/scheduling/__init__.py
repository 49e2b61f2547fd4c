"""Carbon-Aware Scheduler (paper III.C-D, component B): Eq. 3-4, Table I, Algorithm 1 and newer
policies. Pure: no I/O (the file loader lives in :mod:`.fleet_file`), no torch, no codecarbon.
"""

from carbonedge.scheduling.components import (
    LOAD_LIMIT,
    Components,
    components,
    energy_estimate_wh,
    filter_reasons,
    predicted_carbon_g,
    predicted_latency_ms,
    score_carbon,
    score_fairness,
    score_load,
    score_performance,
    score_resources,
)
from carbonedge.scheduling.decision import Decision, Explanation, NodeExplanation
from carbonedge.scheduling.reference import reference_paper_select
from carbonedge.scheduling.scheduler import DEFAULT_LATENCY_THRESHOLD_MS, POLICIES, Scheduler
from carbonedge.scheduling.state import NodeState, Task
from carbonedge.scheduling.sweep import SweepPoint, sweep_wc
from carbonedge.scheduling.temporal import (
    ForecastPoint,
    ShiftError,
    ShiftPlan,
    best_start,
    window_mean_g_per_kwh,
)
from carbonedge.scheduling.vectorized import FleetArrays
from carbonedge.scheduling.weights import MODES, Weights, resolve_weights

__all__ = [
    "DEFAULT_LATENCY_THRESHOLD_MS",
    "LOAD_LIMIT",
    "MODES",
    "POLICIES",
    "Components",
    "Decision",
    "Explanation",
    "FleetArrays",
    "ForecastPoint",
    "NodeExplanation",
    "NodeState",
    "Scheduler",
    "ShiftError",
    "ShiftPlan",
    "SweepPoint",
    "Task",
    "Weights",
    "best_start",
    "components",
    "energy_estimate_wh",
    "filter_reasons",
    "predicted_carbon_g",
    "predicted_latency_ms",
    "reference_paper_select",
    "resolve_weights",
    "score_carbon",
    "score_fairness",
    "score_load",
    "score_performance",
    "score_resources",
    "sweep_wc",
    "window_mean_g_per_kwh",
]
