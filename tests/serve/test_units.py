"""The endpoint's parts without processes: decoding, top-5, metrics, meter windows, config."""

from __future__ import annotations

import asyncio
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
from carbonedge.data import model_input, preprocess
from carbonedge.engine import EngineSettings, MeasurementWindows, NodeCpu, RollingRates, open_engine
from carbonedge.engine.rates import profile_snapshot
from carbonedge.errors import ConfigError
from carbonedge.fleet import ModelRef
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.spec import FleetSpec, parse_fleet
from carbonedge.serve import BadRequest, ServeConfig, ServeError, ServeMetrics, decode_body, top_k


def fake_spec(n: int = 2) -> FleetSpec:
    nodes = [
        {"name": f"n{i}", "cpu_quota": 1.0, "memory_mb": 512,
         "intensity_g_per_kwh": 400 - 100 * i, "idle_w": 1.0, "max_w": 5.0}
        for i in range(n)
    ]  # fmt: skip
    return parse_fleet({"nodes": nodes}, "fake-fleet")


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
def test_decode_any_mode_to_rgb_crop(mode: str) -> None:
    x = decode_body(_png(mode), "image/png")
    assert x.shape == (1, 224, 224, 3) and x.dtype == np.uint8
    # what the node's runtime feeds the model: the normalised image of the reference transform
    reference = preprocess(Image.open(io.BytesIO(_png(mode))))
    np.testing.assert_allclose(model_input(x)[0], reference, atol=1e-6)


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


def test_top_k_refuses_non_finite_logits() -> None:
    logits = np.zeros((1, 10), np.float32)
    logits[0, 3] = np.nan
    with pytest.raises(ServeError, match="not finite"):
        top_k(logits)


def test_metrics_text_parses_and_counts(tmp_path: Path) -> None:
    fleet = InProcessFleet(fake_spec(2))
    settings = EngineSettings(meter="fake", window_s=0.0, ledger=tmp_path / "l.sqlite")
    with open_engine(settings, fleet=fleet, models=[ModelRef("m")]) as engine:
        m = ServeMetrics(engine)
        m.observe("n0", 20.0, 15.0, 0.01, 1e-8, 4e-6, "window-cputime")
        m.observe("n0", 30.0, 25.0, 0.01, 1e-8, 4e-6, "window-cputime")
        m.error(400)
        fleet.down = {"n1"}
        text = m.render().decode()
    for line in text.splitlines():
        assert METRIC_LINE.match(line), line
    assert 'carbonedge_requests_total{code="200",node="n0"} 2.0' in text
    assert 'carbonedge_requests_total{code="400",node="none"} 1.0' in text
    assert "carbonedge_request_latency_ms_count 2.0" in text
    assert "carbonedge_request_latency_ms_sum 50.0" in text
    assert 'carbonedge_request_energy_kwh_total{method="window-cputime",node="n0"} 2e-08' in text
    assert 'carbonedge_node_up{node="n1"} 0.0' in text
    assert (
        'carbonedge_node_intensity_g_per_kwh{node="n1",source="static (fleet spec)"} 300.0' in text
    )
    assert "carbonedge_queue_depth 0.0" in text
    assert m.requests_total() == 3


def test_rolling_windows_publish_rates_that_reconcile_with_the_reading() -> None:
    fleet = InProcessFleet(fake_spec(2))
    prior = profile_snapshot(fleet.spec)
    # linear profile 1..5 W, quota 1 core: 4 J per CPU-second above idle
    assert prior.rates["n0"][0] == pytest.approx(4.0 / 3.6e6)
    cpu = NodeCpu(fleet)  # an in-process fleet has no pids: the tasks' CPU time is used
    windows = MeasurementWindows(
        lambda: FakeMeter(lambda _t: (8.0, 0.0, 2.0), time.monotonic, 0.05), cpu
    )
    rates = RollingRates(fleet.spec, windows, 0.2, idle_cpu_power_w=0.0)
    assert rates.snapshot.source == "power-profile"
    rates.start()
    cpu.record("n0", 0.1)
    deadline = time.monotonic() + 10
    while rates.snapshot.source != "window" and time.monotonic() < deadline:
        time.sleep(0.02)
    rates.stop()
    snap, totals = rates.snapshot, rates.totals
    assert snap.source == "window" and totals.windows >= 1
    assert snap.basis["n0"] == "node"
    host = sum(totals.host_kwh.values())
    # without pids all active energy goes to the nodes by their CPU-time share
    assert sum(totals.node_kwh.values()) + totals.idle_kwh + totals.other_kwh == pytest.approx(
        host, rel=1e-9
    )
    assert "fake" in snap.describe("n0", time.monotonic())


