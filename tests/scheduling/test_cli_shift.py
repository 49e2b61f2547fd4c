"""``carbonedge shift`` end to end: CSV traces in tmp_path, Electricity Maps over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from carbonedge.cli.main import main

T0 = datetime(2024, 5, 1, tzinfo=UTC)
# hourly: 400 400 100 150 500 500 (DE); another zone that must not leak in
ROWS = [400, 400, 100, 150, 500, 500]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    lines = ["timestamp,zone,gco2_per_kwh"]
    lines += [f"{(T0 + timedelta(hours=h)).isoformat()},DE,{g}" for h, g in enumerate(ROWS)]
    lines += [f"{(T0 + timedelta(hours=h)).isoformat()},FR,1" for h in range(6)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _shift(trace: Path, *extra: str) -> list[str]:
    return ["shift", "--trace", str(trace), "--zone", "DE", "--earliest", T0.isoformat(), *extra]


def test_csv_json_plan_and_carbon(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [*_shift(trace, "--duration-s", "7200", "--deadline", "+6h"), "--energy-kwh", "2", "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    # 2 h windows: 0h 400, 1h 250, 2h 125, 3h 325, 4h 500 -> start at 02:00, mean 125
    assert out["start"] == (T0 + timedelta(hours=2)).isoformat()
    assert out["mean_g_per_kwh"] == pytest.approx(125.0)
    assert out["now_mean_g_per_kwh"] == pytest.approx(400.0)
    assert out["saving_pct"] == pytest.approx(68.75)
    assert out["saved_g"] == pytest.approx(2 * (400 - 125))
    assert out["zone"] == "DE" and out["forecast_points"] == 6


def test_csv_text_output_and_relative_minutes(
    trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_shift(trace, "--duration-s", "1800", "--deadline", "+150m")) == 0
    out = capsys.readouterr().out
    assert "best start: 2024-05-01T02:00:00+00:00" in out and "75.0% less carbon" in out


def test_csv_with_one_zone_needs_no_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.csv"
    path.write_text("timestamp,zone,gco2_per_kwh\n2024-05-01T00:00Z,X,9\n2024-05-01T01:00Z,X,3\n")
    args = ["shift", "--trace", str(path), "--earliest", "2024-05-01T00:00Z"]
    assert main([*args, "--duration-s", "600", "--deadline", "+2h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_g_per_kwh"] == 3.0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--duration-s", "7200", "--deadline", "+1h"], "deadline"),
        (["--duration-s", "3600", "--deadline", "+9h"], "covers"),
        (["--duration-s", "3600", "--deadline", "+3d"], "+Hh"),
        (["--duration-s", "3600", "--deadline", "tomorrow"], "--deadline"),
        (["--duration-s", "-5", "--deadline", "+2h"], "duration_s"),
        (["--duration-s", "60", "--deadline", "+2h", "--energy-kwh", "-1"], "--energy-kwh"),
    ],
)
def test_bad_input_is_one_line_exit_two(
    trace: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_shift(trace, *args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("carbonedge: error:") and needle in err


def test_zone_errors(trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["shift", "--trace", str(trace), "--duration-s", "60", "--deadline", "+1h"]
    assert main(base) == 2
    assert "--zone" in capsys.readouterr().err  # two zones in the file
    assert main([*base, "--zone", "PL"]) == 2
    assert "PL" in capsys.readouterr().err
    missing = ["shift", "--trace", str(tmp_path / "nope.csv"), "--duration-s", "1"]
    assert main([*missing, "--deadline", "+1h"]) == 2
    assert "nope.csv" in capsys.readouterr().err


class _ForecastServer:
    """Serves a recorded-format Electricity Maps v3 ``/carbon-intensity/forecast`` on 127.0.0.1."""

    def __init__(self, body: Any, first_hour: datetime) -> None:
        self.first_hour = first_hour
        self.requests: list[tuple[str, str | None]] = []
        raw = json.dumps(body).encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, self.headers.get("auth-token")))
                ok = self.path.startswith("/v3/carbon-intensity/forecast")
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw) if ok else 2))
                self.end_headers()
                self.wfile.write(raw if ok else b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v3"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def em_server() -> Iterator[_ForecastServer]:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stamp = [(now + timedelta(hours=h)).isoformat().replace("+00:00", ".000Z") for h in range(8)]
    values = [420, 410, 380, 90, 95, 300, 450, 460]
    body = {
        "zone": "DE",
        "forecast": [
            {"carbonIntensity": g, "datetime": t} for g, t in zip(values, stamp, strict=True)
        ],
        "updatedAt": stamp[0],
    }
    server = _ForecastServer(body, now)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join(5)


def test_electricitymaps_forecast_over_http(
    em_server: _ForecastServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["shift", "--source", "electricitymaps", "--zone", "DE", "--base-url", em_server.url]
    extra = ["--token", "T0K", "--duration-s", "3600", "--deadline", "+6h", "--json"]
    assert main([*args, *extra]) == 0
    out = json.loads(capsys.readouterr().out)
    # the 90 g hour starts 3 h after the forecast's first (current) hour
    assert datetime.fromisoformat(out["start"]) == em_server.first_hour + timedelta(hours=3)
    assert out["mean_g_per_kwh"] == pytest.approx(90.0)
    assert out["source"] == "electricitymaps:forecast" and out["forecast_points"] == 8
    path, token = em_server.requests[0]
    assert path == "/v3/carbon-intensity/forecast?zone=DE" and token == "T0K"


def test_electricitymaps_errors_exit_two(
    em_server: _ForecastServer, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["shift", "--source", "electricitymaps", "--duration-s", "60", "--deadline", "+1h"]
    assert main(base) == 2
    assert "--zone" in capsys.readouterr().err
    bad_url = ["--zone", "DE", "--base-url", "http://127.0.0.1:9/v3", "--timeout", "0.5"]
    assert main([*base, *bad_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect" in err
    wrong_path = ["--zone", "DE", "--base-url", em_server.url + "/x"]
    assert main([*base, *wrong_path]) == 2
    assert "HTTP 404" in capsys.readouterr().err
