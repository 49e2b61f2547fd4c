"""The server's limits over real HTTP on 127.0.0.1 (docs/security.md, "Limits of the server"):
slow and half-sent request heads, truncated and mismatched bodies, oversized bodies, too many
connections, image bombs of every shape, a model whose output is NaN. Each gets a clear JSON
error, memory stays bounded, and the server answers health checks and images afterwards.

One real 1-node LocalFleet per module serves the paper's smallest model and a model that
returns NaN; the server runs with short timeouts (2 s) so that every wait is short.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import http.client
import io
import json
import logging
import os
import re
import select
import socket
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from carbonedge.cli.main import main
from carbonedge.engine import EngineSettings, open_engine
from carbonedge.fleet import LocalFleet, ModelRef
from carbonedge.fleet.spec import parse_fleet
from carbonedge.serve import ServeApp, ServeConfig
from carbonedge.serve.limits import ServerLimits

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MODEL = "mobilenetv4_conv_small"
TIMEOUT_S = 2.0
LIMITS = ServerLimits(header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, max_connections=48)
MAX_BODY_BYTES = 4 * 2**20
NAN_MODEL = (
    "import torch\n\n"
    "class NaNModel(torch.nn.Module):\n"
    "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    "        return torch.full((x.shape[0], 10), float('nan'))\n\n"
    "def build() -> torch.nn.Module:\n"
    "    return NaNModel().eval()\n"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFleet, str, str]]:
    models = tmp_path_factory.mktemp("models")
    (models / "ce_hardening_nan.py").write_text(NAN_MODEL)
    spec = parse_fleet(
        {"nodes": [{"name": "a", "cpu_quota": 1.0, "memory_mb": 1024, "intensity_g_per_kwh": 500,
                    "idle_w": 1.0, "max_w": 4.0}]},
        "hardening-fleet",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(models))  # spawned nodes inherit sys.path
        with LocalFleet(spec, restart=True) as f:
            key = f.deploy(ModelRef(MODEL), spec.names, runtime="torch")
            nan_key = f.deploy(ModelRef("ce_hardening_nan:build"), spec.names, runtime="torch")
            yield f, key, nan_key


def _serve(fleet: LocalFleet, key: str, model: str, ledger: Path) -> ServeApp:
    settings = EngineSettings(meter="fake", window_s=0.5, ledger=ledger, run_prefix="hardening")
    engine = open_engine(settings, fleet=fleet)
    config = ServeConfig(
        model=model, port=0, engine=settings, limits=LIMITS, max_body_bytes=MAX_BODY_BYTES
    )
    return ServeApp(config, engine, key, own_engine=True).start()


@pytest.fixture(scope="module")
def app(
    fleet: tuple[LocalFleet, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeApp]:
    f, key, _ = fleet
    with _serve(f, key, MODEL, tmp_path_factory.mktemp("serve") / "ledger.sqlite") as a:
        yield a


# -- helpers ----------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (320, 240), mode: str = "RGB", noise: bool = True) -> bytes:
    image = Image.new(mode, size, 0)
    if noise:
        rng = np.random.default_rng(0)
        pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
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


def _infer(app: ServeApp, body: bytes, content_type: str = "image/png") -> tuple[int, Any]:
    status, _, data = _request(app, "POST", "/v1/infer", body, {"Content-Type": content_type})
    return status, json.loads(data)


def _connect(app: ServeApp) -> socket.socket:
    return socket.create_connection(("127.0.0.1", app.port), timeout=10)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Read one HTTP response from a raw socket: status, headers, JSON body."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True once the server has closed ``sock`` (EOF) within ``within_s`` seconds."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except (TimeoutError, OSError):
        return False
    return True


def _assert_healthy(app: ServeApp) -> None:
    status, _, data = _request(app, "GET", "/v1/health")
    assert status == 200 and json.loads(data)["status"] == "ok", data
    status, out = _infer(app, _png())
    assert status == 200 and len(out["top5"]) == 5, out


# -- slow and half-sent requests --------------------------------------------------------------


def test_slow_head_is_cut_while_others_are_answered(app: ServeApp) -> None:
    head = b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
    sock = _connect(app)
    t0 = time.monotonic()
    try:
        for i in range(10):  # one byte per second, at most 10 s
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (408) before the head was complete
            sock.sendall(head[i : i + 1])
            # Others are answered meanwhile, at once.
            t1 = time.monotonic()
            status, _, _ = _request(app, "GET", "/v1/health")
            assert status == 200 and time.monotonic() - t1 < 5.0
            time.sleep(max(0.0, t0 + i + 1 - time.monotonic()))
        status, headers, body = _response(sock)
        waited = time.monotonic() - t0
    finally:
        sock.close()
    assert status == 408 and headers["connection"] == "close"
    assert body["error"] == f"request head not received within {TIMEOUT_S:g} s"
    assert TIMEOUT_S - 0.2 < waited < TIMEOUT_S + 2.5


def test_many_half_sent_heads_are_all_cut(app: ServeApp) -> None:
    socks = [_connect(app) for _ in range(40)]
    try:
        for s in socks:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        status, _, _ = _request(app, "GET", "/v1/health")  # the 41st connection: answered
        assert status == 200
        t0 = time.monotonic()
        answers = [_response(s) for s in socks]
        assert time.monotonic() - t0 < TIMEOUT_S + 3.0
    finally:
        for s in socks:
            s.close()
    assert {a[0] for a in answers} == {408}
    _assert_healthy(app)


def test_idle_connections_are_closed_and_capped(app: ServeApp) -> None:
    socks = [_connect(app) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.3)  # let the server accept them all
        with _connect(app) as extra:
            extra.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = _response(extra)
        assert status == 503 and headers["retry-after"] == "1"
        assert body["error"].startswith(f"too many connections (limit {LIMITS.max_connections})")
        # Idle connections (nothing sent) are closed after the head timeout, silently.
        assert all(_closed_by_server(s, TIMEOUT_S + 3.0) for s in socks)
    finally:
        for s in socks:
            s.close()
    _assert_healthy(app)


def test_truncated_body_is_cut_after_the_body_timeout(app: ServeApp) -> None:
    png = _png()
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            + f"Content-Length: {len(png)}\r\n\r\n".encode()
            + png[:100]
        )
        t0 = time.monotonic()
        status, headers, body = _response(sock)
        waited = time.monotonic() - t0
        assert _closed_by_server(sock, 2.0)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"] == (
        f"request body not received within {TIMEOUT_S:g} s (100 of {len(png)} bytes arrived)"
    )
    assert TIMEOUT_S - 0.2 < waited < TIMEOUT_S + 2.5
    _assert_healthy(app)


def test_trickled_body_is_cut_at_the_deadline(app: ServeApp) -> None:
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n"
        )
        t0 = time.monotonic()
        for _ in range(8):  # a byte every 0.5 s: each read is quick, the body never ends
            if select.select([sock], [], [], 0.5)[0]:
                break
            sock.sendall(b"x")
        status, _, body = _response(sock)
    assert status == 408 and "request body not received" in body["error"]
    assert time.monotonic() - t0 < TIMEOUT_S + 2.5


def _all_responses(sock: socket.socket, within_s: float) -> list[tuple[int, Any]]:
    """Every response on ``sock`` until the server closes it: (status, JSON body) each."""
    data = b""
    sock.settimeout(within_s)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # closed with bytes of ours unread: what arrived before still counts
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        n = int(fields["content-length"])
        out.append((int(lines[0].split()[1]), json.loads(rest[:n])))
        data = rest[n:]
    return out


def test_body_longer_than_its_content_length(app: ServeApp) -> None:
    png = _png((32, 24))
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 50\r\n\r\n" + png + b"\r\n\r\n"
        )
        answers = _all_responses(sock, TIMEOUT_S + 3.0)
    # The first 50 bytes: not an image; the rest, read as the next request: not HTTP (or,
    # should it arrive late, a head never completed). Then the server closes the connection.
    assert answers[0][0] == 400, answers
    assert answers[0][1]["error"].startswith("cannot decode image (50 bytes)")
    assert len(answers) <= 2
    if len(answers) == 2:
        assert answers[1][0] in (400, 408), answers
        assert answers[1][1]["error"].startswith(("invalid HTTP request", "request head"))
    _assert_healthy(app)


def test_pipelined_requests_are_answered_in_order(app: ServeApp) -> None:
    png = _png((32, 24))
    infer = (
        b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        + f"Content-Length: {len(png)}\r\n\r\n".encode()
        + png
    )
    blob = b"\0" * 40_000  # not an image: 400 naming its size, after its head was accepted
    second = (
        b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        + f"Content-Length: {len(blob)}\r\nConnection: close\r\n\r\n".encode()
    )
    with _connect(app) as sock:
        # Three requests in two writes; the third's head ends across them ("\r\n\r" | "\n"),
        # and the second write holds more than 16 KiB after that end.
        sock.sendall(infer + b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + second[:-1])
        time.sleep(0.3)
        sock.sendall(second[-1:] + blob)
        answers = _all_responses(sock, TIMEOUT_S + 3.0)
    assert [a[0] for a in answers] == [200, 200, 400], answers
    assert len(answers[0][1]["top5"]) == 5 and answers[1][1]["status"] in ("ok", "degraded")
    assert answers[2][1]["error"].startswith(f"cannot decode image ({len(blob)} bytes)")
    # Hundreds in one write: answered one after another (the parser takes the next request only
    # once the previous one is answered, so a flood of them is held as bytes, not requests).
    n = 300
    flood = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * (n - 1)
    with _connect(app) as sock:
        sock.sendall(
            flood + b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        answers = _all_responses(sock, TIMEOUT_S + 30.0)
    assert len(answers) == n and {a[0] for a in answers} == {200}


def test_bad_content_length_and_oversized_bodies(app: ServeApp) -> None:
    with _connect(app) as sock:
        sock.sendall(b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n")
        status, _, body = _response(sock)
    assert status == 400 and "invalid HTTP request" in body["error"]
    # Declared too large: refused from the header, the connection closed.
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        status, headers, body = _response(sock)
    assert status == 413 and headers["connection"] == "close"
    assert f"over the limit of {MAX_BODY_BYTES} bytes" in body["error"]
    # Chunked (no length): cut when it passes the limit.
    chunk = b"\0" * 2**20
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server answered and closed
        status, _, body = _response(sock)
    assert status == 413 and "body is over the limit" in body["error"]
    # A header block over 16 KiB, sent in pieces; and one header line of 64 KiB at once.
    for pieces in ([b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 40, [b"X-Pad: " + b"a" * 65536]):
        with _connect(app) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            try:
                for piece in pieces:
                    sock.sendall(piece)
                    time.sleep(0.005)
            except OSError:
                pass
            status, headers, body = _response(sock)
        assert status == 400 and "head over 16 KiB" in body["error"]
        assert headers["connection"] == "close"
    # Bytes the parser must not hold without bound either: a huge header after blank lines
    # (skipped before a request line), and a huge trailer after a chunked body.
    for attack in (
        b"\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 65536,
        b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Trailer: " + b"t" * 65536,
    ):
        with _connect(app) as sock:
            with contextlib.suppress(OSError):  # the server may answer and close mid-send
                sock.sendall(attack)
            status, _, body = _response(sock)
        assert status == 400 and "head over 16 KiB" in body["error"], body
    # A head just under the bound, then a body far larger than it, in one write: served.
    padding = b"X-Pad: " + b"a" * 15000 + b"\r\n"
    with _connect(app) as sock:
        sock.sendall(
            b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            + padding
            + f"Content-Length: {2**20}\r\n\r\n".encode()
            + b"\0" * 2**20
        )
        status, _, body = _response(sock)
    assert status == 400 and body["error"].startswith("cannot decode image"), body
    _assert_healthy(app)


def test_client_gone_mid_body_logs_no_traceback(app: ServeApp) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "carbonedge", "")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        for _ in range(20):
            with _connect(app) as sock:
                sock.sendall(
                    b"POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                    b"Content-Length: 5000\r\n\r\n" + b"\x89PNG" * 10
                )
        time.sleep(0.5)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert records == []
    _assert_healthy(app)


def test_head_and_options_are_json_405(app: ServeApp) -> None:
    for method in ("OPTIONS", "PUT", "DELETE"):
        status, headers, data = _request(app, method, "/v1/infer")
        assert status == 405 and headers["allow"] == "POST"
        assert json.loads(data)["error"] == f"{method} not allowed on /v1/infer; use POST"
    status, headers, data = _request(app, "HEAD", "/v1/health")
    assert status == 405 and headers["allow"] == "GET" and data == b""  # HEAD: no body
    assert headers["content-type"] == "application/json"


def test_health_shows_no_pids_or_paths(app: ServeApp) -> None:
    status, _, data = _request(app, "GET", "/v1/health")
    assert status == 200
    health = json.loads(data)
    assert all("pid" not in node for node in health["nodes"])
    ledger = app.engine.ledger
    assert ledger is not None and health["ledger"]["file"] == ledger.path.name
    text = data.decode()
    assert str(ledger.path.parent) not in text and str(Path.home()) not in text
    pids = {app.engine.fleet.health()[0].pid, os.getpid()}

    def walk(value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            assert "pid" not in value
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)
        else:
            yield value

    values = list(walk(health))
    assert not pids & {v for v in values if isinstance(v, int)}
    assert not [v for v in values if isinstance(v, str) and v.startswith("/")]


# -- image bombs --------------------------------------------------------------------------------


def _patch_png_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (CRC fixed), pixels unchanged."""
    ihdr = png[12:16] + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _bombs() -> dict[str, Callable[[], tuple[bytes, str]]]:
    def tiny_png_huge_size() -> tuple[bytes, str]:
        return _patch_png_size(_png((1, 1), noise=False), 100_000, 100_000), "pixels"

    def wide_strip() -> tuple[bytes, str]:
        return _encode(Image.new("L", (20_000, 1)), "PNG"), "resizing its shorter side"

    def thin_strip() -> tuple[bytes, str]:
        return _encode(Image.new("RGB", (6_000, 100)), "PNG"), "aspect ratio"

    def decompression_bomb() -> tuple[bytes, str]:  # 81 MP of zeros in a few kB
        return _encode(Image.new("1", (9_000, 9_000)), "PNG"), "pixels to decode"

    def gif_huge_screen() -> tuple[bytes, str]:
        gif = bytearray(_encode(Image.new("P", (1, 1)), "GIF"))
        gif[6:10] = struct.pack("<HH", 65_535, 65_535)
        return bytes(gif), "cannot decode image"

    def bmp_huge() -> tuple[bytes, str]:
        bmp = bytearray(_encode(Image.new("RGB", (1, 1)), "BMP"))
        bmp[18:26] = struct.pack("<ii", 50_000, 50_000)
        return bytes(bmp), "cannot decode image"

    def truncated_jpeg() -> tuple[bytes, str]:
        jpeg = _encode(Image.open(io.BytesIO(_png())).convert("RGB"), "JPEG")
        return jpeg[: len(jpeg) // 2], "cannot decode image"

    def truncated_png() -> tuple[bytes, str]:
        return _png()[:200], "cannot decode image"

    def not_an_image() -> tuple[bytes, str]:
        return bytes(range(256)) * 4, "not an image format Pillow reads"

    return {f.__name__: f for f in (
        tiny_png_huge_size, wide_strip, thin_strip, decompression_bomb, gif_huge_screen,
        bmp_huge, truncated_jpeg, truncated_png, not_an_image,
    )}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(_bombs()))
