"""Electricity Maps and WattTime clients against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from carbonedge.carbon import ElectricityMapsSource, IntensityError, WattTimeSource


class Server:
    """Routes: path -> (status, body bytes, delay_s). Records every request's path and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body, delay_s = server.routes.get(path, (404, b"{}", 0.0))
                time.sleep(delay_s)
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "30")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def route(self, path: str, body: Any, status: int = 200, delay_s: float = 0.0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, raw, delay_s)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(5)


NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# Recorded format of GET /v3/carbon-intensity/latest (Electricity Maps API v3).
EM_LATEST = {
    "zone": "DE",
    "carbonIntensity": 302,
    "datetime": NOW.isoformat().replace("+00:00", ".000Z"),
    "updatedAt": NOW.isoformat().replace("+00:00", ".000Z"),
    "createdAt": NOW.isoformat().replace("+00:00", ".000Z"),
    "emissionFactorType": "lifecycle",
    "isEstimated": True,
    "estimationMethod": "TIME_SLICER_AVERAGE",
}


def em_points(key: str, start: datetime, values: list[int]) -> dict[str, Any]:
    return {
        "zone": "DE",
        key: [
            {
                "zone": "DE",
                "carbonIntensity": v,
                "datetime": (start + timedelta(hours=i)).isoformat(),
            }
            for i, v in enumerate(values)
        ],
    }


def test_electricitymaps_latest_sends_token_and_reads_carbon_intensity(server: Server) -> None:
    server.route("/v3/carbon-intensity/latest", EM_LATEST)
    source = ElectricityMapsSource("secret", base_url=server.url + "/v3")
    reading = source.intensity("DE")
    assert reading.g_per_kwh == 302.0
    assert reading.kind == "average" and not reading.fallback
    assert reading.source == "electricitymaps:latest"
    assert reading.at == NOW
    path, headers = server.requests[0]
    assert path == "/v3/carbon-intensity/latest?zone=DE"
    assert headers.get("auth-token") == "secret"


def test_electricitymaps_ttl_cache_avoids_second_request(server: Server) -> None:
    server.route("/v3/carbon-intensity/latest", EM_LATEST)
    now = [0.0]
    source = ElectricityMapsSource("t", server.url + "/v3", ttl_s=60, clock=lambda: now[0])
    source.intensity("DE")
    source.intensity("DE")
    assert len(server.requests) == 1
    now[0] = 61.0
    source.intensity("DE")
    assert len(server.requests) == 2


def test_electricitymaps_history_and_forecast(server: Server) -> None:
    server.route(
        "/v3/carbon-intensity/history",
        em_points("history", NOW - timedelta(hours=5), [100, 200, 300, 400, 500]),
    )
    server.route(
        "/v3/carbon-intensity/forecast",
        em_points("forecast", NOW + timedelta(hours=1), [50, 60, 70]),
    )
    source = ElectricityMapsSource("t", server.url + "/v3")
    past = source.intensity("DE", NOW - timedelta(hours=3, minutes=30))
    assert past.g_per_kwh == 200.0 and past.source == "electricitymaps:history"
    future = source.intensity("DE", NOW + timedelta(hours=2, minutes=10))
    assert future.g_per_kwh == 60.0 and future.source == "electricitymaps:forecast"


def _timeout_s(delay_s: float) -> float:
    """Client timeout (s): short only where the server delays its answer on purpose.

    A delayed route answers after ``delay_s`` at the earliest, so 0.3 s times out on any host;
    every other route gets ample time to answer, so a busy host cannot turn an HTTP error into
    a timeout.
    """
    return 0.3 if delay_s > 0 else 30.0


@pytest.mark.parametrize(
    ("status", "body", "delay_s", "message"),
    [
        (401, {"message": "unauthorized"}, 0.0, "HTTP 401"),
        (429, {"message": "slow down"}, 0.0, "HTTP 429: rate limited, retry after 30"),
        (200, b"<html>not json", 0.0, "not valid JSON"),
        (200, {"zone": "DE", "datetime": "2024-01-01T00:00:00Z"}, 0.0, "carbonIntensity"),
        (200, EM_LATEST, 1.0, "timed out"),
    ],
)
def test_electricitymaps_failures_raise_clear_errors(
    server: Server, status: int, body: Any, delay_s: float, message: str
) -> None:
    server.route("/v3/carbon-intensity/latest", body, status, delay_s)
    source = ElectricityMapsSource("t", server.url + "/v3", timeout_s=_timeout_s(delay_s))
    with pytest.raises(IntensityError, match=message):
        source.intensity("DE")


