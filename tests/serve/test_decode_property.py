"""Property tests of the request decoder (``carbonedge.serve.decode.decode_body``): whatever the
bytes, JSON or content type, it returns one float32 (1, 3, 224, 224) array or raises
BadRequest (a 400), never another exception."""

from __future__ import annotations

import base64
import io
import json
import struct
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from carbonedge.serve.decode import decode_body
from carbonedge.serve.errors import BadRequest

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENT_TYPES = st.sampled_from(
    ["image/png", "image/jpeg", "", "application/octet-stream", "application/json",
     "Application/JSON; charset=utf-8", "text/plain"]
)  # fmt: skip


def _image(fmt: str, size: tuple[int, int] = (24, 16), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (40, 120, 200) if mode == "RGB" else 7).save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = [_image("PNG"), _image("JPEG"), _image("GIF", mode="L"), _image("BMP"), _image("TIFF")]


def _check(body: bytes, content_type: str) -> None:
    try:
        out = decode_body(body, content_type)
    except BadRequest as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert out.shape == (1, 224, 224, 3) and out.dtype == np.uint8


@SETTINGS
@given(st.binary(max_size=4096), CONTENT_TYPES)
def test_random_bytes(body: bytes, content_type: str) -> None:
    _check(body, content_type)


@SETTINGS
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_images(seed: bytes, data: st.DataObject) -> None:
    body = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(body)))
    _check(bytes(body[:cut]), "image/png")


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_png_declaring_any_size(width: int, height: int) -> None:
    png = bytearray(SEEDS[0])
    png[16:24] = struct.pack(">II", width, height)  # its CRC no longer matches
    _check(bytes(png), "image/png")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(JSON)
def test_random_json(value: Any) -> None:
    _check(json.dumps(value).encode(), "application/json")
    _check(json.dumps({"image_b64": value}).encode(), "application/json")


@SETTINGS
@given(st.binary(max_size=2048), st.sampled_from(["", "=", "==", "\n", "!", "é"]))
def test_random_base64_payloads(raw: bytes, suffix: str) -> None:
    encoded = base64.b64encode(raw).decode() + suffix
    _check(json.dumps({"image_b64": encoded}).encode(), "application/json")


def test_deep_json_and_huge_numbers_are_400() -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b"1" * 10_000, b'{"image_b64": "\xff"}'):
        _check(body, "application/json")


def test_seed_images_decode() -> None:
    for seed in SEEDS:
        assert decode_body(seed, "image/png").shape == (1, 224, 224, 3)