def test_image_bomb_is_a_clear_400(app: ServeApp, shape: str) -> None:
    body, fragment = _bombs()[shape]()
    assert len(body) < 200_000
    status, out = _infer(app, body)
    assert status == 400 and fragment in out["error"], out
    assert out["error"].startswith("cannot decode image")
    assert not re.search("0x[0-9a-f]{6}", out["error"])  # no object address
    as_json = json.dumps({"image_b64": base64.b64encode(body).decode()}).encode()
    status, out = _infer(app, as_json, "application/json")
    assert status == 400 and fragment in out["error"], out
    _assert_healthy(app)


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
def test_memory_stays_bounded_on_the_worst_images(app: ServeApp) -> None:
    """The largest image the limits let through (64 MP RGBA, a few hundred kB of PNG) and every
    bomb: the server's peak RSS (this process: the server runs in it) grows by less than
    1 GiB. Refused bombs cost next to nothing; benchmarks/bench_serve_memory.py measures the
    server alone."""
    worst = _encode(Image.new("RGBA", (8_000, 8_000), (10, 200, 30, 128)), "PNG")
    bombs = [make()[0] for make in _bombs().values()]
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base_kib = _vm_kib("VmRSS")
    for body in bombs:
        assert _infer(app, body)[0] == 400
    bombs_kib = _vm_kib("VmHWM") - base_kib
    status, out = _infer(app, worst)
    assert status == 200, out
    worst_kib = _vm_kib("VmHWM") - base_kib
    print(
        f"peak RSS growth: bombs {bombs_kib / 1024:.0f} MiB, worst image {worst_kib / 1024:.0f} MiB"
    )
    assert bombs_kib < 64 * 1024
    assert worst_kib < 1024 * 1024
    _assert_healthy(app)


