"""The run loop: tasks -> selection (the scheduler, Algorithm 1) -> fleet, with fault recovery.

``Dispatcher(fleet, select).run(tasks)`` keeps up to ``max_in_flight`` tasks on the fleet. For
each task it reads ``fleet.node_states()`` (only nodes that are up) and asks
``select(task, states)`` for a node name (``None``: no eligible node now; the loop waits for a
task to finish and asks again). A task whose node dies or hangs comes back as
:class:`NodeDownError` and is re-selected among the remaining nodes (up to ``max_attempts``).
Results are keyed by ``task_id``: a task is recorded exactly once; a late duplicate is dropped and
counted.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from carbonedge.fleet.base import FleetBackend, FleetError, NodeDownError, TaskResult
from carbonedge.fleet.telemetry import NodeState

if TYPE_CHECKING:
    from carbonedge.fleet.base import Array


@dataclass(frozen=True)
class FleetTask:
    """One inference task; ``memory_mb`` is what Algorithm 1's resource check needs (MiB)."""

    task_id: str
    model_key: str
    batch: Array = field(repr=False)
    memory_mb: float = 0.0


Select = Callable[[FleetTask, list[NodeState]], str | None]


@dataclass(frozen=True)
class DispatchReport:
    """Results in task order; ``decision_us``: mean time of one ``select`` call (microseconds)."""

    results: tuple[TaskResult, ...]
    redispatched: int
    duplicates_dropped: int
    decision_us: float


def scheduler_select(scheduler: Any) -> Select:
    """Adapt ``carbonedge.scheduling.Scheduler`` (``select(task, nodes) -> Decision``)."""
    from carbonedge.scheduling import Task

    def select(task: FleetTask, states: list[NodeState]) -> str | None:
        node: str | None = scheduler.select(Task(task.task_id, task.memory_mb), states).node
        return node

    return select


class Dispatcher:
    """Runs tasks on a fleet through a selection callable; see the module docstring."""

    def __init__(
        self,
        fleet: FleetBackend,
        select: Select,
        *,
        max_in_flight: int | None = None,
        max_attempts: int = 3,
        no_node_timeout_s: float = 30.0,
    ) -> None:
        self.fleet = fleet
        self.select = select
        self.max_in_flight = max_in_flight or 2 * len(fleet.spec.nodes)
        self.max_attempts = max_attempts
        self.no_node_timeout_s = no_node_timeout_s

    def run(
        self, tasks: Iterable[FleetTask], on_result: Callable[[TaskResult], None] | None = None
    ) -> DispatchReport:
        """Run every task to completion; FleetError if one cannot be placed or keeps failing."""
        order: list[str] = []
        todo: deque[tuple[FleetTask, int]] = deque()
        for t in tasks:
            order.append(t.task_id)
            todo.append((t, 1))
        done_q: queue.SimpleQueue[Future[TaskResult]] = queue.SimpleQueue()
        in_flight: dict[Future[TaskResult], tuple[FleetTask, int]] = {}
        results: dict[str, TaskResult] = {}
        redispatched = duplicates = decisions = 0
        decide_s = 0.0
        waiting_since: float | None = None
        while todo or in_flight:
            while todo and len(in_flight) < self.max_in_flight:
                task, attempt = todo[0]
                t0 = time.perf_counter()
                name = self.select(task, self.fleet.node_states(task.model_key))
                decide_s += time.perf_counter() - t0
                decisions += 1
                if name is None:
                    waiting_since = waiting_since or time.monotonic()
                    if time.monotonic() - waiting_since > self.no_node_timeout_s:
                        raise FleetError(
                            f"task {task.task_id!r}: no eligible node for "
                            f"{self.no_node_timeout_s:.0f} s"
                        )
                    break
                waiting_since = None
                todo.popleft()
                fut = self.fleet.submit(name, task.model_key, task.batch, task_id=task.task_id)
                in_flight[fut] = (task, attempt)
                fut.add_done_callback(done_q.put)
            if not in_flight:
                time.sleep(0.02)  # nothing running and no node eligible: poll again
                continue
            fut = done_q.get()
            task, attempt = in_flight.pop(fut)
            exc = fut.exception()
            if isinstance(exc, NodeDownError):
                if attempt >= self.max_attempts:
                    raise FleetError(f"task {task.task_id!r} failed {attempt} times: {exc}")
                todo.appendleft((task, attempt + 1))
                redispatched += 1
            elif exc is not None:
                raise exc
            elif task.task_id in results:
                duplicates += 1
            else:
                res = replace(fut.result(), attempts=attempt)
                results[task.task_id] = res
                if on_result is not None:
                    on_result(res)
        return DispatchReport(
            results=tuple(results[t] for t in order),
            redispatched=redispatched,
            duplicates_dropped=duplicates,
            decision_us=decide_s / max(decisions, 1) * 1e6,
        )
