"""Why the engine did not run a task; each error carries the HTTP status ``serve`` answers with.

``Overloaded`` and ``NoEligibleNode`` are refusals, not failures: they come at once (or after
the request's bounded wait) with ``retry_after_s``, a hint of when capacity is likely back.
"""

from __future__ import annotations

from collections.abc import Sequence

from carbonedge.errors import CarbonEdgeError

__all__ = ["EngineError", "NoEligibleNode", "Overloaded", "TaskFailed", "TaskTimeout"]


class EngineError(CarbonEdgeError):
    """A task could not be run; ``status`` is the HTTP status code that describes it."""

    status = 500
    retry_after_s: float | None = None


class Overloaded(EngineError):
    """Admission refused: the engine's queue of waiting tasks is full."""

    status = 503

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NoEligibleNode(EngineError):
    """No node is up, or Algorithm 1 filtered every node for longer than the task may wait."""

    status = 503

    def __init__(
        self,
        message: str,
        reasons: Sequence[dict[str, object]] = (),
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
        self.retry_after_s = retry_after_s


class TaskFailed(EngineError):
    """The node failed the task for a reason other than going down (a model error, ...)."""

    status = 502


class TaskTimeout(EngineError):
    """The node did not answer within the engine's task timeout."""

    status = 504
