"""A carbon-aware HTTP inference endpoint on a CarbonEdge fleet (``carbonedge serve``).

Send an image, get the top-5 predictions, the node that ran it (chosen by the Carbon-Aware
Scheduler, paper III.C-D) and the request's estimated energy and carbon (Carbon Monitor, III.B;
Eq. 2), with how they were obtained. A FastAPI application on uvicorn over the engine
(:mod:`carbonedge.engine`), which places, admits, retries, charges and records every request.
"""

from carbonedge.serve.app import MAX_LEDGER_LIMIT, create_app, outcome_body, request_sci, top_k
from carbonedge.serve.config import DEFAULT_MAX_BODY_BYTES, ServeConfig
from carbonedge.serve.dashboard import dashboard_router
from carbonedge.serve.decode import decode_body, decode_image
from carbonedge.serve.errors import (
    BadRequest,
    NoEligibleNode,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    ServeError,
    TaskFailed,
    TaskTimeout,
)
from carbonedge.serve.limits import ServerLimits
from carbonedge.serve.metrics import ServeMetrics
from carbonedge.serve.server import ServeApp, launch

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_LEDGER_LIMIT",
    "BadRequest",
    "NoEligibleNode",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServeApp",
    "ServeConfig",
    "ServeError",
    "ServeMetrics",
    "ServerLimits",
    "TaskFailed",
    "TaskTimeout",
    "create_app",
    "dashboard_router",
    "decode_body",
    "decode_image",
    "launch",
    "outcome_body",
    "request_sci",
    "top_k",
]
