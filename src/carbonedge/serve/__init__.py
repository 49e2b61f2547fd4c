"""A carbon-aware HTTP inference endpoint on a CarbonEdge fleet (``carbonedge serve``).

Send an image, get the top-5 predictions, the node that ran it (chosen by the Carbon-Aware
Scheduler, paper III.C-D) and the request's estimated energy and carbon (Carbon Monitor, III.B;
Eq. 2), with how they were obtained. Standard library HTTP only; no extra packages.
"""

from carbonedge.serve.config import DEFAULT_MAX_BODY_BYTES, METER_KINDS, ServeConfig
from carbonedge.serve.decode import decode_body, decode_image
from carbonedge.serve.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    NoEligibleNode,
    PayloadTooLarge,
    ServeError,
)
from carbonedge.serve.ledger_writer import LedgerWriter
from carbonedge.serve.metrics import ServeMetrics
from carbonedge.serve.rates import EnergyWindows, RateSnapshot, WindowTotals, profile_snapshot
from carbonedge.serve.server import ServeApp, launch, make_meter, node_intensities
from carbonedge.serve.service import InferenceOutcome, InferenceService, top_k

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "METER_KINDS",
    "BadGateway",
    "BadRequest",
    "EnergyWindows",
    "GatewayTimeout",
    "InferenceOutcome",
    "InferenceService",
    "LedgerWriter",
    "NoEligibleNode",
    "PayloadTooLarge",
    "RateSnapshot",
    "ServeApp",
    "ServeConfig",
    "ServeError",
    "ServeMetrics",
    "WindowTotals",
    "decode_body",
    "decode_image",
    "launch",
    "make_meter",
    "node_intensities",
    "profile_snapshot",
    "top_k",
]