def test_fallback_to_last_known_then_static(server: Server) -> None:
    server.route("/v3/carbon-intensity/latest", EM_LATEST)
    now = [0.0]
    source = ElectricityMapsSource(
        "t",
        server.url + "/v3",
        ttl_s=1,
        fallback_to_last=True,
        fallback_g_per_kwh=530.0,
        clock=lambda: now[0],
    )
    assert not source.intensity("DE").fallback
    server.route("/v3/carbon-intensity/latest", {"message": "quota"}, 429)
    now[0] = 5.0
    last = source.intensity("DE")
    assert last.fallback and last.g_per_kwh == 302.0 and "HTTP 429" in (last.fallback_reason or "")
    static = source.intensity("FR")  # never seen: static value
    assert static.fallback and static.g_per_kwh == 530.0
    assert static.source == "electricitymaps:static-fallback"


# Recorded format of GET /v3/forecast (WattTime API v3), units lbs_co2_per_mwh.
def wt_body(start: datetime, values: list[float]) -> dict[str, Any]:
    return {
        "data": [
            {"point_time": (start + timedelta(minutes=5 * i)).isoformat(), "value": v}
            for i, v in enumerate(values)
        ],
        "meta": {
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "model": {"date": "2023-03-01"},
            "generated_at": start.isoformat(),
            "generated_at_period_seconds": 300,
            "data_point_period_seconds": 300,
            "warnings": [],
        },
    }


def test_watttime_login_then_forecast_converts_to_g_per_kwh(server: Server) -> None:
    server.route("/login", {"token": "tok-123"})
    server.route("/v3/forecast", wt_body(NOW, [1000.0, 900.0]))
    source = WattTimeSource(base_url=server.url, username="u", password="p")
    reading = source.intensity("CAISO_NORTH")
    assert reading.g_per_kwh == pytest.approx(1000.0 * 0.45359237)
    assert reading.kind == "marginal" and reading.source == "watttime:forecast"
    login_path, login_headers = server.requests[0]
    assert login_path == "/login" and login_headers["authorization"].startswith("Basic ")
    data_path, data_headers = server.requests[1]
    assert "region=CAISO_NORTH" in data_path and "signal_type=co2_moer" in data_path
    assert data_headers["authorization"] == "Bearer tok-123"


def test_watttime_historical_for_past_time(server: Server) -> None:
    server.route("/v3/historical", wt_body(NOW - timedelta(hours=2), [800.0, 700.0, 600.0]))
    source = WattTimeSource("given-token", base_url=server.url)
    reading = source.intensity("CAISO_NORTH", NOW - timedelta(hours=2) + timedelta(minutes=6))
    assert reading.g_per_kwh == pytest.approx(700.0 * 0.45359237)
    assert reading.source == "watttime:historical"


@pytest.mark.parametrize(
    ("status", "body", "delay_s", "message"),
    [
        (401, {"error": "bad token"}, 0.0, "HTTP 401"),
        (429, {"error": "too many"}, 0.0, "HTTP 429"),
        (200, b"{oops", 0.0, "not valid JSON"),
        (200, {"data": []}, 0.0, "'meta'"),
        (
            200,
            {"data": [{"point_time": NOW.isoformat(), "value": 1}], "meta": {"units": "percent"}},
            0.0,
            "units",
        ),
        (200, wt_body(NOW, [1.0]), 1.0, "timed out"),
    ],
)
def test_watttime_failures_raise_clear_errors(
    server: Server, status: int, body: Any, delay_s: float, message: str
) -> None:
    server.route("/v3/forecast", body, status, delay_s)
    source = WattTimeSource("tok", base_url=server.url, timeout_s=_timeout_s(delay_s))
    with pytest.raises(IntensityError, match=message):
        source.intensity("CAISO_NORTH")


def test_watttime_relogs_in_once_after_401(server: Server) -> None:
    server.route("/login", {"token": "fresh"})
    server.route("/v3/forecast", {"error": "expired"}, 401)
    source = WattTimeSource("old", base_url=server.url, username="u", password="p")
    with pytest.raises(IntensityError, match="HTTP 401"):
        source.intensity("CAISO_NORTH")
    assert [p.split("?")[0] for p, _ in server.requests] == [
        "/v3/forecast",
        "/login",
        "/v3/forecast",
    ]


def test_connection_refused_is_an_intensity_error() -> None:
    source = ElectricityMapsSource("t", "http://127.0.0.1:9/v3", timeout_s=0.5)
    with pytest.raises(IntensityError, match=r"127\.0\.0\.1:9"):
        source.intensity("DE")
