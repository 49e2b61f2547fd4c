"""Errors of the inference endpoint; each carries the HTTP status it is answered with."""

from __future__ import annotations

from collections.abc import Sequence

from carbonedge.errors import CarbonEdgeError

__all__ = [
    "BadGateway",
    "BadRequest",
    "GatewayTimeout",
    "NoEligibleNode",
    "PayloadTooLarge",
    "ServeError",
]


class ServeError(CarbonEdgeError):
    """A request or server setting cannot be served; ``status`` is the HTTP status code."""

    status = 500


class BadRequest(ServeError):
    """The request is malformed: an image that cannot be decoded, bad JSON, a bad parameter."""

    status = 400


class PayloadTooLarge(ServeError):
    """The body is larger than the configured limit (``max_body_bytes``)."""

    status = 413


class NoEligibleNode(ServeError):
    """The scheduler found no eligible node (Algorithm 1 filtered all), or none is up."""

    status = 503

    def __init__(self, message: str, reasons: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class BadGateway(ServeError):
    """The fleet failed the task for a reason other than a node going down."""

    status = 502


class GatewayTimeout(ServeError):
    """The node did not answer within the server's task timeout."""

    status = 504
