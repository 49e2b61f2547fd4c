"""Model Partitioner (paper Section III.E, component C): layer costs, boundaries, segments.

The planner (:mod:`.units`, :mod:`.eq5`, :mod:`.planner`, :mod:`.placement`) is pure Python.
The adapters that read and cut a torch model (:mod:`.analysis`, :mod:`.chain`,
:mod:`.segments`) import torch; their names are loaded on first use so that
``import carbonedge.partition`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from carbonedge.partition.errors import PartitionError
from carbonedge.partition.placement import (
    LinkModel,
    NodeProfile,
    PlacedPlan,
    PlacedSegment,
    PlacementResult,
    evaluate,
    place,
)
from carbonedge.partition.planner import (
    OBJECTIVES,
    Objective,
    Plan,
    SegmentPlan,
    plan_boundaries,
    plan_from_boundaries,
)
from carbonedge.partition.units import (
    COST_KINDS,
    CostKind,
    Unit,
    unit_comm_bytes,
    unit_costs,
)

if TYPE_CHECKING:
    from carbonedge.partition.analysis import analyze, whole_model_ms
    from carbonedge.partition.segments import (
        ModelSegment,
        build_segments,
        export_segments_onnx,
    )

_LAZY = {
    "analyze": "carbonedge.partition.analysis",
    "whole_model_ms": "carbonedge.partition.analysis",
    "ModelSegment": "carbonedge.partition.segments",
    "build_segments": "carbonedge.partition.segments",
    "export_segments_onnx": "carbonedge.partition.segments",
}

__all__ = [
    "COST_KINDS",
    "OBJECTIVES",
    "CostKind",
    "LinkModel",
    "ModelSegment",
    "NodeProfile",
    "Objective",
    "PartitionError",
    "PlacedPlan",
    "PlacedSegment",
    "PlacementResult",
    "Plan",
    "SegmentPlan",
    "Unit",
    "analyze",
    "build_segments",
    "evaluate",
    "export_segments_onnx",
    "place",
    "plan_boundaries",
    "plan_from_boundaries",
    "unit_comm_bytes",
    "unit_costs",
    "whole_model_ms",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'carbonedge.partition' has no attribute {name!r}")
