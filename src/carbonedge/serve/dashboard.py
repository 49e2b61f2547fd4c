"""The live dashboard of ``carbonedge serve``: ``GET /dashboard`` (docs/reporting.md).

One page (``static/dashboard.html``, package data) that polls ``GET /v1/dashboard/data`` every
2 s and draws with plotly.js. The app serves plotly.js itself, from the installed ``plotly``
package's ``package_data/plotly.min.js`` (``GET /dashboard/plotly.min.js``): edge sites often
have no internet, so no CDN, and nothing vendored into this repository.

What the page shows is read from the engine and the app's metrics (:class:`ServeMetrics`),
never copied: per node its grid intensity now and over the last hour (the engine's intensity
feed), how many requests the scheduler sent it, their energy (kWh) and carbon (gCO2, Eq. 2)
with how they were obtained, and its health (up, restarts, CPU-quota enforcement, peak RSS);
requests per second and latency; tenants' budget use (``tenants``: a callable giving one dict
per tenant; none configured: an empty list and the page says so).

History: a bounded ring of :class:`Sample` (one per ``sample_s``, ``history_s`` long, in
memory only, so it starts when the server starts), filled by a task of the router's lifespan
and by a data request that finds the newest sample older than ``sample_s``. Each sample holds
cumulative counts; rates and latency per interval are differences with the sample before it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.resources
import importlib.util
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from carbonedge.engine import Engine
    from carbonedge.serve.metrics import ServeMetrics

__all__ = ["DashboardHistory", "Sample", "dashboard_router", "histogram_quantile", "plotly_js"]

#: How often the page polls and the history is sampled, s.
SAMPLE_S = 2.0
#: How much history is kept, s.
HISTORY_S = 3600.0

TenantsFn = Callable[[], Sequence[Mapping[str, Any]]]


def plotly_js() -> Path | None:
    """``plotly.min.js`` of the installed ``plotly`` package (found without importing it), or
    None when the package or the file is missing."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of a cumulative histogram ``[(upper bound, count <= it)]``
    sorted by bound, the last bound ``inf``; linear within a bucket, as Prometheus's
    ``histogram_quantile``. None without observations; the largest finite bound when the
    quantile falls in the ``+Inf`` bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class Sample:
    """The fleet and the endpoint at one moment. ``t`` in s since the epoch (wall clock),
    ``grid_at`` the intensity feed's time (ISO 8601; a replayed trace's, not the wall
    clock's). Per node (dicts keyed by node): ``intensity_g_per_kwh`` now; cumulative served
    ``tasks``, ``energy_kwh`` and ``gco2``. ``requests``/``errors``: answered with 200 /
    another status, cumulative. Per interval since the sample before (None for the first):
    ``rps`` (requests per second, any status), ``latency_mean_ms`` and ``latency_p90_ms``
    of the successful ones."""

    seq: int
    t: float
    grid_at: str
    intensity_g_per_kwh: dict[str, float]
    tasks: dict[str, int]
    energy_kwh: dict[str, float]
    gco2: dict[str, float]
    requests: int
    errors: int
    rps: float | None
    latency_mean_ms: float | None
    latency_p90_ms: float | None


@dataclass(frozen=True)
class _Reading:
    """Cumulative counts of the app's metrics at one moment."""

    tasks: dict[str, int]
    errors: int
    energy_kwh: dict[str, float]
    gco2: dict[str, float]
    methods: tuple[str, ...]
    latency_sum_ms: float
    latency_buckets: tuple[tuple[float, float], ...]  # (le, cumulative count)

    @property
    def latency_count(self) -> float:
        return self.latency_buckets[-1][1] if self.latency_buckets else 0.0


def _samples(metric: Any) -> Iterable[Any]:
    for family in metric.collect():
        yield from family.samples


def read_metrics(metrics: ServeMetrics) -> _Reading:
    """The served requests' counters and latency histogram of ``metrics`` now."""
    tasks: dict[str, int] = collections.defaultdict(int)
    errors = 0
    for s in _samples(metrics.requests):
        if s.name.endswith("_total"):
            if s.labels["code"] == "200":
                tasks[s.labels["node"]] += int(s.value)
            else:
                errors += int(s.value)
    energy: dict[str, float] = collections.defaultdict(float)
    methods = set()
    for s in _samples(metrics.energy):
        if s.name.endswith("_total"):
            energy[s.labels["node"]] += s.value
            methods.add(s.labels["method"])
    gco2: dict[str, float] = collections.defaultdict(float)
    for s in _samples(metrics.carbon):
        if s.name.endswith("_total"):
            gco2[s.labels["node"]] += s.value
    buckets, total = [], 0.0
    for s in _samples(metrics.latency):
        if s.name.endswith("_bucket"):
            buckets.append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            total = s.value
    return _Reading(
        dict(tasks), errors, dict(energy), dict(gco2), tuple(sorted(methods)), total,
        tuple(sorted(buckets)),
    )  # fmt: skip


