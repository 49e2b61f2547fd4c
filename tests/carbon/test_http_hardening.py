"""Intensity APIs that misbehave: slow, huge, wrong, or redirecting elsewhere with our token.

Real HTTP servers on 127.0.0.1 in threads; two servers on different ports are different origins.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from carbonedge.carbon import ElectricityMapsSource, IntensityError, WattTimeSource
from carbonedge.carbon.http_sources import MAX_RESPONSE_BYTES, MAX_TIMEOUT_S, get_json

TOKEN = "em-secret-token-1234"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
LATEST = {"zone": "DE", "carbonIntensity": 302, "datetime": NOW}

Handler = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """Routes: path -> a function that writes the whole response. Records paths and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                handler = server.routes.get(path, lambda h: send(h, 404, b"{}"))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    handler(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def json(self, path: str, body: Any, status: int = 200) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = lambda h: send(h, status, raw)

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    message: str | None = None,
) -> None:
    h.send_response(status, message)
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def redirect(location: str, status: int = 302) -> Handler:
    def handler(h: BaseHTTPRequestHandler) -> None:
        send(h, status, b"", {"Location": location})

    return handler


def _serve() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def other() -> Iterator[Server]:
    """A second server: another origin (same host, other port)."""
    yield from _serve()


def _em(server: Server, **kwargs: Any) -> ElectricityMapsSource:
    return ElectricityMapsSource(TOKEN, base_url=server.url + "/v3", **kwargs)


# -- total time budget -----------------------------------------------------------------------


def test_body_dripped_one_byte_at_a_time_is_cut_at_the_total_timeout(server: Server) -> None:
    def drip(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps(LATEST).encode() + b" " * 1000
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(len(body)):  # one byte every 0.1 s: no single read ever times out
            h.wfile.write(body[i : i + 1])
            h.wfile.flush()
            time.sleep(0.1)

    server.routes["/v3/carbon-intensity/latest"] = drip
    start = time.monotonic()
    with pytest.raises(IntensityError, match=r"timed out after 0\.6 s"):
        _em(server, timeout_s=0.6).intensity("DE")
    assert time.monotonic() - start < 2.0


def test_headers_dripped_one_byte_at_a_time_are_cut_too(server: Server) -> None:
    def drip_headers(h: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000 + b"\r\n\r\n"
        for i in range(len(head)):
            h.wfile.write(head[i : i + 1])
            h.wfile.flush()
            time.sleep(0.1)

    server.routes["/v3/carbon-intensity/latest"] = drip_headers
    start = time.monotonic()
    with pytest.raises(IntensityError, match="timed out"):
        _em(server, timeout_s=0.6).intensity("DE")
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan"), float("inf"), MAX_TIMEOUT_S + 1])
def test_bad_timeouts_are_refused(timeout_s: float) -> None:
    with pytest.raises(IntensityError, match="timeout must be"):
        ElectricityMapsSource(TOKEN, timeout_s=timeout_s)
    with pytest.raises(IntensityError, match="timeout must be"):
        WattTimeSource(TOKEN, timeout_s=timeout_s)
    with pytest.raises(IntensityError, match="timeout must be"):
        get_json("http://127.0.0.1:9/", {}, timeout_s)


# -- response size --------------------------------------------------------------------------


def test_large_content_length_is_refused_without_reading_the_body(server: Server) -> None:
    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(50 * MAX_RESPONSE_BYTES))
        h.end_headers()
        block = b" " * 65536
        for _ in range(50 * MAX_RESPONSE_BYTES // len(block)):
            h.wfile.write(block)

    server.routes["/v3/carbon-intensity/latest"] = huge
    with pytest.raises(IntensityError, match=r"larger than the limit of 1048576 bytes; not read"):
        _em(server).intensity("DE")


def test_large_body_without_length_is_cut_at_the_limit(server: Server) -> None:
    def stream(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        block = b"[" + b" " * 65535
        for _ in range(100):  # 6.25 MiB, no Content-Length
            h.wfile.write(block)

    server.routes["/v3/carbon-intensity/latest"] = stream
    with pytest.raises(IntensityError, match="larger than the limit of 1048576 bytes; cut there"):
        _em(server).intensity("DE")


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**LATEST, "carbonIntensity": "high"}, "must be a number .*got 'high'"),
        ({**LATEST, "carbonIntensity": -5}, "must be >= 0"),
        ({**LATEST, "carbonIntensity": 1e9}, "<= 10000"),
        ({**LATEST, "carbonIntensity": True}, "must be a number"),
        ({**LATEST, "carbonIntensity": [302]}, "must be a number"),
        ({**LATEST, "carbonIntensity": 10**400}, "must be >= 0"),
        (json.dumps(LATEST).replace("302", "NaN").encode(), "not valid JSON"),
        (json.dumps(LATEST).replace("302", "1e400").encode(), "must be >= 0"),
        ({**LATEST, "datetime": 5}, "bad timestamp"),
        ({**LATEST, "datetime": "0001-01-01T00:00:00+05:00"}, "bad timestamp"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_values_are_clear_errors(server: Server, body: Any, message: str) -> None:
    server.json("/v3/carbon-intensity/latest", body)
    with pytest.raises(IntensityError, match=f"electricitymaps:latest.*{message}|{message}"):
        _em(server).intensity("DE")


def test_watttime_nan_and_negative_values_are_refused(server: Server) -> None:
    for value in (-1.0, 1e30):
        body = {"data": [{"point_time": NOW, "value": value}], "meta": {"units": "lbs_co2_per_mwh"}}
        server.json("/v3/forecast", body)
        with pytest.raises(IntensityError, match="watttime:forecast: field 'value'"):
            WattTimeSource("tok", base_url=server.url, ttl_s=0).intensity("CAISO_NORTH")


def test_bad_fallback_value_is_refused_at_construction() -> None:
    with pytest.raises(IntensityError, match="fallback_g_per_kwh"):
        ElectricityMapsSource(TOKEN, fallback_g_per_kwh=float("nan"))


# -- credentials ----------------------------------------------------------------------------


def test_token_is_not_sent_to_another_origin_on_redirect(server: Server, other: Server) -> None:
    other.json("/v3/carbon-intensity/latest", LATEST)
    server.routes["/v3/carbon-intensity/latest"] = redirect(
        other.url + "/v3/carbon-intensity/latest?zone=DE"
    )
    assert _em(server).intensity("DE").g_per_kwh == 302.0
    assert server.headers_of("/v3/carbon-intensity/latest")[0]["auth-token"] == TOKEN
    forwarded = other.headers_of("/v3/carbon-intensity/latest")
    assert len(forwarded) == 1 and "auth-token" not in forwarded[0]


def test_token_is_kept_on_a_same_origin_redirect(server: Server) -> None:
    server.json("/v4/latest", LATEST)
    server.routes["/v3/carbon-intensity/latest"] = redirect("/v4/latest", 301)
    assert _em(server).intensity("DE").g_per_kwh == 302.0
    assert server.headers_of("/v4/latest")[0]["auth-token"] == TOKEN


def test_watttime_credentials_are_not_sent_to_another_origin(server: Server, other: Server) -> None:
    other.json("/login", {"token": "stolen?"})
    server.routes["/login"] = redirect(other.url + "/login", 307)
    server.json("/v3/forecast", {"error": "no"}, 401)
    source = WattTimeSource(base_url=server.url, username="alice", password="hunter2-pw")
    with pytest.raises(IntensityError) as info:
        source.intensity("CAISO_NORTH")
    assert server.headers_of("/login")[0]["authorization"].startswith("Basic ")
    assert "authorization" not in other.headers_of("/login")[0]
    assert "hunter2-pw" not in str(info.value)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("file:///etc/passwd", "not allowed"),  # refused by urllib itself
        ("ftp://127.0.0.1/x", "redirect to a 'ftp' URL refused"),  # urllib would follow this
        ("data:,{}", "not allowed"),
    ],
)
def test_redirect_to_a_non_http_url_is_refused(server: Server, location: str, message: str) -> None:
    server.routes["/v3/carbon-intensity/latest"] = redirect(location)
    with pytest.raises(IntensityError, match=message) as info:
        _em(server).intensity("DE")
    assert TOKEN not in str(info.value)


