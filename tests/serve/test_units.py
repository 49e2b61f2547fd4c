"""The endpoint's parts without processes: decoding, top-5, metrics, meter windows, service."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carbonedge.carbon import FakeMeter
from carbonedge.errors import ConfigError
from carbonedge.serve import (
    BadRequest,
    EnergyWindows,
    NoEligibleNode,
    ServeApp,
    ServeConfig,
    ServeMetrics,
    decode_body,
    make_meter,
    profile_snapshot,
    top_k,
)

from .fakes import FakeFleet, fake_spec

# One exposition line: name{labels} value, or a comment.
METRIC_LINE = re.compile(
    r'^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+)$'
)


def _png(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> bytes:
    colour: int | tuple[int, ...] = {"L": 128, "I;16": 40000, "LA": (10, 200)}.get(
        mode, (10, 200, 30, 128)[: len(mode)]
    )
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I;16"])
def test_decode_any_mode_to_normalised_rgb(mode: str) -> None:
    x = decode_body(_png(mode), "image/png")
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert np.isfinite(x).all()


def test_decode_json_and_errors_name_the_problem() -> None:
    raw = _png()
    body = json.dumps({"image_b64": base64.b64encode(raw).decode()}).encode()
    assert np.array_equal(decode_body(body, "application/json"), decode_body(raw, "image/png"))
    cases = [
        (b"not an image", "image/png", "cannot decode image"),
        (b"", "image/png", "empty body"),
        (b"{nope", "application/json", "not valid JSON"),
        (b'{"image": "x"}', "application/json", '"image_b64"'),
        (b'{"image_b64": "@@@"}', "application/json", "not valid base64"),
        (b'{"image_b64": 3}', "application/json", "base64 string"),
        (_png()[:60], "image/png", "cannot decode image"),
    ]
    for body, ctype, words in cases:
        with pytest.raises(BadRequest, match=re.escape(words)):
            decode_body(body, ctype)


def test_top_k_matches_a_full_softmax() -> None:
    logits = np.random.default_rng(1).standard_normal((1, 1000)).astype(np.float32)
    p = np.exp(logits[0].astype(np.float64) - logits.max())
    p /= p.sum()
    top = top_k(logits)
    assert [c for c, _ in top] == list(np.argsort(-p)[:5])
    assert [q for _, q in top] == pytest.approx(list(np.sort(p)[::-1][:5]), rel=1e-5)


def test_metrics_text_parses_and_counts() -> None:
    from carbonedge.serve import WindowTotals

    m = ServeMetrics()
    m.observe("n0", 20.0, 15.0, 0.01, 1e-8, 4e-6, "window-cputime", 1)
    m.observe("n0", 30.0, 25.0, 0.01, 1e-8, 4e-6, "window-cputime", 2)
    m.error(400)
    totals = WindowTotals(windows=1, host_kwh={("cpu", "fake"): 1e-5}, node_kwh={"n0": 1e-6})
    text = m.render(totals, {"n0": True, 'we"ird': False})
    for line in text.splitlines():
        assert METRIC_LINE.match(line), line
    assert 'carbonedge_requests_total{node="n0",code="200"} 2.0' in text
    assert 'carbonedge_requests_total{node="none",code="400"} 1.0' in text
    assert "carbonedge_request_latency_ms_count 2.0" in text
    assert "carbonedge_request_latency_ms_sum 50.0" in text
    assert "carbonedge_redispatches_total 1.0" in text
    assert 'carbonedge_request_energy_kwh_total{node="n0",method="window-cputime"} 2e-08' in text
    assert 'carbonedge_node_up{node="we\\"ird"} 0.0' in text


def test_windows_publish_rates_that_reconcile_with_the_reading() -> None:
    fleet = FakeFleet(fake_spec(2))
    prior = profile_snapshot(fleet.spec)
    # linear profile 1..5 W, quota 1 core: 4 J per CPU-second above idle
    assert prior.rates["n0"][0] == pytest.approx(4.0 / 3.6e6)
    meter = FakeMeter(lambda _t: (8.0, 0.0, 2.0), time.monotonic, 0.05)
    windows = EnergyWindows(meter, fleet, 0.2, idle_cpu_power_w=0.0)
    assert windows.snapshot.source == "power-profile"
    windows.start()
    windows.record("n0", 0.1)  # no node pids: the served requests' CPU time is used
    deadline = time.monotonic() + 10
    while windows.snapshot.source != "window" and time.monotonic() < deadline:
        time.sleep(0.02)
    windows.stop()
    snap, totals = windows.snapshot, windows.totals
    assert snap.source == "window" and totals.windows >= 1
    assert snap.basis["n0"] == "node"
    host = sum(totals.host_kwh.values())
    # without pids all active energy goes to the nodes by their CPU-time share
    assert sum(totals.node_kwh.values()) + totals.idle_kwh + totals.other_kwh == pytest.approx(
        host, rel=1e-9
    )
    assert "fake" in snap.describe("n0", time.monotonic())


def _app(fleet: FakeFleet, **kw: object) -> ServeApp:
    cfg = ServeConfig(meter="fake", port=0, window_s=60.0, **kw)  # type: ignore[arg-type]
    meter, idle = make_meter(cfg)
    return ServeApp(cfg, fleet, "fake/torch", meter, idle_cpu_power_w=idle)


def test_service_redispatches_once_and_records_one_row() -> None:
    fleet = FakeFleet(fake_spec(3))
    with _app(fleet, policy="paper", mode="performance") as app:
        x = np.zeros((1, 3, 224, 224), np.float32)
        first = app.service.infer(x, "a", time.perf_counter())
        fleet.die_once.add(first.node)
        second = app.service.infer(x, "b", time.perf_counter())
        assert second.attempts == 2 and second.failed_nodes == (first.node,)
        assert second.node != first.node
        fleet.die_once.add(second.node)
        third = [n for n in fleet.spec.names if n not in (first.node, second.node)]
        fleet.die_once.add(third[0])
        with pytest.raises(NoEligibleNode, match="went down"):
            app.service.infer(x, "c", time.perf_counter())
        with pytest.raises(NoEligibleNode, match="no node is up"):
            app.service.infer(x, "d", time.perf_counter())
        rows = app.ledger.recent(10)
    assert [r["task_id"] for r in rows] == ["a", "b"]
    expected = second.energy.energy_kwh * second.intensity.g_per_kwh * second.pue
    assert rows[1]["gco2"] == pytest.approx(expected) and rows[1]["gco2"] > 0
    assert rows[1]["attribution_method"] == "power-profile"


def test_send_failing_on_a_dying_node_is_redispatched() -> None:
    fleet = FakeFleet(fake_spec(2))
    with _app(fleet, policy="paper", mode="performance") as app:
        x = np.zeros((1, 3, 224, 224), np.float32)
        first = app.service.infer(x, "a", time.perf_counter()).node
        fleet.break_pipe.add(first)
        out = app.service.infer(x, "b", time.perf_counter())
        assert out.attempts == 2 and out.failed_nodes == (first,) and out.node != first


def test_send_error_on_a_node_that_is_up_is_not_hidden() -> None:
    fleet = FakeFleet(fake_spec(2))

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug, not a dying node")

    fleet.submit = broken  # type: ignore[assignment, method-assign]
    with _app(fleet) as app, pytest.raises(TypeError, match="a bug"):
        app.service.infer(np.zeros((1, 3, 224, 224), np.float32), "a", time.perf_counter())


def test_no_eligible_node_gives_the_schedulers_reasons() -> None:
    fleet = FakeFleet(fake_spec(2))
    fleet.loads = {"n0": 0.95, "n1": 0.9}
    with _app(fleet) as app, pytest.raises(NoEligibleNode) as info:
        app.service.infer(np.zeros((1, 3, 224, 224), np.float32), "x", time.perf_counter())
    assert "load" in str(info.value)
    assert {r["node"] for r in info.value.reasons} == {"n0", "n1"}
    assert all(r["reasons"] for r in info.value.reasons)


def test_repeated_request_id_is_stored_once_each(tmp_path: Path) -> None:
    fleet = FakeFleet(fake_spec(1))
    with _app(fleet, ledger=tmp_path / "l.sqlite") as app:
        x = np.zeros((1, 3, 224, 224), np.float32)
        for _ in range(3):
            app.service.infer(x, "same", time.perf_counter())
        ids = [r["task_id"] for r in app.ledger.recent(10)]
    assert ids == ["same", "same#2", "same#3"]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="slo_ms"):
        ServeConfig(slo_ms=100, policy="paper")
    with pytest.raises(ConfigError, match="window_s"):
        ServeConfig(window_s=0)
    with pytest.raises(ConfigError, match="port"):
        ServeConfig(port=70000)
    with pytest.raises(ConfigError, match="policy"):
        _app(FakeFleet(fake_spec(1)), policy="greedy")
    assert math.isfinite(ServeConfig().max_body_bytes)
