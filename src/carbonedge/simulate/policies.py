"""The policies a simulation compares: each is the project's own :class:`Scheduler` for the
interactive requests, and a rule for the deferrable ones (run now, or at a forecast hour).

No policy is written again here: placement is always ``Scheduler.select`` over the fleet's
:class:`~carbonedge.scheduling.FleetArrays` (the NumPy path, proven equal to the plain one by
tests/scheduling/test_vectorized.py), and deferral picks the hour of least forecast carbon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from carbonedge.scheduling import Scheduler, Weights

__all__ = ["AGNOSTIC", "POLICY_NAMES", "SimPolicy", "policies"]

#: How a policy treats deferrable requests:
#: ``same``: like interactive ones; ``now``: at arrival, by least predicted carbon (no SLO);
#: ``nearest-hour``: at the forecast-cleanest hour of the nearest site's grid, nearest site;
#: ``anywhere-hour``: at the forecast-cleanest (hour, site), by least predicted carbon.
Deferral = Literal["same", "now", "nearest-hour", "anywhere-hour"]

#: The carbon-agnostic baseline every "cut" is measured against.
AGNOSTIC: Final = "nearest"


@dataclass(frozen=True)
class SimPolicy:
    """One row of the policy table."""

    name: str
    description: str
    interactive: Scheduler
    deferral: Deferral
    deferred: Scheduler  # places the deferrable requests (unused with ``same``)
    slo: bool  # whether the policy is held to the latency SLO (its optimum is the SLO one)


_DESCRIPTIONS: Final = {
    "nearest": "carbon-agnostic: least predicted latency (nearest site while it has room)",
    "least-loaded": "carbon-agnostic: least loaded node (Algorithm 1 with wL = 1 only)",
    "performance": "paper Algorithm 1, Table I Performance weights",
    "balanced": "paper Algorithm 1, Table I Balanced weights",
    "green": "paper Algorithm 1, Table I Green weights",
    "normalized-green": "Green weights on per-decision min-max normalised components",
    "constrained": "least predicted carbon among nodes meeting the latency SLO",
    "spatial": "constrained; deferrable requests now, at the least-carbon site (no SLO)",
    "temporal": "nearest; deferrable requests at the forecast-cleanest hour of that site",
    "spatio-temporal": "constrained; deferrable at the forecast-cleanest hour and site",
}
POLICY_NAMES: Final = tuple(_DESCRIPTIONS)


def policies(
    names: tuple[str, ...] | None, slo_ms: float, latency_threshold_ms: float
) -> list[SimPolicy]:
    """The named policies (all by default, in table order) for one scenario's limits."""
    thr = latency_threshold_ms
    fastest = Scheduler("fastest", latency_threshold_ms=thr)
    greenest = Scheduler("constrained", latency_threshold_ms=thr)
    under_slo = Scheduler("constrained", latency_threshold_ms=thr, slo_ms=slo_ms)

    def paper(weights: str | Weights, policy: str = "paper") -> Scheduler:
        return Scheduler(policy, weights, latency_threshold_ms=thr)

    table = {
        "nearest": (fastest, "same", fastest, False),
        "least-loaded": (paper(Weights(0.0, 1.0, 0.0, 0.0, 0.0)), "same", fastest, False),
        "performance": (paper("performance"), "same", fastest, False),
        "balanced": (paper("balanced"), "same", fastest, False),
        "green": (paper("green"), "same", fastest, False),
        "normalized-green": (paper("green", "normalized"), "same", fastest, False),
        "constrained": (under_slo, "same", under_slo, True),
        "spatial": (under_slo, "now", greenest, True),
        "temporal": (fastest, "nearest-hour", fastest, False),
        "spatio-temporal": (under_slo, "anywhere-hour", greenest, True),
    }
    chosen = names or POLICY_NAMES
    out = []
    for name in chosen:
        interactive, deferral, deferred, slo = table[name]
        out.append(SimPolicy(name, _DESCRIPTIONS[name], interactive, deferral, deferred, slo))  # type: ignore[arg-type]
    return out
