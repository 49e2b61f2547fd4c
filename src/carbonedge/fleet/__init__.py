"""Model Deployer (paper III.A (D), III.F): fleet specs, local process nodes, execution, faults.

Heavy libraries are not imported here: torch is imported only in the node processes.
"""

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
from carbonedge.fleet.dispatch import Dispatcher, FleetTask
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

__all__ = [
    "DeployError",
    "Dispatcher",
    "FleetBackend",
    "FleetError",
    "FleetSpec",
    "FleetTask",
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
    "TaskResult",
    "default_fleet",
    "deploy_pipeline",
    "device_profile_names",
    "load_fleet",
    "module_payload",
    "submit_pipeline",
]
