"""The engine: one data path from a task to a ledger row, for every entry point.

```
submit(task) -> admission (bounded queue; refused at once when full)
  -> dispatcher thread: intensity feed -> fleet telemetry (NodeState) -> Scheduler.select
       (no eligible node: wait, re-deciding when a node frees up or every ``poll_s``, until the
        task's ``max_wait_s`` is spent -> NoEligibleNode with Retry-After)
  -> fleet.submit (local processes | Ray actors)
  -> result: node down -> re-placed on another node (``max_attempts`` in all)
  -> charge (carbonedge.engine.charge) -> ledger row (group commit) -> the task's future
```

A task's future resolves only after its ledger row is committed, so a caller that answers only
then (``serve`` does) never answers a task the ledger does not hold. The scheduler sees every
node as telemetry reports it (:mod:`carbonedge.fleet.telemetry`); the engine pushes each node's
intensity at decision time into the telemetry and records the very reading it pushed in the
task's row.

Placement is per task: the engine's default scheduler, another one given with the task (an
experiment's configuration, a tenant's constrained policy), or a pinned node (Monolithic runs,
pipeline stages), which skips the queue.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from carbonedge.accounting import Charge, EnergyMeter, charge_task
from carbonedge.carbon import IntensityReading, LedgerRow, MeterError, task_row
from carbonedge.carbon.ledger_writer import LedgerWriter
from carbonedge.engine.errors import (
    EngineError,
    NoEligibleNode,
    Overloaded,
    TaskFailed,
    TaskTimeout,
)
from carbonedge.engine.intensity import IntensityFeed
from carbonedge.engine.rates import RollingRates
from carbonedge.engine.windows import MeasurementWindows, NodeCpu
from carbonedge.errors import CarbonEdgeError, ConfigError
from carbonedge.fleet import FleetBackend, NodeDownError, Pipeline, TaskResult
from carbonedge.scheduling import Scheduler, Task

if TYPE_CHECKING:
    from carbonedge.fleet.base import Array

__all__ = ["Engine", "EngineConfig", "Outcome"]


@dataclass(frozen=True)
class EngineConfig:
    """How the engine admits, waits and retries.

    Attributes:
        max_queue: tasks that may wait for a node at once; one more is refused at once
            (:class:`Overloaded`, HTTP 503 with Retry-After).
        max_wait_s: how long a task may wait for an eligible node before it is refused
            (:class:`NoEligibleNode` with the scheduler's reasons), s.
        max_attempts: placements per task, 1 + re-dispatches after its node went down.
        poll_s: while no node is eligible, how often the decision is retried without an event
            (the latency signal decays and intensities change with time), s.
        task_timeout_s: how long a caller of :meth:`Engine.run` waits for a result, s.
        max_batch: dynamic batching: up to this many waiting tasks of the same model (and the
            same placement) run as one batch on one node (1: no batching).
        batch_wait_ms: how long the oldest waiting task may wait for others to fill a batch, ms.
    """

    max_queue: int = 256
    max_wait_s: float = 5.0
    max_attempts: int = 2
    poll_s: float = 0.05
    task_timeout_s: float = 300.0
    max_batch: int = 1
    batch_wait_ms: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.max_queue, bool) or self.max_queue < 1:
            raise ConfigError(f"max_queue: must be an integer >= 1, got {self.max_queue!r}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts: must be >= 1, got {self.max_attempts!r}")
        if isinstance(self.max_batch, bool) or not 1 <= self.max_batch <= 1024:
            raise ConfigError(f"max_batch: must be an integer 1..1024, got {self.max_batch!r}")
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise ConfigError(f"batch_wait_ms: must be 0..10000 (ms), got {self.batch_wait_ms!r}")
        for name in ("max_wait_s", "poll_s", "task_timeout_s"):
            value = getattr(self, name)
            if not 0 < value < float("inf"):
                raise ConfigError(f"{name}: must be a finite number > 0 (s), got {value!r}")


@dataclass(frozen=True)
class Outcome:
    """One task run and recorded. Times in ms unless named otherwise.

    ``queue_ms``: from submit to dispatch (waiting for an eligible node). ``decision_us``: the
    scheduler's time over every decision of the task. ``row``: the ledger row as stored (as it
    would be, without a ledger); ``recorded``: the row is committed. ``batch_size``: how many
    tasks ran in the node's batch with this one (its ``result`` is its own share: its output
    rows and ``cpu_s / batch_size``).
    """

    task_id: str
    node: str
    result: TaskResult
    attempts: int
    failed_nodes: tuple[str, ...]
    queue_ms: float
    decision_us: float
    charge: Charge
    row: LedgerRow
    recorded: bool
    batch_size: int = 1

    @property
    def output(self) -> Array:
        return self.result.output


@dataclass(slots=True, eq=False)
class _Request:
    task_id: str
    model_key: str
    batch: Any
    future: Future[Outcome]
    scheduler: Scheduler | None
    pinned: str | None
    run_id: str
    model: str
    runtime: str
    tenant: str
    memory_mb: float
    enqueued_s: float
    deadline_s: float
    explain: bool = False
    margin: float | None = None
    attempts: int = 0
    failed: tuple[str, ...] = ()
    decision_us: float = 0.0
    dispatched_s: float = 0.0
    intensity: IntensityReading | None = None
    last_reasons: list[dict[str, object]] = field(default_factory=list)


class Engine:
    """Places, dispatches, retries, charges and records tasks on one fleet.

    ``fleet``, ``rates``, ``ledger``, ``intensity`` and ``windows`` are passed in; ``owns``:
    what :meth:`close` closes after draining, in order (:func:`carbonedge.engine.open_engine`
    builds everything and hands it over). ``scheduler``: the default placement. ``run_id``: the
    ledger's run id of tasks that name none. ``model_keys``: the deployments made for it.
    """

    def __init__(
        self,
        fleet: FleetBackend,
        scheduler: Scheduler,
        *,
        intensity: IntensityFeed,
        rates: RollingRates,
        cpu: NodeCpu,
        ledger: LedgerWriter | None,
        run_id: str,
        config: EngineConfig | None = None,
        windows: MeasurementWindows | None = None,
        model_keys: Sequence[str] = (),
        owns: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.fleet = fleet
        self.windows = windows or MeasurementWindows(_no_meter, cpu)
        self.model_keys = tuple(model_keys)
        self._owns = list(owns)
        self.scheduler = scheduler
        self.intensity = intensity
        self.rates = rates
        self.cpu = cpu
        self.ledger = ledger
        self.run_id = run_id
        self.config = config or EngineConfig()
        self._pue = {n.name: n.pue for n in fleet.spec.nodes}
        self._cond = threading.Condition()
        self._queue: collections.deque[_Request] = collections.deque()
        self._in_flight = 0
        self._stopping = False
        self._pushed: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self.counts: dict[str, int] = collections.defaultdict(int)
        self._counts_lock = threading.Lock()  # counters are bumped from the ledger's thread too
        self._exec_s = 0.05  # a running mean of task time, for Retry-After hints

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Engine:
        """Start the dispatcher thread (and the intensity feed's API poller)."""
        self.intensity.start()
        self._push_intensities()
        self._thread = threading.Thread(target=self._loop, name="carbonedge-engine", daemon=True)
        self._thread.start()
        return self

    def close(self, drain_s: float = 30.0) -> None:
        """Stop admitting, let queued and running tasks finish for up to ``drain_s`` seconds,
        refuse what is left, stop the dispatcher. Idempotent; the caller closes the rest."""
        deadline = time.monotonic() + drain_s
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            while (self._queue or self._in_flight) and time.monotonic() < deadline:
                self._cond.wait(timeout=0.1)
            left = list(self._queue)
            self._queue.clear()
        for req in left:
            self._fail(req, Overloaded("the engine is stopping", retry_after_s=5.0))
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.intensity.stop()
        owns, self._owns = self._owns, []
        for close in owns:
            close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting ------------------------------------------------------------------------------

    def submit(
        self,
        batch: Array | Any,
        model_key: str,
        *,
        task_id: str,
        scheduler: Scheduler | None = None,
        node: str | None = None,
        run_id: str | None = None,
        model: str | None = None,
        runtime: str | None = None,
        tenant: str = "",
        memory_mb: float = 0.0,
        explain: bool = False,
    ) -> Future[Outcome]:
        """Queue one task; the future gives its :class:`Outcome` once its row is recorded.

        ``node``: run on this node (no scheduling, no queue). ``scheduler``: place with this
        one instead of the engine's. ``model``/``runtime``: labels of the ledger row (default:
        from ``model_key``, ``<model>/<runtime>``). Raises :class:`Overloaded` at once when
        the queue is full.
        """
        now = time.monotonic()
        default_model, _, default_runtime = model_key.rpartition("/")
        req = _Request(
            task_id=task_id,
            model_key=model_key,
            batch=batch,
            future=Future(),
            scheduler=scheduler,
            pinned=node,
            run_id=run_id or self.run_id,
            model=model or default_model or model_key,
            runtime=runtime or default_runtime,
            tenant=tenant,
            memory_mb=memory_mb,
            enqueued_s=now,
            deadline_s=now + self.config.max_wait_s,
            explain=explain,
        )
        with self._cond:
            if self._stopping:
                raise Overloaded("the engine is stopping", retry_after_s=5.0)
            self._bump("submitted")
            if node is None:
                if len(self._queue) >= self.config.max_queue:
                    self._bump("refused_overloaded")
                    raise Overloaded(
                        f"{len(self._queue)} tasks are waiting for a node (max_queue "
                        f"{self.config.max_queue}); try again later",
                        retry_after_s=self._retry_after_s(),
                    )
                self._queue.append(req)
                self._cond.notify()
                return req.future
            self._in_flight += 1
        self._dispatch([req], node, self._push_intensities())
        return req.future

    def run(self, batch: Array | Any, model_key: str, **kwargs: Any) -> Outcome:
        """:meth:`submit` and wait for the outcome (``config.task_timeout_s`` at most)."""
        future = self.submit(batch, model_key, **kwargs)
        try:
            return future.result(timeout=self.config.task_timeout_s)
        except TimeoutError:
            raise TaskTimeout(
                f"task {kwargs.get('task_id')!r}: no result within {self.config.task_timeout_s:g} s"
            ) from None

    def run_pipeline(
        self,
        pipeline: Pipeline,
        batch: Array,
        *,
        task_id: str,
        run_id: str | None = None,
        model: str | None = None,
        runtime: str | None = None,
    ) -> tuple[float, list[Outcome]]:
        """Run a partitioned model stage by stage on its pinned nodes (each stage a task of
        its own: charged and recorded the same way); returns (end-to-end ms, stage outcomes)."""
        t0 = time.perf_counter()
        x: Any = batch
        outcomes = []
        for i, (node, key) in enumerate(pipeline.stages):
            out = self.run(
                x,
                key,
                task_id=f"{task_id}/{i}",
                node=node,
                run_id=run_id,
                model=model,
                runtime=runtime,
            )
            outcomes.append(out)
            x = out.output
        return (time.perf_counter() - t0) * 1000.0, outcomes

    # -- state -----------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Tasks waiting for a node now."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Tasks dispatched and not yet finished."""
        return self._in_flight

    def stats(self) -> dict[str, int]:
        """Counters since start: submitted, completed, refused_overloaded, refused_no_node,
        redispatched, failed, plus queued and in_flight now."""
        with self._counts_lock:
            out = dict(self.counts)
        out["queued"], out["in_flight"] = self.queued, self.in_flight
        return out

    # -- the dispatcher --------------------------------------------------------------------------

    def _push_intensities(self) -> dict[str, IntensityReading]:
        """Read every node's intensity now and push changed values into the telemetry."""
        readings = self.intensity.readings()
        for name, reading in readings.items():
            if self._pushed.get(name) != reading.g_per_kwh:
                self.fleet.set_intensity(name, reading.g_per_kwh)
                self._pushed[name] = reading.g_per_kwh
        return readings

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return  # stopping and nothing left
                req = self._queue[0]
            now = time.monotonic()
            if now >= req.deadline_s:
                with self._cond:
                    if self._queue and self._queue[0] is req:
                        self._queue.popleft()
                self._expire(req)
                continue
            fill_by = req.enqueued_s + self.config.batch_wait_ms / 1000.0
            if self.config.max_batch > 1 and now < fill_by and not self._batch_full(req):
                with self._cond:  # wait for more of the same model to fill a batch
                    self._cond.wait(timeout=fill_by - now)
                continue
            readings = self._push_intensities()
            node = self._decide(req)
            if node is None:
                with self._cond:
                    self._cond.wait(timeout=min(self.config.poll_s, req.deadline_s - now))
                continue
            with self._cond:
                group = self._take_group(req)
                self._in_flight += 1
            self._dispatch(group, node, readings)

    def _batchable(self, head: _Request, other: _Request) -> bool:
        shape = getattr(other.batch, "shape", (0,))
        return (
            other.model_key == head.model_key
            and other.scheduler is head.scheduler
            and other.failed == head.failed
            and shape[0] == 1
            # one input format per batch: 8-bit crops and float tensors never mix
            and shape[1:] == getattr(head.batch, "shape", (0,))[1:]
            and getattr(other.batch, "dtype", None) == getattr(head.batch, "dtype", None)
        )

    def _batch_full(self, head: _Request) -> bool:
        with self._cond:
            n = sum(1 for r in self._queue if self._batchable(head, r))
        return n >= self.config.max_batch

    def _take_group(self, head: _Request) -> list[_Request]:
        """The head request and, with batching, up to ``max_batch - 1`` more like it, taken off
        the queue (the caller holds the lock)."""
        if self._queue and self._queue[0] is head:
            self._queue.popleft()
        group = [head]
        if self.config.max_batch > 1 and getattr(head.batch, "shape", (0,))[0] == 1:
            kept: collections.deque[_Request] = collections.deque()
            while self._queue and len(group) < self.config.max_batch:
                r = self._queue.popleft()
                (group if self._batchable(head, r) else kept).append(r)
            kept.extend(self._queue)
            self._queue = kept
        return group

    def _decide(self, req: _Request) -> str | None:
        states = self.fleet.node_states(req.model_key)
        if req.failed:
            states = [s for s in states if s.name not in req.failed]
        scheduler = req.scheduler or self.scheduler
        t0 = time.perf_counter_ns()
        decision = scheduler.select(Task(req.task_id, req.memory_mb), states)
        req.decision_us += (time.perf_counter_ns() - t0) / 1000.0
        if req.explain and decision.node is not None:  # off the hot path unless asked for
            margin = decision.margin()
            req.margin = None if math.isnan(margin) else margin
        if decision.node is None:
            if not states:
                req.last_reasons = [{"node": "*", "reasons": ["no node is up"], "note": ""}]
            else:
                rows = decision.explain().to_dict()["nodes"]
                req.last_reasons = [
                    {"node": r["name"], "reasons": r["reasons"], "note": r["note"]} for r in rows
                ]
        return decision.node

    def _dispatch(
        self, group: list[_Request], node: str, readings: Mapping[str, IntensityReading]
    ) -> None:
        """Send one task, or a batch of tasks concatenated along the batch axis, to ``node``."""
        now = time.monotonic()
        intensity = readings.get(node) or self.intensity.reading(node)
        for req in group:
            req.attempts += 1
            req.dispatched_s = now
            req.intensity = intensity
        head = group[0]
        if len(group) == 1:
            batch, task_id = head.batch, head.task_id
        else:
            import numpy as np

            batch = np.concatenate([r.batch for r in group], axis=0)
            task_id = f"{head.task_id}+{len(group) - 1}"
        try:
            future = self.fleet.submit(node, head.model_key, batch, task_id=task_id)
        except CarbonEdgeError as exc:
            self._finished_one()
            for req in group:
                self._fail(req, TaskFailed(f"node {node!r} refused the task: {exc}"))
            return
        except Exception as exc:  # a send racing the node's death: treat as the node down
            future = Future()
            future.set_exception(NodeDownError(node, task_id, f"send failed: {exc!r}"))
        future.add_done_callback(lambda f: self._done(group, node, f))

    def _done(self, group: list[_Request], node: str, future: Future[TaskResult]) -> None:
        exc = future.exception()
        if isinstance(exc, NodeDownError):
            retry = [r for r in group if r.pinned is None and r.attempts < self.config.max_attempts]
            with self._cond:
                self._in_flight -= 1
                for req in reversed(retry):
                    req.failed = (*req.failed, node)
                    self._bump("redispatched")
                    req.deadline_s = time.monotonic() + self.config.max_wait_s
                    self._queue.appendleft(req)
                self._cond.notify_all()
            for req in group:
                if req in retry:
                    continue
                req.failed = (*req.failed, node)
                self._fail(
                    req,
                    NoEligibleNode(
                        f"task {req.task_id!r}: node(s) {', '.join(req.failed)} went down while "
                        f"running it (last: {exc.reason})",
                        retry_after_s=self._retry_after_s(),
                    ),
                )
            return
        if exc is not None:
            self._finished_one()
            for req in group:
                self._fail(req, TaskFailed(f"node {node!r} failed task {req.task_id!r}: {exc}"))
            return
        try:
            self._record_group(group, future.result())
        finally:  # only now: a draining close() must see every row queued to the ledger
            self._finished_one()

    def _record_group(self, group: list[_Request], result: TaskResult) -> None:
        """Charge and record each task of a finished (batch) task."""
        n = len(group)
        for i, req in enumerate(group):
            mine = result
            if n > 1:  # each task's share of the batch: its output rows, cpu_s / n
                mine = replace(
                    result,
                    task_id=req.task_id,
                    output=result.output[i : i + 1],
                    cpu_s=result.cpu_s / n,
                )
            try:
                self._record(req, mine, n)
            except Exception as error:  # never leave a caller waiting on a bug in accounting
                self._fail(req, TaskFailed(f"task {req.task_id!r}: accounting failed: {error!r}"))

    def _record(self, req: _Request, result: TaskResult, batch_size: int = 1) -> None:
        node = result.node
        self.cpu.record(node, result.cpu_s)
        self._exec_s += 0.05 * (result.exec_ms / batch_size / 1000.0 - self._exec_s)
        if not _finite(result.output):  # a failure, not a prediction: no row, no success
            self._fail(
                req,
                TaskFailed(
                    f"node {node!r}, task {req.task_id!r}: the model's output is not finite "
                    "(NaN or infinity)"
                ),
            )
            return
        assert req.intensity is not None
        pue = self._pue[node]
        charge = charge_task(
            node, result.cpu_s, self.rates.snapshot, req.intensity, pue, now_mono_s=time.monotonic()
        )
        queue_ms = (req.dispatched_s - req.enqueued_s) * 1000.0
        make = _outcome_maker(req, node, result, queue_ms, charge, batch_size)
        row = task_row(
            task_id=req.task_id,
            run_id=req.run_id,
            node=node,
            model=req.model,
            runtime=req.runtime,
            started_at=datetime.fromtimestamp(result.started_at, UTC),
            finished_at=datetime.fromtimestamp(result.finished_at, UTC),
            latency_ms=queue_ms + result.latency_ms,
            cpu_s=result.cpu_s,
            energy=charge.energy,
            intensity=req.intensity,
            pue=pue,
            energy_method=charge.energy_method_label,
            attribution_method=charge.method,
            tenant=req.tenant,
            attempts=req.attempts,
            decision_margin=req.margin,
        )

        if self.ledger is None:  # the row as it would be recorded, not committed anywhere
            self._succeed(req, make(row, False))
            return

        def stored(f: Future[LedgerRow]) -> None:
            error = f.exception()
            if error is None:
                self._succeed(req, make(f.result(), True))
            else:  # the inference ran; say it was not recorded rather than hide it
                self._bump("unrecorded")
                self._succeed(req, make(row, False))

        self.ledger.append(row).add_done_callback(stored)

    # -- helpers ---------------------------------------------------------------------------------

    def _bump(self, counter: str) -> None:
        with self._counts_lock:
            self.counts[counter] += 1

    def _finished_one(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _succeed(self, req: _Request, outcome: Outcome) -> None:
        self._bump("completed")
        if not req.future.done():
            req.future.set_result(outcome)

    def _fail(self, req: _Request, error: EngineError) -> None:
        self._bump("failed" if not isinstance(error, NoEligibleNode) else "refused_no_node")
        if not req.future.done():
            req.future.set_exception(error)

    def _expire(self, req: _Request) -> None:
        text = "; ".join(
            f"{r['node']}: {', '.join(map(str, r['reasons'])) or r['note'] or 'not chosen'}"  # type: ignore[call-overload]
            for r in req.last_reasons
        )
        waited = time.monotonic() - req.enqueued_s
        self._fail(
            req,
            NoEligibleNode(
                f"no eligible node for {waited:.1f} s ({text or 'no decision yet'})",
                req.last_reasons,
                retry_after_s=self._retry_after_s(),
            ),
        )

    def _retry_after_s(self) -> float:
        """When a refused caller may expect room: the queue's work spread over the nodes."""
        nodes = max(1, len(self.fleet.spec.nodes))
        return max(1.0, round((len(self._queue) + self._in_flight) * self._exec_s / nodes, 1))


def _outcome_maker(
    req: _Request, node: str, result: TaskResult, queue_ms: float, charge: Charge, batch_size: int
) -> Callable[[LedgerRow, bool], Outcome]:
    def make(row: LedgerRow, recorded: bool) -> Outcome:
        return Outcome(
            task_id=req.task_id,
            node=node,
            result=result,
            attempts=req.attempts,
            failed_nodes=req.failed,
            queue_ms=queue_ms,
            decision_us=req.decision_us,
            charge=charge,
            row=row,
            recorded=recorded,
            batch_size=batch_size,
        )

    return make


def _finite(output: Any) -> bool:
    """False for a numeric array (numpy, or any that numpy can view) holding NaN or infinity."""
    import numpy as np

    try:
        values = np.asarray(output)
    except Exception:  # not array-like (a pipeline stage's own structure): nothing to check
        return True
    return values.dtype.kind not in "fc" or bool(np.isfinite(values).all())


def _no_meter() -> EnergyMeter:
    raise MeterError("this engine was built without a meter: pass windows=MeasurementWindows(...)")
