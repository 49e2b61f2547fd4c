"""HTTP front of the inference service: stdlib ``ThreadingHTTPServer``, JSON in and out.

Routes: ``POST /v1/infer`` (image bytes or ``{"image_b64": ...}``), ``GET /v1/health``,
``GET /v1/nodes``, ``GET /v1/ledger?limit=N``, ``GET /metrics`` (Prometheus text format).
One thread per connection; HTTP/1.1 keep-alive. Errors are JSON ``{"error": "..."}`` with the
status of the :class:`~carbonedge.serve.errors.ServeError` raised.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
import uuid
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from carbonedge.serve.errors import BadRequest, PayloadTooLarge, ServeError
from carbonedge.serve.service import InferenceService

__all__ = ["MAX_LEDGER_LIMIT", "InferenceHTTPServer", "RequestHandler"]

MAX_LEDGER_LIMIT = 1000
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_ROUTES = {
    "/v1/infer": "POST",
    "/v1/health": "GET",
    "/v1/nodes": "GET",
    "/v1/ledger": "GET",
    "/metrics": "GET",
}


class InferenceHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one :class:`InferenceService`."""

    daemon_threads = True  # a stuck client connection must not block shutdown

    def __init__(
        self,
        address: tuple[str, int],
        service: InferenceService,
        *,
        started_s: float,
        describe: dict[str, Any],
    ) -> None:
        self.service = service
        self.started_s = started_s
        self.describe = describe
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    """Routes one request; see the module docstring."""

    server: InferenceHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "carbonedge-serve"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the ledger and /metrics record every request."""

    # -- helpers ---------------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, allow_nan=False, default=str).encode()
        self._send(status, body, "application/json", headers)

    def _error(
        self, status: int, message: str, request_id: str | None = None, **extra: Any
    ) -> None:
        payload: dict[str, Any] = {"error": message, "status": status, **extra}
        headers = {}
        if request_id is not None:
            payload["request_id"] = request_id
            headers["X-Request-Id"] = request_id
        self._json(status, payload, headers)

    def _route(self, method: str) -> str | None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        allowed = _ROUTES.get(path)
        if allowed is None:
            self._drain()
            self._error(404, f"unknown path {path!r}; known: {', '.join(sorted(_ROUTES))}")
            return None
        if allowed != method:
            self._drain()
            self._error(405, f"{method} not allowed on {path}; use {allowed}")
            return None
        return path

    def _drain(self) -> None:
        """Read and drop a body we will not use, so that keep-alive stays in step."""
        length = self.headers.get("Content-Length")
        if length is None:
            return
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            return
        if 0 < n <= self.server.service.config.max_body_bytes:
            self.rfile.read(n)
        elif n > 0:
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        """Refuse a too-large body before the client sends it (``Expect: 100-continue``)."""
        limit = self.server.service.config.max_body_bytes
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            self.close_connection = True
            self.server.service.metrics.error(413)
            self._error(413, f"body of {length} bytes is over the limit of {limit} bytes")
            return False
        return super().handle_expect_100()

    # -- verbs -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self._route("GET")
        if path == "/v1/health":
            self._health()
        elif path == "/v1/nodes":
            self._nodes()
        elif path == "/v1/ledger":
            self._ledger()
        elif path == "/metrics":
            self._metrics()

    def do_POST(self) -> None:
        if self._route("POST") == "/v1/infer":
            self._infer()

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # -- endpoints -------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        limit = self.server.service.config.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise BadRequest("chunked bodies are not supported: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise BadRequest("missing Content-Length header")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise BadRequest(f"bad Content-Length {length!r}") from None
        if n < 0:
            self.close_connection = True
            raise BadRequest(f"bad Content-Length {length!r}")
        if n > limit:
            self.close_connection = True  # the body is not read: the connection cannot go on
            raise PayloadTooLarge(f"body of {n} bytes is over the limit of {limit} bytes")
        return self.rfile.read(n)

    def _infer(self) -> None:
        received_s = time.perf_counter()
        service = self.server.service
        given = self.headers.get("X-Request-Id")
        if given is not None and not _REQUEST_ID.fullmatch(given):
            self._drain()
            service.metrics.error(400)
            self._error(400, "X-Request-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
            return
        request_id = given or uuid.uuid4().hex
        try:
            body = self._read_body()
            outcome = service.infer_bytes(
                body, self.headers.get("Content-Type", ""), request_id, received_s
            )
        except ServeError as exc:
            service.metrics.error(exc.status)
            extra = {"reasons": list(exc.reasons)} if hasattr(exc, "reasons") else {}
            self._error(exc.status, str(exc), request_id, **extra)
            return
        except Exception as exc:  # a bug must still answer the client, and say what happened
            traceback.print_exc(file=sys.stderr)
            service.metrics.error(500)
            self._error(500, f"internal error: {type(exc).__name__}: {exc}", request_id)
            return
        cfg = service.config
        payload = outcome.to_dict(cfg.model, cfg.runtime, cfg.weights_note)
        self._json(200, payload, {"X-Request-Id": request_id})

    def _health(self) -> None:
        service = self.server.service
        nodes = [asdict(h) for h in service.fleet.health()]
        up = sum(1 for n in nodes if n["up"])
        status = "ok" if up == len(nodes) else ("degraded" if up else "down")
        windows = service.windows
        snapshot, totals = windows.snapshot, windows.totals
        payload = {
            "status": status,
            "nodes_up": up,
            "nodes": nodes,
            "model_key": service.model_key,
            "uptime_s": time.monotonic() - self.server.started_s,
            "requests_total": service.metrics.requests_total(),
            "meter": {
                "source": snapshot.source,
                "meter": snapshot.meter,
                "method": dict(snapshot.energy_method),
                "windows": totals.windows,
                "last_window_age_s": (
                    time.monotonic() - snapshot.closed_mono_s if totals.windows else None
                ),
                "errors": totals.errors,
                "last_error": totals.last_error,
            },
            "ledger": {
                "path": str(service.ledger.path),
                "rows_written": service.ledger.rows_written,
                "errors": service.ledger.errors,
            },
            **self.server.describe,
        }
        self._json(200 if up else 503, payload)

    def _nodes(self) -> None:
        service = self.server.service
        rows = []
        for state in service.states():
            row = asdict(state)
            intensity = service.intensities[state.name]
            row["intensity_source"] = intensity.source
            row["pue"] = service.pues[state.name]
            row["energy_rate_kwh_per_cpu_s"] = sum(service.windows.snapshot.rates[state.name])
            rows.append(row)
        self._json(200, {"model_key": service.model_key, "nodes": rows})

    def _ledger(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        raw = query.get("limit", ["50"])[-1]
        try:
            limit = int(raw)
        except ValueError:
            self._error(400, f"limit must be an integer 1..{MAX_LEDGER_LIMIT}, got {raw!r}")
            return
        if not 1 <= limit <= MAX_LEDGER_LIMIT:
            self._error(400, f"limit must be an integer 1..{MAX_LEDGER_LIMIT}, got {limit}")
            return
        service = self.server.service
        rows = service.ledger.recent(limit)
        self._json(200, {"run_id": service.run_id, "path": str(service.ledger.path), "rows": rows})

    def _metrics(self) -> None:
        service = self.server.service
        up = {h.name: h.up for h in service.fleet.health()}
        text = service.metrics.render(service.windows.totals, up)
        self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
