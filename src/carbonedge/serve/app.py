"""The HTTP API of ``carbonedge serve``: a FastAPI (ASGI) application over one engine.

Routes (OpenAPI schema at ``/openapi.json``):

- ``POST /v1/infer``: the bytes of an image file, or ``{"image_b64": "..."}``; answers the
  top-5, the node the scheduler chose, the latency, and the request's energy (kWh) and carbon
  (gCO2) with how they were obtained. Refusals are 503 with ``Retry-After`` and the reason.
- ``GET /v1/health``, ``GET /v1/nodes``, ``GET /v1/ledger?limit=N``, ``GET /metrics``.
- From other modules, through ``extra_routers``: ``GET /v1/tenant`` (``serve.tenants``),
  ``POST /v1/jobs`` and ``GET /v1/jobs/{id}`` (``serve.jobs``), ``GET /dashboard``
  (``serve.dashboard``).

The handler only decodes (in a worker thread: ~3 ms of CPU for a 640x480 JPEG, to the 8-bit
crop that the node normalises), submits to the engine and awaits the task's future without
holding a thread, so thousands of requests can wait for a node while the engine's admission
control decides who gets one.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from carbonedge.carbon import EmbodiedProfile, sci_score
from carbonedge.engine import Engine, Outcome
from carbonedge.serve.config import ServeConfig
from carbonedge.serve.decode import decode_body
from carbonedge.serve.errors import ServeError
from carbonedge.serve.limits import RequestLimiter
from carbonedge.serve.metrics import CONTENT_TYPE, ServeMetrics
from carbonedge.serve.provenance import Provenance, model_provenance
from carbonedge.serve.tenants import Admission, TenantGate

__all__ = ["MAX_LEDGER_LIMIT", "create_app", "outcome_body", "request_sci", "top_k"]

MAX_LEDGER_LIMIT = 1000
TOP_K = 5
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def top_k(logits: NDArray[np.float32], k: int = TOP_K) -> tuple[tuple[int, float], ...]:
    """Softmax of one row of logits; the ``k`` most probable (class index, probability),
    most probable first. Non-finite logits give a :class:`ServeError` (no silent garbage)."""
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    if row.size == 0 or not np.isfinite(row).all():
        raise ServeError("the model's output is not finite (NaN or infinity): no prediction")
    z = np.exp(row - row.max())
    total = float(z.sum())
    k = min(k, row.size)
    idx = np.argpartition(row, row.size - k)[row.size - k :]
    idx = idx[np.argsort(-row[idx], kind="stable")]
    return tuple((int(i), float(z[i]) / total) for i in idx)


def outcome_body(
    outcome: Outcome,
    config: ServeConfig,
    latency_ms: float,
    decode_ms: float,
    embodied: EmbodiedProfile | None = None,
    provenance: Provenance | None = None,
) -> dict[str, Any]:
    """The JSON answer of one request; ``embodied``: the node's device footprint
    (``NodeSpec.embodied``) for the SCI's M term (None: M is ``missing``); ``provenance``:
    class names and the weights' source (None: class indices only)."""
    result, charge = outcome.result, outcome.charge
    intensity = charge.intensity
    top = top_k(result.output)
    return {
        "request_id": outcome.task_id,
        "model": config.model,
        "runtime": config.runtime,
        "node": outcome.node,
        "attempts": outcome.attempts,
        "failed_nodes": list(outcome.failed_nodes),
        "top5": (
            provenance.top5(top, result.output)
            if provenance is not None
            else [{"class": c, "probability": p} for c, p in top]
        ),
        "latency_ms": latency_ms,
        "exec_ms": result.exec_ms,
        "cpu_s": result.cpu_s,
        "energy_kwh": charge.energy_kwh,
        "energy_kwh_by_component": {
            "cpu": charge.energy.cpu_energy_kwh,
            "gpu": charge.energy.gpu_energy_kwh,
            "ram": charge.energy.ram_energy_kwh,
        },
        "gco2": charge.gco2,
        "estimate": True,
        "energy_method": charge.method,
        "energy_note": charge.note,
        "meter_method": dict(charge.energy_method),
        "intensity_g_per_kwh": intensity.g_per_kwh,
        "intensity_source": intensity.source + ("+fallback" if intensity.fallback else ""),
        "intensity_at": intensity.at.isoformat(),
        "intensity_fallback": intensity.fallback,
        "pue": charge.pue,
        "recorded": outcome.recorded,
        "timings": {
            "decode_ms": decode_ms,
            "queue_ms": outcome.queue_ms,
            "schedule_us": outcome.decision_us,
            "dispatch_ms": max(0.0, result.latency_ms - result.exec_ms),
        },
        "weights_note": config.weights_note,
        **(provenance.fields() if provenance is not None else {}),
        "sci": request_sci(outcome, config, embodied),
    }


