"""Bad command-line input: one line ``carbonedge: error: ...`` naming the option or file, field and
value, exit code 2, never a traceback; ``--json`` output is strict JSON (no bare NaN)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from carbonedge.cli.checks import dumps
from carbonedge.cli.main import main

TRACE = (
    "timestamp,zone,gco2_per_kwh\n"
    "2024-05-01T00:00:00Z,DE,300\n"
    "2024-05-01T01:00:00Z,DE,100\n"
    "2024-05-01T02:00:00Z,DE,200\n"
    "2024-05-01T03:00:00Z,DE,200\n"
)
NODE = (
    '[[nodes]]\nname = "{name}"\ncpu_quota = {quota}\nmemory_mb = 512\n'
    "intensity_g_per_kwh = 400\nidle_w = 1\nmax_w = 4\n"
)
STATES = (
    '[[nodes]]\nname = "a"\ncpu_quota = 1.0\nmemory_mb = 1024\navg_time_s = 0.3\n'
    "power_w = 3.0\nintensity_g_per_kwh = 400\n"
)


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"bare {token} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("carbonedge: error: "), captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    return path


# -- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "check"])
def test_fleet_nan_quota_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(NODE.format(name="a", quota="nan"))
    _error(
        capsys,
        ["fleet", command, "--fleet", str(path)],
        "fleet.toml: nodes[0].cpu_quota must be a finite number, got nan",
    )


def test_fleet_file_not_utf8_and_bad_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_bytes(NODE.format(name="caf\xe9", quota=1).encode("latin-1"))
    _error(capsys, ["fleet", "show", "--fleet", str(path)], "fleet.toml", "not UTF-8", "0xe9")
    path.write_text(NODE.format(name="../../etc", quota=1))
    _error(capsys, ["fleet", "show", "--fleet", str(path)], "nodes[0].name", "'../../etc'")
    path.write_text("[server]\nport = 1\n" + NODE.format(name="a", quota=1))
    _error(capsys, ["fleet", "show", "--fleet", str(path)], "'server' is not a known table")


def test_fleet_check_probe_must_be_finite(capsys: pytest.CaptureFixture[str]) -> None:
    _error(capsys, ["fleet", "check", "--probe-s", "inf"], "--probe-s", "inf")


def test_schedule_deep_json_and_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    _error(capsys, ["schedule", "--fleet", str(deep)], "deep.json", "nests deeper")
    states = tmp_path / "states.toml"
    states.write_text(STATES.replace("power_w = 3.0", "power_w = nan"))
    _error(capsys, ["schedule", "--fleet", str(states)], "nodes[0].power_w", "nan")
    states.write_text(STATES)
    _error(capsys, ["schedule", "--fleet", str(states), "--slo-ms", "nan"], "--slo-ms", "nan")


def test_schedule_json_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    states = tmp_path / "states.toml"
    states.write_text(STATES)
    assert main(["schedule", "--fleet", str(states), "--json"]) == 0
    _strict(capsys.readouterr().out)


def test_csv_with_bom_works_and_latin1_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + TRACE.encode())
    argv = ["intensity", "--source", "csv", "--file", str(path), "--zone", "DE"]
    assert main([*argv, "--at", "2024-05-01T01:30:00Z", "--json"]) == 0
    assert _strict(capsys.readouterr().out)["g_per_kwh"] == 100.0
    path.write_bytes((TRACE + "2024-05-01T04:00:00Z,Z\xfcrich,5\n").encode("latin-1"))
    _error(capsys, argv, "bom.csv", "not UTF-8 text")


def test_shift_with_bom_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + TRACE.encode())
    argv = ["shift", "--trace", str(path), "--earliest", "2024-05-01T00:00:00Z"]
    assert main([*argv, "--duration-s", "3600", "--deadline", "+3h", "--json"]) == 0
    assert _strict(capsys.readouterr().out)["start"].startswith("2024-05-01T01:00")


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--deadline", "+1000000000h"], ("--deadline", "too far ahead")),
        (["--deadline", "+99999999999999999999m"], ("--deadline", "too far ahead")),
        (["--deadline", "+1h", "--pue", "nan"], ("--pue", "nan")),
        (["--deadline", "+1h", "--pue", "inf"], ("--pue", "inf")),
        (["--deadline", "+1h", "--energy-kwh", "inf"], ("--energy-kwh", "inf")),
        (["--deadline", "+1h", "--earliest", "0001-01-01T00:00:00+05:00"], ("--earliest",)),
        (["--deadline", "9999-12-31T23:59:59-05:00"], ("--deadline",)),
        (["--deadline", "+1h", "--duration-s", "1e300"], ("--duration-s",)),
    ],
)
def test_shift_numbers(
    trace: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragments: tuple[str, ...]
) -> None:
    argv = ["shift", "--trace", str(trace), "--earliest", "2024-05-01T00:00:00Z"]
    if "--duration-s" not in extra:
        argv += ["--duration-s", "60"]
    _error(capsys, [*argv, *extra], "shift: ", *fragments)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--pue", "nan"),
        ("--pue", "inf"),
        ("--pue", "0.5"),
        ("--intensity", "nan"),
        ("--intensity", "-1"),
        ("--baseline-s", "inf"),
        ("--measure-power-secs", "0"),
        ("--force-cpu-power", "nan"),
    ],
)
def test_monitor_numbers_are_checked_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    _error(capsys, ["monitor", option, value, "--", *command], f"monitor: {option}", value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--source", "static", "--value", "nan"], ("--value", "nan")),
        (["--source", "static", "--value", "-3"], ("--value", "-3")),
        (["--source", "static", "--value", "inf"], ("--value", "inf")),
        (["--timeout", "-1"], ("--timeout", "-1")),
        (["--timeout", "nan"], ("--timeout", "nan")),
        (["--at", "0001-01-01T00:00:00+05:00"], ("--at",)),
    ],
)
def test_intensity_numbers(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: tuple[str, ...]
) -> None:
    _error(capsys, ["intensity", *argv], "intensity: ", *fragments)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--input-size", "-5"], "--input-size must be 16..2048, got -5"),
        (["--input-size", "100000"], "--input-size"),
        (["--repeats", "0"], "--repeats"),
        (["--nodes", "1000000000"], "--nodes"),
        (["--nodes", "1.0,nan"], "--nodes: capacities[1] = nan"),
        (["--nodes", "1.0,-1"], "--nodes: capacities[1] = -1.0"),
        (["--bandwidth-mbps", "nan"], "--bandwidth-mbps"),
        (["--comm-weight", "inf"], "--comm-weight"),
        (["--slo-ms", "-1"], "--slo-ms"),
    ],
)
def test_partition_numbers(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    _error(capsys, ["partition", *argv], fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--seed", "-1"], "--seed"),
        (["--model-seed", "-1"], "--model-seed"),
        (["--n", "100000"], "--n"),
        (["--threads", "100000"], "--threads"),
    ],
)
def test_infer_numbers(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    _error(capsys, ["infer", "--model", "mobilenet_v2", *argv], fragment)


# -- strict JSON ------------------------------------------------------------------------------


def test_embodied_overflow_is_refused_and_json_is_strict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["embodied", "--lifetime-years", "1e-300", "--busy-s", "1e300"]
    _error(capsys, [*base, "--kgco2e", "1e300", "--json"], "embodied: the result overflows")
    _error(capsys, ["embodied", "--kgco2e", "nan", "--lifetime-years", "4", "--busy-s", "1"], "nan")
    ok = ["embodied", "--kgco2e", "20", "--lifetime-years", "4", "--busy-s", "60", "--json"]
    assert main(ok) == 0
    assert _strict(capsys.readouterr().out)["embodied_g"] > 0


def test_dumps_turns_non_finite_numbers_into_null() -> None:
    payload = {"a": float("nan"), "b": [float("inf"), 1.5, {"c": -float("inf")}], "d": "NaN"}
    assert _strict(dumps(payload)) == {"a": None, "b": [None, 1.5, {"c": None}], "d": "NaN"}


def test_infer_json_with_nan_logits_is_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "nan_model.py").write_text(
        "import torch\n\n"
        "class NaNModel(torch.nn.Module):\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
        "        return torch.full((x.shape[0], 10), float('nan'))\n\n"
        "def build() -> torch.nn.Module:\n"
        "    return NaNModel().eval()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["infer", "--model", "nan_model:build", "--n", "1", "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert report["predictions"][0]["probabilities"][0] is None


# -- intensity APIs through the CLI -----------------------------------------------------------


@pytest.fixture
def api() -> Iterator[dict[str, bytes]]:
    """A local Electricity Maps stand-in: path -> JSON body; the URL is under key 'url'."""
    routes: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = routes.get(self.path.split("?")[0], b"{}")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    routes["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v3".encode()
    yield routes
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"high"', "got 'high'"),
        ("NaN", "not valid JSON"),
        ("-12", "got -12"),
        ("1e999", "got inf"),
    ],
)
def test_intensity_api_bad_values(
    api: dict[str, bytes], capsys: pytest.CaptureFixture[str], value: str, fragment: str
) -> None:
    api["/v3/carbon-intensity/latest"] = (
        b'{"zone": "DE", "datetime": "2024-05-01T00:00:00Z", "carbonIntensity": '
        + value.encode()
        + b"}"
    )
    url = api["url"].decode()
    argv = ["intensity", "--source", "electricitymaps", "--base-url", url, "--zone", "DE"]
    line = _error(capsys, [*argv, "--token", "s3cret-token"], fragment)
    assert "s3cret-token" not in line
    forecast = b'{"forecast": [{"datetime": "2024-05-01T00:00:00Z", "carbonIntensity": ' + (
        value.encode() + b"}]}"
    )
    api["/v3/carbon-intensity/forecast"] = forecast
    shift = ["shift", "--source", "electricitymaps", "--base-url", url, "--zone", "DE"]
    _error(capsys, [*shift, "--duration-s", "60", "--deadline", "+1h"], fragment)
