"""Errors of the inference endpoint; each carries the HTTP status it is answered with.

The engine's refusals and failures (:mod:`carbonedge.engine.errors`) are served as they are;
this module adds what only HTTP can get wrong.
"""

from __future__ import annotations

from carbonedge.engine.errors import EngineError as ServeError
from carbonedge.engine.errors import NoEligibleNode, Overloaded, TaskFailed, TaskTimeout

__all__ = [
    "BadRequest",
    "NoEligibleNode",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServeError",
    "TaskFailed",
    "TaskTimeout",
]


class BadRequest(ServeError):
    """The request is malformed: an image that cannot be decoded, bad JSON, a bad parameter."""

    status = 400


class PayloadTooLarge(ServeError):
    """The body is larger than the configured limit (``max_body_bytes``)."""

    status = 413


class RequestTimeout(ServeError):
    """The client did not send its request (head or body) within the server's time limit."""

    status = 408