class DashboardHistory:
    """The ring of :class:`Sample` behind the page (see the module docstring); thread-safe."""

    def __init__(
        self,
        engine: Engine,
        *,
        sample_s: float = SAMPLE_S,
        history_s: float = HISTORY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < sample_s <= history_s:
            raise ValueError(f"need 0 < sample_s <= history_s, got {sample_s}, {history_s}")
        self.engine = engine
        self.sample_s = sample_s
        self.history_s = history_s
        self._clock = clock
        self._ring: collections.deque[Sample] = collections.deque(
            maxlen=int(history_s / sample_s) + 1
        )
        self._last: _Reading | None = None
        self._lock = threading.Lock()
        self._seq = 0

    def due(self) -> bool:
        """No sample yet, or the newest is at least ``sample_s`` old."""
        with self._lock:
            return not self._ring or self._clock() - self._ring[-1].t >= self.sample_s

    def sample(self, metrics: ServeMetrics) -> Sample:
        """Take one sample now and keep it; when the newest is under half ``sample_s`` old
        (the lifespan's sampler and a data request raced), return that one instead: a rate
        over a few milliseconds would be noise."""
        with self._lock:
            if self._ring and self._clock() - self._ring[-1].t < self.sample_s / 2:
                return self._ring[-1]
            readings = self.engine.intensity.readings()
            grid_at = self.engine.intensity.clock().isoformat()
            reading = read_metrics(metrics)
            now = self._clock()
            before, prev = (self._ring[-1], self._last) if self._ring else (None, None)
            rps = mean = p90 = None
            if before is not None and prev is not None and now > before.t:
                answered = sum(reading.tasks.values()) + reading.errors
                rps = (answered - sum(prev.tasks.values()) - prev.errors) / (now - before.t)
                count = reading.latency_count - prev.latency_count
                if count > 0:
                    mean = (reading.latency_sum_ms - prev.latency_sum_ms) / count
                    old = dict(prev.latency_buckets)
                    p90 = histogram_quantile(
                        0.9, [(le, c - old.get(le, 0.0)) for le, c in reading.latency_buckets]
                    )
            self._seq += 1
            nodes = self.engine.fleet.spec.names
            sample = Sample(
                seq=self._seq,
                t=now,
                grid_at=grid_at,
                intensity_g_per_kwh={n: r.g_per_kwh for n, r in readings.items()},
                tasks={n: reading.tasks.get(n, 0) for n in nodes},
                energy_kwh={n: reading.energy_kwh.get(n, 0.0) for n in nodes},
                gco2={n: reading.gco2.get(n, 0.0) for n in nodes},
                requests=sum(reading.tasks.values()),
                errors=reading.errors,
                rps=rps,
                latency_mean_ms=mean,
                latency_p90_ms=p90,
            )
            self._ring.append(sample)
            self._last = reading
            return sample

    def since(self, seq: int) -> list[Sample]:
        """The kept samples after ``seq`` (-1: all), oldest first."""
        with self._lock:
            if not self._ring or seq < self._ring[0].seq:
                return list(self._ring)
            return list(itertools.islice(self._ring, seq - self._ring[0].seq + 1, None))

    def latest(self, n: int) -> list[Sample]:
        """The newest ``n`` samples, oldest first."""
        with self._lock:
            return list(self._ring)[-n:]


def snapshot(
    engine: Engine,
    metrics: ServeMetrics,
    history: DashboardHistory,
    since: int,
    tenants: TenantsFn | None,
) -> dict[str, Any]:
    """The body of ``GET /v1/dashboard/data``: the fleet now plus the samples after ``since``."""
    if history.due():
        history.sample(metrics)
    reading = read_metrics(metrics)
    samples = history.since(since)
    readings = engine.intensity.readings()
    health = {h.name: h for h in engine.fleet.health()}
    states = {s.name: s for s in engine.fleet.node_states()}
    sources = engine.intensity.describe()
    served = sum(reading.tasks.values())
    nodes = []
    for spec in engine.fleet.spec.nodes:
        name = spec.name
        h, r, st = health.get(name), readings[name], states.get(name)
        nodes.append(
            {
                "name": name,
                "up": bool(h.up) if h else False,
                "restarts": h.restarts if h else 0,
                "enforcement": h.enforcement if h else "unknown",
                "peak_rss_mb": h.peak_rss_mb if h else None,
                "over_memory": h.over_memory if h else False,
                "detail": h.detail if h else "",
                "cpu_quota": spec.cpu_quota,
                "memory_mb": spec.memory_mb,
                "pue": spec.pue,
                "intensity_g_per_kwh": r.g_per_kwh,
                "intensity_source": r.source + ("+fallback" if r.fallback else ""),
                "intensity_feed": sources.get(name, ""),
                "intensity_at": r.at.isoformat(),
                "intensity_fallback": r.fallback,
                "tasks": reading.tasks.get(name, 0),
                "tasks_pct": 100.0 * reading.tasks.get(name, 0) / served if served else 0.0,
                "tasks_in_flight": st.tasks_in_flight if st else 0,
                "load": st.load if st else None,
                "energy_kwh": reading.energy_kwh.get(name, 0.0),
                "gco2": reading.gco2.get(name, 0.0),
                "embodied": asdict(spec.embodied) if spec.embodied else None,
            }
        )
    stats = engine.stats()
    gco2 = sum(reading.gco2.values())
    count = reading.latency_count
    newest = history.latest(5)
    recent = [s.rps for s in newest if s.rps is not None]  # about 10 s
    snap = engine.rates.snapshot
    return {
        "now": time.time(),
        "seq": newest[-1].seq if newest else 0,
        "grid_at": engine.intensity.clock().isoformat(),
        "run_id": engine.run_id,
        "policy": engine.scheduler.policy,
        "sample_s": history.sample_s,
        "history_s": history.history_s,
        "nodes": nodes,
        "totals": {
            "requests": served,
            "errors": reading.errors,
            "refused_overloaded": stats.get("refused_overloaded", 0),
            "refused_no_node": stats.get("refused_no_node", 0),
            "queued": stats.get("queued", 0),
            "in_flight": stats.get("in_flight", 0),
            "rps": sum(recent) / len(recent) if recent else 0.0,
            "latency_mean_ms": reading.latency_sum_ms / count if count else None,
            "latency_p90_ms": histogram_quantile(0.9, reading.latency_buckets),
            "energy_kwh": sum(reading.energy_kwh.values()),
            "gco2": gco2,
            "gco2_per_inference": gco2 / served if served else None,
        },
        "methods": {
            "charge": list(reading.methods),
            "meter": snap.meter,
            "energy": dict(snap.energy_method),
            "rate_source": snap.source,
        },
        "samples": [asdict(s) for s in samples],
        "tenants": [dict(t) for t in tenants()] if tenants else [],
    }


def dashboard_router(
    engine: Engine,
    *,
    metrics: ServeMetrics | None = None,
    tenants: TenantsFn | None = None,
    sample_s: float = SAMPLE_S,
    history_s: float = HISTORY_S,
) -> APIRouter:
    """``/dashboard``, its plotly.js and ``/v1/dashboard/data`` over ``engine``.

    ``metrics``: the app's :class:`ServeMetrics` (None: ``app.state.metrics`` of the app the
    router is mounted in, as :func:`carbonedge.serve.app.create_app` sets). ``tenants``: a
    callable giving one dict per tenant (name, budget, use); None: no tenants.
    """
    history = DashboardHistory(engine, sample_s=sample_s, history_s=history_s)
    page = (
        importlib.resources.files("carbonedge.serve")
        .joinpath("static", "dashboard.html")
        .read_text(encoding="utf-8")
    )

    def app_metrics(app: Any) -> ServeMetrics:
        found = metrics or getattr(app.state, "metrics", None)
        if found is None:
            raise RuntimeError("dashboard_router: no metrics given and none in app.state")
        return found

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def sampler() -> None:
            while True:
                if history.due():
                    with contextlib.suppress(Exception):  # a failed sample is skipped
                        await asyncio.to_thread(history.sample, app_metrics(app))
                await asyncio.sleep(history.sample_s / 4)

        task = asyncio.create_task(sampler())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    router = APIRouter(lifespan=lifespan)

    @router.get("/dashboard", summary="Live dashboard (HTML)", response_class=HTMLResponse)
    async def dashboard() -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get("/dashboard/plotly.min.js", summary="plotly.js of the installed plotly package")
    async def plotly() -> Response:
        path = plotly_js()
        if path is None:
            return JSONResponse(
                {"error": "plotly is not installed: pip install plotly", "status": 404},
                status_code=404,
            )
        return FileResponse(
            path,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get("/v1/dashboard/data", summary="What the dashboard shows, as JSON")
    async def data(
        request: Request,
        since: int = Query(-1, ge=-1, description="only samples after this seq (-1: all)"),
    ) -> Response:
        body = await run_in_threadpool(
            snapshot, engine, app_metrics(request.app), history, since, tenants
        )
        return JSONResponse(_finite(body))

    return router


def _finite(value: Any) -> Any:
    """NaN and infinities as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