def request_sci(
    outcome: Outcome, config: ServeConfig, embodied: EmbodiedProfile | None
) -> dict[str, Any]:
    """SCI (ISO/IEC 21031) of one request, R = this inference: E x I from its charge, M from
    ``embodied`` amortised over the task's run on its node (``carbon.sci``); each term labelled
    measured / modelled / sourced / missing."""
    row = outcome.row
    score = sci_score([row], embodied_by_node={outcome.node: embodied})
    (node,) = score.nodes
    return {
        "sci_g_per_inference": score.sci_g_per_inference,
        "operational_g": score.operational_g,
        "formula": "SCI = (E x I + M) / R, R = one inference (ISO/IEC 21031)",
        "E": {
            "energy_kwh": node.energy_kwh,
            "label": node.energy_label,
            "methods": list(node.energy_methods),
            "note": "the request's charge, PUE included",
        },
        "I": {
            "intensity_g_per_kwh": row.intensity_g_per_kwh,  # one row: the value E x I used
            "label": node.intensity_label,
            "sources": list(node.intensity_sources),
        },
        "M": {
            "embodied_g": node.embodied_g,
            "label": node.embodied_label,
            "source": node.embodied_source,
            "embodied_kgco2e": node.embodied_total_kgco2e,
            "busy_s": node.busy_s,
            "time_share": node.time_share,
            "resource_share": node.resource_share,
        },
        "R": {"inferences": score.inferences, "label": score.inferences_label},
    }


