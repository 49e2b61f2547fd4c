"""The paper's published numbers (Section IV, Tables II, IV, V), shown beside ours.

These are the only hard-coded results in the package, and every output that shows them labels
them as the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class PaperRow(NamedTuple):
    """One row of Table II: latency (ms), throughput (req/s), gCO2 per inference, reduction (%)."""

    latency_ms: float
    throughput_rps: float
    gco2_per_inf: float
    reduction_pct: float | None


#: Table II (MobileNetV2). Reduction vs Monolithic, positive = less carbon.
TABLE_II: Mapping[str, PaperRow] = MappingProxyType(
    {
        "Monolithic": PaperRow(254.85, 3.93, 0.0053, None),
        "AMP4EC": PaperRow(277.22, 3.62, 0.0056, -6.7),
        "CE-Performance": PaperRow(271.38, 3.69, 0.0067, -26.7),
        "CE-Balanced": PaperRow(271.11, 3.70, 0.0066, -24.7),
        "CE-Green": PaperRow(272.02, 3.68, 0.0041, 22.9),
    }
)


class PaperModelRow(NamedTuple):
    """One model of Table IV: Monolithic and CE-Green latency (ms), gCO2/inf, reduction (%)."""

    mono_latency_ms: float
    mono_gco2_per_inf: float
    green_latency_ms: float
    green_gco2_per_inf: float
    reduction_pct: float


#: Table IV, keyed by our registry names.
TABLE_IV: Mapping[str, PaperModelRow] = MappingProxyType(
    {
        "mobilenet_v2": PaperModelRow(254.85, 0.0053, 272.02, 0.0041, 22.9),
        "mobilenetv4_conv_small": PaperModelRow(82.96, 0.00123, 84.28, 0.00105, 14.8),
        "efficientnet_b0": PaperModelRow(116.29, 0.00198, 119.23, 0.00134, 32.2),
    }
)

#: Table V: % of tasks per node (Node-High, Node-Medium, Node-Green) for each mode.
TABLE_V: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "CE-Performance": (100.0, 0.0, 0.0),
        "CE-Balanced": (100.0, 0.0, 0.0),
        "CE-Green": (0.0, 0.0, 100.0),
    }
)
TABLE_V_NODES = ("Node-High", "Node-Medium", "Node-Green")

#: Section IV.C: inferences per gCO2 (Fig. 2).
INF_PER_G: Mapping[str, float] = MappingProxyType(
    {"CE-Green": 245.8, "Monolithic": 189.5, "CE-Performance": 149.6}
)
#: Section IV.F: scheduling overhead per decision, ms.
OVERHEAD_MS_PER_DECISION = 0.03
#: Section IV.B: CE-Green's carbon reduction vs Monolithic (MobileNetV2), %.
GREEN_REDUCTION_PCT = 22.9
#: Section IV.F / Fig. 3: the transition to Node-Green happens at wC >= 0.50.
SWEEP_TRANSITION_WC = 0.50
