"""Model Deployer (paper III.A (D), III.F): fleet specs, local process nodes, execution, faults.

Heavy libraries are not imported here: torch is imported only in the node processes, and ray
only when a ``RayFleet`` starts. ``RayFleet`` and ``RayTaskResult`` are exported lazily (module
``__getattr__``): ``import carbonedge.fleet`` does not even load ``carbonedge.fleet.ray_backend``.
"""

from typing import TYPE_CHECKING, Any

from carbonedge.fleet.base import (
    DeployError,
    FleetBackend,
    FleetError,
    ModelPayload,
    ModelRef,
    ModuleBlob,
    NodeDownError,
    NodeHealth,
    Pipeline,
    TaskResult,
)
from carbonedge.fleet.local import LocalFleet
from carbonedge.fleet.pipeline import deploy_pipeline, module_payload, submit_pipeline
from carbonedge.fleet.spec import (
    FleetSpec,
    NodeSpec,
    PowerProfile,
    default_fleet,
    device_profile_names,
    load_fleet,
)
from carbonedge.fleet.telemetry import NodeState

if TYPE_CHECKING:
    from carbonedge.fleet.ray_backend import RayFleet, RayTaskResult

_LAZY = {
    "RayFleet": "carbonedge.fleet.ray_backend",
    "RayTaskResult": "carbonedge.fleet.ray_backend",
}

__all__ = [
    "DeployError",
    "FleetBackend",
    "FleetError",
    "FleetSpec",
    "LocalFleet",
    "ModelPayload",
    "ModelRef",
    "ModuleBlob",
    "NodeDownError",
    "NodeHealth",
    "NodeSpec",
    "NodeState",
    "Pipeline",
    "PowerProfile",
    "RayFleet",
    "RayTaskResult",
    "TaskResult",
    "default_fleet",
    "deploy_pipeline",
    "device_profile_names",
    "load_fleet",
    "module_payload",
    "submit_pipeline",
]


def __getattr__(name: str) -> Any:
    """Import the Ray backend on first use of ``RayFleet`` / ``RayTaskResult``."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