def test_named_windows_measure_and_refuse_misuse() -> None:
    from carbonedge.engine.windows import WindowError

    fleet = InProcessFleet(fake_spec(1))
    cpu = NodeCpu(fleet)
    windows = MeasurementWindows(
        lambda: FakeMeter(lambda _t: (8.0, 0.0, 2.0), time.monotonic, 0.05), cpu
    )
    windows.begin_window("a")
    windows.begin_window("b")  # overlapping windows, one meter each
    with pytest.raises(WindowError, match="already open"):
        windows.begin_window("a")
    cpu.record("n0", 0.25)
    time.sleep(0.1)
    a = windows.end_window("a")
    b = windows.end_window("b")
    with pytest.raises(WindowError, match="not begun"):
        windows.end_window("a")
    assert a.name == "a" and a.node_cpu_s == {"n0": 0.25} and a.node_cpu_source == "tasks"
    assert a.duration_s >= 0.1 and a.energy_kwh > 0 and b.energy_kwh > 0
    assert a.method_label == "cpu=fake gpu=fake ram=fake"


def test_repeated_request_id_is_stored_once_each(tmp_path: Path) -> None:
    fleet = InProcessFleet(fake_spec(1))
    settings = EngineSettings(meter="fake", window_s=0.0, ledger=tmp_path / "l.sqlite")
    x = np.zeros((1, 3, 224, 224), np.float32)
    with open_engine(settings, fleet=fleet, models=[ModelRef("m")]) as engine:
        for _ in range(3):
            engine.run(x, engine.model_keys[0], task_id="same")
        assert engine.ledger is not None
        ids = [r.task_id for r in engine.ledger.recent(10)]
    assert ids == ["same", "same#2", "same#3"]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="slo_ms"):
        ServeConfig(engine=EngineSettings(slo_ms=100, policy="paper"))
    with pytest.raises(ConfigError, match="window_s"):
        ServeConfig(engine=EngineSettings(window_s=0))
    with pytest.raises(ConfigError, match="port"):
        ServeConfig(port=70000)
    with pytest.raises(ConfigError, match="backend"):
        EngineSettings(backend="k8s")  # type: ignore[arg-type]
    assert math.isfinite(ServeConfig().max_body_bytes)


def test_request_limiter_releases_a_body_on_every_exit() -> None:
    from starlette.requests import Request

    from carbonedge.serve.errors import PayloadTooLarge, RequestTimeout
    from carbonedge.serve.limits import RequestLimiter, ServerLimits

    def request(length: int, pieces: list[bytes]) -> Request:
        async def receive() -> dict[str, object]:
            if pieces:
                return {"type": "http.request", "body": pieces.pop(0), "more_body": True}
            await asyncio.sleep(3600)  # the client stalls
            raise AssertionError("unreachable")

        headers = [(b"content-length", str(length).encode())]
        return Request({"type": "http", "method": "POST", "headers": headers}, receive)

    limiter = RequestLimiter(ServerLimits(body_timeout_s=0.2), max_body_bytes=64)

    async def read(req: Request) -> None:
        async with limiter.body(req):
            pass

    async def scenario() -> None:
        with pytest.raises(RequestTimeout, match=r"within 0.2 s \(10 of 40 bytes arrived\)"):
            await read(request(40, [b"x" * 10]))
        assert limiter.buffered_bytes == 0
        with pytest.raises(PayloadTooLarge, match="over the limit of 64 bytes"):
            await read(request(60, [b"x" * 40, b"x" * 40]))  # longer than it said
        assert limiter.buffered_bytes == 0
        task = asyncio.ensure_future(read(request(40, [b"x" * 10])))
        await asyncio.sleep(0.05)
        assert limiter.buffered_bytes == 10  # held while it is read
        task.cancel()  # the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.buffered_bytes == 0

    asyncio.run(scenario())
