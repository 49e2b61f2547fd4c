"""Deferrable jobs: ``POST /v1/jobs`` runs a batch of images at the greenest time before its
deadline (paper II.D, temporal shifting), ``GET /v1/jobs/{id}`` tells its state and results.

Planning, at submission (grid time from the engine's clock, ``engine.intensity.clock``): each
node's intensity forecast from the engine's feed (:func:`carbonedge.engine.forecast.forecast`:
the feed's forecaster fitted on the past only, hourly; ``planned_on`` names it) goes through
:func:`carbonedge.scheduling.best_start` for the job's estimated run time (images x the slowest
node's average task time, at least 1 s); the job is planned on the node and start with the least
``mean intensity x PUE`` (ties: the earlier start, then the fleet file's order). At the planned
time one runner thread runs the job's images one after another on that node (pinned: a
deferrable job never fills a node's queue ahead of interactive requests); if that node is down,
on the node the constrained policy picks. Each image is a task of its own: charged and recorded
in the ledger (``task_id`` ``job-<id>-<i>``, the job's tenant).

A job's answer gives, besides the top-5 per image, its carbon and the carbon it would have
emitted if run at submission: the same energy on the same node at that node's intensity when
the job was submitted (recorded then), i.e. what temporal shifting saved.

Each image reserves its carbon against the tenant's budget before it runs
(:meth:`~carbonedge.serve.tenants.TenantGate.placement`); when the next image does not fit, or
the tenant was revoked, the job ends ``stopped`` with the reason, its results so far kept.

Jobs survive restarts: they live in a SQLite file beside the ledger (``<ledger>.jobs.sqlite``),
images as sent until the job is done, each image's result as soon as it is known; a job that
was running resumes at its first unfinished image, one whose planned time passed while the
server was down runs at once (``late`` when it finishes after its deadline).
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from carbonedge.engine import Engine, Outcome
from carbonedge.engine.errors import EngineError, NoEligibleNode, TaskFailed
from carbonedge.engine.forecast import forecast
from carbonedge.errors import ConfigError
from carbonedge.scheduling import Scheduler, ShiftPlan, best_start
from carbonedge.serve.app import top_k
from carbonedge.serve.decode import decode_image
from carbonedge.serve.errors import BadRequest, ServeError
from carbonedge.serve.limits import RequestLimiter, ServerLimits
from carbonedge.serve.provenance import Provenance
from carbonedge.serve.tenants import Admission, BudgetExhausted, TenantGate

__all__ = ["MAX_JOB_IMAGES", "JobNotFound", "JobRequest", "JobRunner", "jobs_path", "jobs_router"]

MAX_JOB_IMAGES = 256
#: Furthest deadline accepted, from submission.
MAX_HORIZON = timedelta(days=7)
_DEFAULT_TASK_S = 0.1  # per image, before any node has run the model


class JobNotFound(ServeError):
    """No job with that id for this tenant."""

    status = 404


class JobRequest(BaseModel):
    """A deferrable job: images to classify by a deadline."""

    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(
        min_length=1,
        max_length=MAX_JOB_IMAGES,
        description="the image files, each as standard base64",
    )
    deadline: AwareDatetime = Field(
        description="when the job must be done: ISO 8601 with a UTC offset, in the server's "
        "grid time (its clock; the wall clock unless it replays a trace)"
    )


def jobs_path(ledger: Path) -> Path:
    """``<ledger stem>.jobs.sqlite`` beside the ledger."""
    return ledger.with_name(f"{ledger.stem}.jobs.sqlite")


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
    "state TEXT NOT NULL, submitted_at TEXT NOT NULL, deadline TEXT NOT NULL, "
    "planned_start TEXT NOT NULL, planned_s REAL NOT NULL, node TEXT NOT NULL, "
    "plan TEXT NOT NULL, submission_g_per_kwh TEXT NOT NULL, images INTEGER NOT NULL, "
    "started_at TEXT, finished_at TEXT, error TEXT)",
    "CREATE TABLE IF NOT EXISTS job_images (job_id TEXT NOT NULL, idx INTEGER NOT NULL, "
    "image BLOB, result TEXT, PRIMARY KEY (job_id, idx))",
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, planned_s)",
)


class _Store:
    """The jobs file; one connection shared under a lock (the loop's threads and the runner)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        target = ":memory:"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path)
        try:
            self._db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            # a job cut off by a stop resumes at its first unfinished image
            self._db.execute("UPDATE jobs SET state = 'scheduled' WHERE state = 'running'")
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot open the jobs file: {exc}") from exc

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def insert(self, job: dict[str, Any], images: list[bytes]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    f"INSERT INTO jobs ({', '.join(job)}) VALUES ({', '.join('?' * len(job))})",
                    tuple(job.values()),
                )
                self._db.executemany(
                    "INSERT INTO job_images (job_id, idx, image) VALUES (?, ?, ?)",
                    [(job["id"], i, data) for i, data in enumerate(images)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            cur = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return dict(zip(names, row, strict=True)) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JobRunner:
    """Plans, keeps and runs deferrable jobs on ``engine`` (see the module docstring).

    ``path``: the jobs file (None: in memory, lost at exit). ``gate``: charges each image's
    carbon to the job's tenant. ``poll_s``: how often the runner looks at the clock (real s).
    """

    def __init__(
        self,
        engine: Engine,
        model_key: str,
        path: Path | None,
        *,
        gate: TenantGate,
        provenance: Provenance,
        model: str,
        runtime: str,
        poll_s: float = 0.2,
        step: timedelta = timedelta(minutes=5),
    ) -> None:
        self.engine = engine
        self.model_key = model_key
        self.gate = gate
        self.provenance = provenance
        self.model = model
        self.runtime = runtime
        self.poll_s = poll_s
        self.step = step
        self.store = _Store(path)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path | None:
        return self.store.path

    def now(self) -> datetime:
        """Grid time: the engine's clock."""
        return self.engine.intensity.clock()

    # -- submitting and reading ------------------------------------------------------------------

    def submit(self, images: list[bytes], deadline: datetime, tenant: str) -> dict[str, Any]:
        """Plan and keep a job; returns its view. Raises BadRequest for a bad deadline."""
        now = self.now()
        deadline = deadline.astimezone(UTC)
        if deadline <= now:
            raise BadRequest(
                f"deadline {deadline.isoformat()} is not after now ({now.isoformat()})"
            )
        if deadline - now > MAX_HORIZON:
            raise BadRequest(
                f"deadline {deadline.isoformat()} is more than {MAX_HORIZON.days} days ahead"
            )
        node, plan = self._plan(now, deadline, len(images))
        readings = self.engine.intensity.readings(now)
        job: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "tenant": tenant,
            "state": "scheduled",
            "submitted_at": now.isoformat(),
            "deadline": deadline.isoformat(),
            "planned_start": plan.start.isoformat(),
            "planned_s": plan.start.timestamp(),
            "node": node,
            "plan": json.dumps({**plan.as_dict(), "forecaster": self.engine.intensity.forecaster}),
            "submission_g_per_kwh": json.dumps({n: r.g_per_kwh for n, r in readings.items()}),
            "images": len(images),
        }
        self.store.insert(job, images)
        self._wake.set()
        view = self.view(job["id"], tenant)
        assert view is not None
        return view

    def _plan(self, now: datetime, deadline: datetime, n: int) -> tuple[str, ShiftPlan]:
        states = self.engine.fleet.node_states(self.model_key)
        task_s = max((s.avg_time_s for s in states), default=0.0) or _DEFAULT_TASK_S
        speedup = float(getattr(self.engine.intensity.clock, "speedup", 1.0))
        duration_s = max(1.0, n * task_s * speedup)  # grid seconds
        latest = max(deadline, now + timedelta(seconds=duration_s))
        best: tuple[float, float, int, str, ShiftPlan] | None = None
        for order, spec in enumerate(self.engine.fleet.spec.nodes):
            points = forecast(self.engine.intensity, spec.name, now, latest, self.step)
            plan = best_start(points, duration_s, now, latest, forecast_end=latest + self.step)
            key = (plan.mean_g_per_kwh * spec.pue, plan.start.timestamp(), order, spec.name, plan)
            if best is None or key[:3] < best[:3]:
                best = key
        assert best is not None  # a fleet has at least one node
        return best[3], best[4]

    def view(self, job_id: str, tenant: str) -> dict[str, Any] | None:
        """The job as ``GET /v1/jobs/{id}`` answers it; None when ``tenant`` has no such job."""
        job = self.store.job(job_id)
        if job is None or job["tenant"] != tenant:
            return None
        plan = json.loads(job["plan"])
        rows = self.store.execute(
            "SELECT result FROM job_images WHERE job_id = ? AND result IS NOT NULL ORDER BY idx",
            (job_id,),
        )
        results = [json.loads(r[0]) for r in rows]
        out: dict[str, Any] = {
            "id": job_id,
            "state": job["state"],
            "images": job["images"],
            "images_done": len(results),
            "submitted_at": job["submitted_at"],
            "deadline": job["deadline"],
            "planned_start": job["planned_start"],
            "node": job["node"],
            "planned_intensity_g_per_kwh": plan["mean_g_per_kwh"],
            "intensity_at_submission_g_per_kwh": plan["now_mean_g_per_kwh"],
            "planned_on": plan.get("forecaster"),
            "started_at": job["started_at"],
            "finished_at": job["finished_at"],
            "late": bool(
                job["finished_at"]
                and datetime.fromisoformat(job["finished_at"])
                > datetime.fromisoformat(job["deadline"])
            ),
            "error": job["error"],
        }
        if job["state"] in ("done", "stopped"):
            gco2 = sum(r["gco2"] for r in results)
            at_submission = sum(r["gco2_if_run_at_submission"] for r in results)
            out.update(
                results=results,
                energy_kwh=sum(r["energy_kwh"] for r in results),
                gco2=gco2,
                gco2_if_run_at_submission=at_submission,
                saved_gco2=at_submission - gco2,
                **self.provenance.fields(),
            )
        return out

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> JobRunner:
        self._thread = threading.Thread(target=self._loop, name="carbonedge-jobs", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop after the image being run (the job resumes at the next start). Idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
        self.store.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            due = self.store.execute(
                "SELECT id FROM jobs WHERE state = 'scheduled' AND planned_s <= ? "
                "ORDER BY planned_s LIMIT 1",
                (self.now().timestamp(),),
            )
            if not due:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run(due[0][0])

    def _run(self, job_id: str) -> None:
        job = self.store.job(job_id)
        assert job is not None
        self.store.execute(
            "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?) WHERE id = ?",
            (self.now().isoformat(), job_id),
        )
        at_submission: dict[str, float] = json.loads(job["submission_g_per_kwh"])
        pending = self.store.execute(
            "SELECT idx, image FROM job_images WHERE job_id = ? AND result IS NULL ORDER BY idx",
            (job_id,),
        )
        for idx, image in pending:
            if self._stop.is_set():
                return  # stays 'running': back to 'scheduled' at the next start
            admission = self._reserve(job)
            if admission is None:
                return
            settled = False
            try:
                outcome = self._run_image(job, idx, image)
                result = self._result(idx, outcome, at_submission)
                self.store.execute(
                    "UPDATE job_images SET result = ? WHERE job_id = ? AND idx = ?",
                    (json.dumps(result), job_id, idx),
                )
                self.gate.settle(admission, outcome)
                settled = True
            except (EngineError, BadRequest) as exc:
                self._end(job_id, "failed", f"image {idx}: {exc}")
                return
            finally:
                if not settled:
                    self.gate.release(admission)
        self.store.execute(
            "UPDATE jobs SET state = 'done', finished_at = ? WHERE id = ?",
            (self.now().isoformat(), job_id),
        )
        self.store.execute("UPDATE job_images SET image = NULL WHERE job_id = ?", (job_id,))

    def _reserve(self, job: dict[str, Any]) -> Admission | None:
        """Reserve one image's carbon against the job's tenant's budget; None (and the job
        stopped, its results so far kept) when the budget cannot take it or the tenant was
        revoked. Open mode (no tenant): no reservation."""
        name = job["tenant"]
        if not name:
            return Admission("")
        try:
            tenant = self.gate.tenant(name)
        except ConfigError:
            tenant = None
        if tenant is None or not tenant.active:
            self._end(job["id"], "stopped", f"tenant {name!r} was revoked; results so far kept")
            return None
        try:
            return self.gate.placement(tenant)
        except BudgetExhausted as exc:
            self._end(job["id"], "stopped", f"{exc}; results so far kept")
            return None

    def _end(self, job_id: str, state: str, error: str) -> None:
        self.store.execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
            (state, error, self.now().isoformat(), job_id),
        )

    def _run_image(self, job: dict[str, Any], idx: int, image: bytes) -> Outcome:
        batch = decode_image(image)
        common: dict[str, Any] = {
            "task_id": f"job-{job['id']}-{idx}",
            "model": self.model,
            "runtime": self.runtime,
            "tenant": job["tenant"],
        }
        try:
            return self.engine.run(batch, self.model_key, node=job["node"], **common)
        except (NoEligibleNode, TaskFailed):  # the planned node is down: the greenest other
            return self.engine.run(
                batch, self.model_key, scheduler=Scheduler("constrained"), **common
            )

    def _result(
        self, idx: int, outcome: Outcome, at_submission: dict[str, float]
    ) -> dict[str, Any]:
        charge = outcome.charge
        then = at_submission.get(outcome.node, charge.intensity.g_per_kwh)
        return {
            "index": idx,
            "task_id": outcome.row.task_id,
            "node": outcome.node,
            "top5": self.provenance.top5(top_k(outcome.output), outcome.output),
            "energy_kwh": charge.energy_kwh,
            "intensity_g_per_kwh": charge.intensity.g_per_kwh,
            "intensity_at": charge.intensity.at.isoformat(),
            "pue": charge.pue,
            "gco2": charge.gco2,
            "gco2_if_run_at_submission": charge.energy_kwh * then * charge.pue,
        }


def _decode_all(encoded: list[str]) -> list[bytes]:
    images = []
    for i, text in enumerate(encoded):
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"images[{i}]: not valid base64: {exc}") from None
        try:
            decode_image(raw)  # refuse now what could not run later
        except BadRequest as exc:
            raise BadRequest(f"images[{i}]: {exc}") from None
        images.append(raw)
    return images


def jobs_router(
    runner: JobRunner,
    gate: TenantGate,
    max_body_bytes: int,
    limiter: RequestLimiter | None = None,
) -> APIRouter:
    """``POST /v1/jobs`` and ``GET /v1/jobs/{id}`` over ``runner``; ``limiter``: the body's
    deadline and memory budget, concurrent decodes (None: the default limits)."""
    router = APIRouter()
    limits = limiter or RequestLimiter(ServerLimits(), max_body_bytes)
    schema = JobRequest.model_json_schema()

    @router.post(
        "/v1/jobs",
        status_code=202,
        summary="Queue images to classify at the greenest time before a deadline",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
        },
        responses={
            202: {"description": "the job's id, planned start and node (Location: its URL)"},
            400: {"description": "bad JSON, image or deadline"},
            401: {"description": "missing, invalid or revoked API key"},
            413: {"description": "the body is over the size limit"},
            429: {"description": "the tenant's carbon budget is spent (Retry-After)"},
        },
    )
    async def create_job(request: Request, admission: Admission = Depends(gate.admit)) -> Response:
        gate.release(admission)  # admission checks the budget; each image reserves its own
        async with limits.body(request) as body:
            try:
                job = JobRequest.model_validate_json(body)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise BadRequest(f"bad job: {problems}") from None
            images = await limits.decode(_decode_all, job.images)
        view = await run_in_threadpool(runner.submit, images, job.deadline, admission.tenant)
        return JSONResponse(view, status_code=202, headers={"Location": f"/v1/jobs/{view['id']}"})

    @router.get(
        "/v1/jobs/{job_id}",
        summary="A job's state; when done, its results, carbon and carbon saved",
        responses={
            401: {"description": "missing, invalid or revoked API key"},
            404: {"description": "no such job for this tenant"},
        },
    )
    async def get_job(job_id: str, admission: Admission = Depends(gate.authenticate)) -> Response:
        view = await run_in_threadpool(runner.view, job_id, admission.tenant)
        if view is None:
            raise JobNotFound(f"no job {job_id!r}")
        return JSONResponse(view)

    return router
