"""CarbonEdge: carbon-aware deep learning inference on heterogeneous edge nodes.

The package mirrors the paper's four components (Section III.A):
``carbonedge.carbon`` (Carbon Monitor), ``carbonedge.scheduling`` (Carbon-Aware Scheduler),
``carbonedge.partition`` (Model Partitioner) and ``carbonedge.fleet`` (Model Deployer), plus
``carbonedge.models``, ``carbonedge.data`` and ``carbonedge.experiments``.
"""

from carbonedge.errors import CarbonEdgeError

__all__ = ["CarbonEdgeError", "__version__"]

__version__ = "0.1.0"