def _error(status: int, message: str, request_id: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "status": status, **extra}
    headers = {}
    if request_id is not None:
        body["request_id"] = request_id
        headers["X-Request-Id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def _serve_error(exc: ServeError, request_id: str | None) -> JSONResponse:
    extra: dict[str, Any] = {}
    reasons = getattr(exc, "reasons", None)
    if reasons:
        extra["reasons"] = list(reasons)
    extra.update(getattr(exc, "details", None) or {})  # e.g. a spent budget's figures (429)
    response = _error(exc.status, str(exc), request_id, **extra)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if getattr(exc, "close_connection", False):  # the rest of its body is never read
        response.headers["Connection"] = "close"
    return response


def create_app(
    engine: Engine,
    config: ServeConfig,
    model_key: str,
    extra_routers: Sequence[APIRouter] = (),
    tenants: TenantGate | None = None,
    provenance: Provenance | None = None,
    limiter: RequestLimiter | None = None,
) -> FastAPI:
    """The ASGI application serving ``model_key`` on ``engine`` (plus ``extra_routers``).

    ``tenants``: API keys and budgets (None: open, no keys); ``provenance``: class names and
    the weights' source in every answer (None: read once here); ``limiter``: body deadline
    and memory budget, concurrent decodes (None: one from ``config.limits``)."""
    metrics = ServeMetrics(engine)
    limits = limiter or RequestLimiter(config.limits, config.max_body_bytes)
    gate = tenants or TenantGate(None)
    prov = provenance or model_provenance(config.model, config.weights, config.seed)
    started = time.monotonic()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="CarbonEdge",
        summary="Carbon-aware inference on heterogeneous edge nodes",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; edge sites have no internet
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.engine = engine
    app.state.tenants = gate

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> Response:
        metrics.error(exc.status)  # raised by a dependency or an extension's route
        return _serve_error(exc, None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        metrics.error(exc.status_code)
        known = ", ".join(sorted({getattr(r, "path", "") for r in app.routes} - {""}))
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"unknown path {request.url.path!r}; known: {known}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", "?"))
            message = f"{request.method} not allowed on {request.url.path}; use {allowed}"
        response = _error(exc.status_code, message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        metrics.error(400)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _error(400, f"bad request: {problems}")

    @app.post(
        "/v1/infer",
        summary="Classify one image on the node the scheduler picks",
        responses={
            200: {"description": "top-5, node, latency, energy (kWh) and carbon (gCO2)"},
            400: {"description": "the body is not an image"},
            401: {"description": "missing, invalid or revoked API key"},
            413: {"description": "the body is over the size limit"},
            429: {"description": "the tenant's carbon budget is spent (Retry-After: its reset)"},
            503: {"description": "no node can take it now (Retry-After says when to retry)"},
        },
    )
    async def infer(request: Request, admission: Admission = Depends(gate.admit)) -> Response:
        received = time.perf_counter()
        given = request.headers.get("x-request-id")
        if given is not None and not _REQUEST_ID.fullmatch(given):
            gate.release(admission)
            metrics.error(400)
            return _error(400, "X-Request-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        request_id = given or uuid.uuid4().hex
        settled = False
        try:
            async with limits.body(request) as body:
                t0 = time.perf_counter()
                content_type = request.headers.get("content-type", "")
                batch = await limits.decode(decode_body, body, content_type)
                decode_ms = (time.perf_counter() - t0) * 1000.0
            future = engine.submit(
                batch,
                model_key,
                task_id=request_id,
                model=config.model,
                runtime=config.runtime,
                tenant=admission.tenant,
                scheduler=admission.scheduler,
            )
            outcome = await asyncio.wrap_future(future)
            gate.settle(admission, outcome)
            settled = True
            latency_ms = (time.perf_counter() - received) * 1000.0
            embodied = engine.fleet.spec.node(outcome.node).embodied
            payload = outcome_body(outcome, config, latency_ms, decode_ms, embodied, prov)
        except ServeError as exc:
            metrics.error(exc.status)
            return _serve_error(exc, request_id)
        finally:
            if not settled:  # refused, failed or cancelled: its reservation goes back
                gate.release(admission)
        result, charge = outcome.result, outcome.charge
        metrics.observe(
            outcome.node,
            latency_ms,
            result.exec_ms,
            result.cpu_s,
            charge.energy_kwh,
            charge.gco2,
            charge.method,
        )
        return JSONResponse(payload, headers={"X-Request-Id": request_id})

    @app.get("/v1/health", summary="Nodes up, meter, ledger and engine state")
    async def health() -> Response:
        nodes = [asdict(h) for h in engine.fleet.health()]
        for n in nodes:
            n.pop("pid", None)  # no process ids to clients
        up = sum(1 for n in nodes if n["up"])
        totals = engine.rates.totals
        ledger = engine.ledger
        problems = []
        if up < len(nodes):
            problems.append(f"{len(nodes) - up} node(s) down")
        if ledger is not None and not ledger.healthy:
            problems.append(f"ledger writes failing: {ledger.last_error}")
        if totals.errors:
            problems.append(f"meter errors: {totals.last_error}")
        status = "down" if not up else ("degraded" if problems else "ok")
        payload = {
            "status": status,
            "problems": problems,
            "nodes_up": up,
            "nodes": nodes,
            "model_key": model_key,
            "uptime_s": time.monotonic() - started,
            "requests_total": metrics.requests_total(),
            "engine": engine.stats(),
            "meter": {
                "source": engine.rates.snapshot.source,
                "meter": engine.rates.snapshot.meter,
                "method": dict(engine.rates.snapshot.energy_method),
                "windows": totals.windows,
                "errors": totals.errors,
            },
            "ledger": {
                "rows_written": ledger.rows_written if ledger else 0,
                "errors": ledger.errors if ledger else 0,
                "file": ledger.path.name if ledger else None,
            },
            "intensity_sources": engine.intensity.describe(),
            "run_id": engine.run_id,
            "model": config.model,
            "runtime": config.runtime,
            "policy": engine.scheduler.policy,
            "weights_note": config.weights_note,
        }
        return JSONResponse(payload, status_code=200 if up else 503)

    @app.get("/v1/nodes", summary="What the scheduler sees of each node now")
    async def nodes() -> Response:
        readings = engine.intensity.readings()
        snapshot = engine.rates.snapshot
        rows = []
        for state in engine.fleet.node_states(model_key):
            row = asdict(state)
            reading = readings[state.name]
            # the value the next decision sees, with its own source and time (the state holds
            # the value pushed at the last decision, which may be hours of grid time old)
            row["intensity_g_per_kwh"] = reading.g_per_kwh
            row["intensity_source"] = reading.source
            row["intensity_at"] = reading.at.isoformat()
            row["intensity_fallback"] = reading.fallback
            row["pue"] = engine.fleet.spec.node(state.name).pue
            row["energy_rate_kwh_per_cpu_s"] = sum(snapshot.rates[state.name])
            rows.append(row)
        return JSONResponse({"model_key": model_key, "nodes": rows})

    @app.get(
        "/v1/ledger",
        summary="The last rows of the emissions ledger: the caller's own once tenants exist",
        responses={401: {"description": "missing, invalid or revoked API key"}},
    )
    async def ledger(
        limit: int = Query(50, ge=1, le=MAX_LEDGER_LIMIT),
        admission: Admission = Depends(gate.authenticate),
    ) -> Response:
        if engine.ledger is None:
            return _error(404, "this server keeps no ledger")
        mine = admission.tenant or None  # open mode (no tenants): every row is untenanted
        rows = await run_in_threadpool(
            engine.ledger.call, lambda db: db.query(limit=limit, tenant=mine)
        )
        out = []
        for r in rows:
            d = asdict(r)
            d["energy_kwh"] = r.energy_kwh
            out.append(d)
        return JSONResponse({"run_id": engine.run_id, "rows": out})

    # Extensions mount here: each is a module under carbonedge.serve with an APIRouter.
    for router in extra_routers:
        app.include_router(router)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app