def test_only_http_urls_are_used() -> None:
    with pytest.raises(IntensityError, match="only http:// and https://"):
        ElectricityMapsSource(TOKEN, base_url="file:///etc").intensity("DE")


def test_token_never_appears_in_error_messages(server: Server) -> None:
    def echo(h: BaseHTTPRequestHandler) -> None:
        token = h.headers.get("auth-token", "")
        send(h, 500, f"oops {token}".encode(), message=f"Internal {token}")

    server.routes["/v3/carbon-intensity/latest"] = echo
    with pytest.raises(IntensityError) as info:
        _em(server).intensity("DE")
    assert TOKEN not in str(info.value) and "HTTP 500" in str(info.value)
    server.json("/v3/carbon-intensity/latest", f"not json {TOKEN}".encode())
    with pytest.raises(IntensityError, match="not valid JSON") as info:
        _em(server, ttl_s=0).intensity("DE")
    assert TOKEN not in str(info.value) and "***" in str(info.value)


def test_token_stays_out_of_fallback_reasons(server: Server) -> None:
    server.json("/v3/carbon-intensity/latest", f"<html>{TOKEN}".encode())
    reading = _em(server, fallback_g_per_kwh=400.0).intensity("DE")
    assert reading.fallback and TOKEN not in (reading.fallback_reason or "")


def test_password_in_base_url_is_not_shown(server: Server) -> None:
    server.json("/v3/carbon-intensity/latest", {"message": "no"}, 401)
    url = server.url.replace("http://", "http://user:pa55word@") + "/v3"
    with pytest.raises(IntensityError) as info:
        ElectricityMapsSource(TOKEN, base_url=url).intensity("DE")
    assert "pa55word" not in str(info.value)