# -- a model whose output is NaN --------------------------------------------------------------


def test_nan_output_is_a_502_with_no_ledger_row_and_no_200(
    fleet: tuple[LocalFleet, str, str], tmp_path: Path
) -> None:
    f, _, nan_key = fleet
    with _serve(f, nan_key, "ce_hardening_nan:build", tmp_path / "ledger.sqlite") as nan_app:
        status, out = _infer(nan_app, _png())
        assert status == 502, out
        assert "output is not finite (NaN or infinity)" in out["error"]
        _, _, metrics = _request(nan_app, "GET", "/metrics")
        lines = [ln for ln in metrics.decode().splitlines() if "carbonedge_requests_total{" in ln]
        assert any('code="502"' in ln and ln.endswith(" 1.0") for ln in lines), lines
        assert not any('code="200"' in ln for ln in lines), lines
        _, _, rows = _request(nan_app, "GET", "/v1/ledger")
        assert json.loads(rows)["rows"] == []
        assert nan_app.engine.ledger is not None and nan_app.engine.ledger.rows_written == 0
        assert nan_app.engine.stats().get("completed", 0) == 0


# -- the ledger file, checked before anything starts ------------------------------------------


@pytest.mark.parametrize("where", ["foreign", "under_a_file", "proc"])
def test_serve_refuses_a_bad_ledger_at_once(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    monkeypatch.setenv("CARBONEDGE_DATA_DIR", str(tmp_path / "data"))
    if where == "foreign":
        ledger = tmp_path / "foreign.sqlite"
        with sqlite3.connect(ledger) as db:
            db.execute("CREATE TABLE tasks (a, b)")
        db.close()
    elif where == "under_a_file":
        (tmp_path / "afile").write_text("x")
        ledger = tmp_path / "afile" / "ledger.sqlite"
    else:
        ledger = Path("/proc/carbonedge-ledger.sqlite")
    t0 = time.monotonic()
    code = main(["serve", "--meter", "fake", "--port", "0", "--ledger", str(ledger)])
    elapsed_s = time.monotonic() - t0
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"carbonedge: error: {ledger}"), captured.err
    assert "Traceback" not in captured.err and "starting the fleet" not in captured.out
    assert elapsed_s < 10.0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--header-timeout-s", "nan"], "--header-timeout-s must be a finite number > 0"),
        (["--body-timeout-s", "0"], "--body-timeout-s must be a finite number > 0"),
        (["--max-connections", "0"], "--max-connections must be at least 1"),
        (["--max-decodes", "-1"], "--max-decodes must be at least 1"),
    ],
)
def test_serve_limit_options_are_checked(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--meter", "fake", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
