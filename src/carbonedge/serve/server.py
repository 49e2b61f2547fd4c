"""Running the API: an engine (fleet, meter windows, intensity feed, ledger) and uvicorn.

:func:`launch` is what ``carbonedge serve`` calls: it opens an engine with the model deployed
on every node and returns a started :class:`ServeApp` that owns it. Tests and embedders can
instead build a ``ServeApp`` on an engine they already run. The listening socket is bound when
the ``ServeApp`` is made (port 0: a free port), with a deep backlog so that a burst of
connections is queued, not reset. uvicorn runs in a thread of its own (so that it installs no
signal handlers: the caller decides what Ctrl-C does).

Besides ``create_app``'s routes it mounts the tenants' (``GET /v1/tenant``; API keys and
budgets from ``config.tenants``, :mod:`carbonedge.serve.tenants`) and the deferrable jobs'
(``/v1/jobs``, kept beside the ledger, :mod:`carbonedge.serve.jobs`).

``ServeApp.close()`` stops, in order: accepting connections; requests in progress (they finish,
up to ``drain_s``); the jobs runner (after its current image); the engine (queued and running
tasks drain); the meter windows; the ledger (every row committed); the fleet, where the engine
owns it.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from carbonedge.engine import Engine, open_engine
from carbonedge.errors import ConfigError
from carbonedge.fleet import ModelRef
from carbonedge.serve.app import create_app
from carbonedge.serve.config import ServeConfig
from carbonedge.serve.dashboard import dashboard_router
from carbonedge.serve.jobs import JobRunner, jobs_path, jobs_router
from carbonedge.serve.limits import RequestLimiter, limited_h11
from carbonedge.serve.provenance import model_provenance
from carbonedge.serve.tenants import open_gate, tenants_router

__all__ = ["ServeApp", "launch"]


class ServeApp:
    """A running endpoint over ``engine`` serving ``model_key``; see the module docstring."""

    def __init__(
        self,
        config: ServeConfig,
        engine: Engine,
        model_key: str,
        *,
        own_engine: bool = False,
        drain_s: float = 30.0,
    ) -> None:
        self.config = config
        self.engine = engine
        self.model_key = model_key
        self._own_engine = own_engine
        self._drain_s = drain_s
        self._closed = False
        # read once, not per request: the weights' source and hash, the class names
        self.provenance = model_provenance(config.model, config.weights, config.seed)
        self.tenants = open_gate(
            config.tenants, config.host, allow_open=config.allow_open, ledger=engine.ledger
        )
        ledger = engine.ledger
        try:
            self.jobs = JobRunner(
                engine,
                model_key,
                jobs_path(ledger.path) if ledger is not None else None,
                gate=self.tenants,
                provenance=self.provenance,
                model=config.model,
                runtime=config.runtime,
            )
        except BaseException:
            self.tenants.close()
            raise
        limiter = RequestLimiter(config.limits, config.max_body_bytes)
        routers = [
            dashboard_router(engine, tenants=self.tenants.budget_table),
            tenants_router(self.tenants),
            jobs_router(self.jobs, self.tenants, config.max_body_bytes, limiter=limiter),
        ]
        self.app = create_app(
            engine,
            config,
            model_key,
            extra_routers=routers,
            tenants=self.tenants,
            provenance=self.provenance,
            limiter=limiter,
        )
        try:
            self._socket = socket.create_server(
                (config.host, config.port), backlog=config.backlog, reuse_port=False
            )
        except OSError as exc:
            self.jobs.close()
            self.tenants.close()
            raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=limited_h11(config.limits),  # head deadline, connection cap
                loop="uvloop",
                ws="none",
                log_level="warning",
                access_log=False,
                backlog=config.backlog,
                timeout_keep_alive=5,
                timeout_graceful_shutdown=int(drain_s),
                lifespan="on",
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def ledger(self) -> object:
        return self.engine.ledger

    def start(self) -> ServeApp:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="carbonedge-http",
            daemon=True,
        )
        self._thread.start()
        self.jobs.start()
        deadline = time.monotonic() + 30.0
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        """Stop serving (in-flight requests finish), then the engine if owned. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self._server.should_exit = True
                self._thread.join(timeout=self._drain_s + 10.0)
            self._socket.close()
        finally:
            try:
                self.jobs.close(timeout_s=self._drain_s)
                self.tenants.close()
            finally:
                if self._own_engine:
                    self.engine.close(drain_s=self._drain_s)

    def __enter__(self) -> ServeApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch(config: ServeConfig) -> ServeApp:
    """Open an engine as ``config.engine`` says, deploy the model on every node and return a
    started :class:`ServeApp` that owns the engine."""
    payload = ModelRef(config.model, config.weights, config.seed)
    engine = open_engine(config.engine, models=[payload], runtime=config.runtime)
    try:
        app = ServeApp(config, engine, engine.model_keys[0], own_engine=True)
    except BaseException:
        engine.close()
        raise
    try:
        return app.start()
    except BaseException:
        app.close()
        raise
