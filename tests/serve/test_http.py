"""The endpoint over real HTTP on 127.0.0.1 with a real 2-node LocalFleet (one per module),
through the engine: one ServeApp per module on an engine over that fleet."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from PIL import Image

from carbonedge.carbon import CodeCarbonConfig, CodeCarbonMeter
from carbonedge.engine import Engine, EngineSettings, open_engine
from carbonedge.fleet import LocalFleet, ModelRef
from carbonedge.fleet.spec import parse_fleet
from carbonedge.serve import ServeApp, ServeConfig

from .test_units import METRIC_LINE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MODEL = "mobilenetv4_conv_small"  # the fastest of the paper's models


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[LocalFleet, str]]:
    spec = parse_fleet(
        {
            "nodes": [
                {"name": "a", "cpu_quota": 0.5, "memory_mb": 512, "intensity_g_per_kwh": 500,
                 "idle_w": 1.0, "max_w": 4.0},
                {"name": "b", "cpu_quota": 0.5, "memory_mb": 512, "zone": "FRA", "pue": 1.2,
                 "idle_w": 1.0, "max_w": 4.0},
            ]
        },
        "serve-test-fleet",
    )  # fmt: skip
    with LocalFleet(spec, restart=True) as f:
        key = f.deploy(ModelRef(MODEL), spec.names, runtime="torch")
        yield f, key


def _serve(
    fleet: LocalFleet,
    key: str,
    ledger: Path,
    meter: str = "fake",
    window_s: float = 0.5,
    meter_factory: Any = None,
) -> tuple[Engine, ServeApp]:
    settings = EngineSettings(meter=meter, window_s=window_s, ledger=ledger, run_prefix="test")  # type: ignore[arg-type]
    engine = open_engine(settings, fleet=fleet, meter=meter_factory)
    cfg = ServeConfig(model=MODEL, port=0, engine=settings)
    return engine, ServeApp(cfg, engine, key, own_engine=True).start()


@pytest.fixture(scope="module")
def app(
    fleet: tuple[LocalFleet, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeApp]:
    f, key = fleet
    _, a = _serve(f, key, tmp_path_factory.mktemp("serve") / "ledger.sqlite")
    with a:
        yield a


def _png(size: tuple[int, int] = (320, 240), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _request(
    app: ServeApp,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _infer(app: ServeApp, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    h = {"Content-Type": "image/png", **headers}
    status, _, data = _request(app, "POST", "/v1/infer", body, h)
    return status, json.loads(data)


def test_infer_png_file(app: ServeApp, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(_png(mode="RGBA"))
    status, headers, data = _request(
        app, "POST", "/v1/infer", path.read_bytes(),
        {"Content-Type": "image/png", "X-Request-Id": "req-1"},
    )  # fmt: skip
    assert status == 200, data
    out = json.loads(data)
    assert headers["x-request-id"] == "req-1" and out["request_id"] == "req-1"
    assert out["node"] in ("a", "b") and out["attempts"] == 1
    assert len(out["top5"]) == 5
    probs = [p["probability"] for p in out["top5"]]
    assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1
    assert all(0 <= p["class"] < 1000 for p in out["top5"])
    assert out["exec_ms"] > 0 and out["cpu_s"] > 0
    assert out["latency_ms"] >= out["exec_ms"]
    assert out["energy_kwh"] > 0 and out["estimate"] is True
    assert out["gco2"] == pytest.approx(out["energy_kwh"] * out["intensity_g_per_kwh"] * out["pue"])
    assert out["energy_method"] in ("window-cputime", "power-profile")
    assert out["energy_note"].startswith("estimate:")
    assert "random weights" in out["weights_note"]
    if out["node"] == "b":  # zone-only node: CodeCarbon's yearly mix for France, PUE 1.2
        assert (
            out["intensity_source"].startswith("codecarbon:global_energy_mix") and out["pue"] == 1.2
        )


def test_infer_json_body_and_windowed_energy(app: ServeApp) -> None:
    deadline = time.monotonic() + 15
    while app.engine.rates.totals.windows < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    body = json.dumps({"image_b64": base64.b64encode(_png((100, 300))).decode()}).encode()
    status, out = _infer(app, body, **{"Content-Type": "application/json"})
    assert status == 200, out
    assert out["energy_method"] == "window-cputime"
    assert out["meter_method"] == {"cpu": "fake", "gpu": "fake", "ram": "fake"}
    assert "apportioned by CPU time" in out["energy_note"]
    assert out["timings"]["schedule_us"] < 5000  # microseconds, tolerant of a busy machine


def _infer_into(app: ServeApp, body: bytes, result: dict[str, Any]) -> None:
    try:
        result["out"] = _infer(app, body)
    except Exception as exc:  # reported by the test, not lost in the thread
        result["out"] = (-1, {"error": repr(exc)})


def test_errors_400_404_405_413(app: ServeApp) -> None:
    status, out = _infer(app, b"this is not an image")
    assert status == 400 and "cannot decode image" in out["error"]
    status, out = _infer(app, b"{}", **{"Content-Type": "application/json"})
    assert status == 400 and "image_b64" in out["error"]
    status, out = _infer(app, _png(), **{"X-Request-Id": "bad id with spaces"})
    assert status == 400 and "X-Request-Id" in out["error"]
    status, _, data = _request(app, "GET", "/v1/nope")
    assert status == 404 and "/v1/nope" in json.loads(data)["error"]
    status, _, data = _request(app, "GET", "/openapi.json")
    assert status == 200 and "/v1/infer" in json.loads(data)["paths"]
    status, _, data = _request(app, "GET", "/v1/infer")
    assert status == 405 and "POST" in json.loads(data)["error"]
    status, _, data = _request(app, "GET", "/v1/ledger?limit=zero")
    assert status == 400 and "limit" in json.loads(data)["error"]
    # Too large: refused from the header alone, the body is never read.
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/infer")
        conn.putheader("Content-Type", "image/png")
        conn.putheader("Content-Length", str(app.config.max_body_bytes + 1))
        conn.endheaders()
        resp = conn.getresponse()
        out = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413 and str(app.config.max_body_bytes) in out["error"]


def test_health_nodes_and_metrics(app: ServeApp) -> None:
    status, out = _infer(app, _png())
    assert status == 200
    status, _, data = _request(app, "GET", "/v1/health")
    health = json.loads(data)
    assert status == 200 and health["status"] in ("ok", "degraded")
    assert {n["name"] for n in health["nodes"]} == {"a", "b"}
    assert health["model_key"] == app.model_key
    assert all("pid" not in n for n in health["nodes"])  # no process ids to clients
    assert health["ledger"]["file"] == "ledger.sqlite"
    status, _, data = _request(app, "GET", "/v1/nodes")
    nodes = json.loads(data)["nodes"]
    assert status == 200 and nodes and {"load", "avg_time_s", "intensity_source"} <= set(nodes[0])
    status, headers, data = _request(app, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = data.decode()
    for line in text.splitlines():
        assert METRIC_LINE.match(line), line
    assert f'carbonedge_requests_total{{code="200",node="{out["node"]}"}}' in text
    assert "carbonedge_request_latency_ms_count" in text
    assert 'method="' in text and "carbonedge_request_gco2_total{" in text


def test_ledger_has_one_row_per_request(app: ServeApp) -> None:
    ids = [f"ledger-{i}" for i in range(4)]
    threads = [
        threading.Thread(target=_infer, args=(app, _png()), kwargs={"X-Request-Id": rid})
        for rid in ids
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status, _, data = _request(app, "GET", "/v1/ledger?limit=1000")
    rows = json.loads(data)["rows"]
    assert status == 200
    got = [r["task_id"] for r in rows if r["task_id"].startswith("ledger-")]
    assert sorted(got) == ids  # each request exactly once
    row = next(r for r in rows if r["task_id"] == "ledger-0")
    assert row["model"] == MODEL and row["energy_kwh"] > 0
    assert row["gco2"] == pytest.approx(row["energy_kwh"] * row["intensity_g_per_kwh"] * row["pue"])


def test_real_codecarbon_meter(fleet: tuple[LocalFleet, str], tmp_path: Path) -> None:
    f, key = fleet

    def meter() -> CodeCarbonMeter:
        return CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=0.5))

    _, a = _serve(f, key, tmp_path / "l.sqlite", "codecarbon", 1.0, meter_factory=meter)
    with a:
        deadline = time.monotonic() + 30
        while a.engine.rates.totals.windows < 1 and time.monotonic() < deadline:
            _infer(a, _png())
            time.sleep(0.2)
        status, out = _infer(a, _png())
    assert status == 200, out
    assert out["energy_method"] == "window-cputime"
    assert out["meter_method"]["cpu"] in ("rapl", "cpu-load-model", "constant")
    assert "codecarbon" in out["energy_note"]
    assert out["energy_kwh"] >= 0
    assert out["gco2"] == pytest.approx(out["energy_kwh"] * out["intensity_g_per_kwh"] * out["pue"])
    assert sum(a.engine.rates.totals.host_kwh.values()) > 0


def test_node_killed_mid_request_is_redispatched(
    app: ServeApp, fleet: tuple[LocalFleet, str]
) -> None:
    f, _ = fleet
    body = _png()
    for _attempt in range(10):
        result: dict[str, Any] = {}
        t = threading.Thread(target=_infer_into, args=(app, body, result))
        t.start()
        victim = None
        deadline = time.monotonic() + 10
        while victim is None and t.is_alive() and time.monotonic() < deadline:
            busy = [s.name for s in f.node_states() if s.tasks_in_flight > 0]
            pid = f.node_pids().get(busy[0]) if busy else None
            if pid is not None:
                victim = busy[0]
                os.kill(pid, signal.SIGKILL)
        t.join()
        status, out = result["out"]
        assert status == 200, out
        if victim is not None and out["attempts"] == 2:
            assert out["failed_nodes"] == [victim] and out["node"] != victim
            break
    else:
        pytest.fail("never caught a request in flight to kill its node")
    deadline = time.monotonic() + 90  # leave the fleet whole: the node restarts with its model
    while not all(h.up for h in f.health()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(h.up for h in f.health())
    status, _, data = _request(app, "GET", "/metrics")
    assert "carbonedge_redispatches_total 1.0" in data.decode()


def test_close_leaves_no_threads_or_sockets(fleet: tuple[LocalFleet, str], tmp_path: Path) -> None:
    f, key = fleet
    before = {t.name for t in threading.enumerate()}
    _, a = _serve(f, key, tmp_path / "l.sqlite", window_s=0.2)
    port = a.port
    assert _infer(a, _png())[0] == 200
    a.close()
    a.close()  # idempotent
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("carbonedge-")}
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
    pids = f.node_pids().values()
    assert all(pid is not None and psutil.pid_exists(pid) for pid in pids)  # not owned: kept
