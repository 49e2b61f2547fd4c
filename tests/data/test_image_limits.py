"""Image size limits: a tiny file declaring a huge or very thin image is refused from its header,
before any pixel is decoded or resized."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from carbonedge.data import (
    MAX_ASPECT_RATIO,
    MAX_IMAGE_PIXELS,
    MAX_RESIZED_PIXELS,
    ImageTooLargeError,
    check_image_size,
    load_images,
    preprocess,
    read_image,
)
from carbonedge.errors import ConfigError, DataError


def _png(width: int, height: int) -> bytes:
    """A real, tiny PNG of width x height black pixels (rows compress to almost nothing)."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims width x height (what a decompression bomb declares)."""
    data = bytearray(_png(1, 1))
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode pixels fails the test."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_thin_png_of_a_few_bytes_is_refused_before_decoding(
    tmp_path: Path, no_decoding: None
) -> None:
    data = _png(20000, 1)
    assert len(data) < 200  # the 141-byte PNG
    path = tmp_path / "thin.png"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"thin\.png: image is 20000x1 px: resizing") as info:
        read_image(path)
    assert "5,120,000x256" in str(info.value)


def test_declared_pixel_budget_is_checked_before_decoding(
    tmp_path: Path, no_decoding: None
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(10000, 10000))  # above ours, below PIL's own limit
    with pytest.raises(DataError, match=f"more than {MAX_IMAGE_PIXELS:,} pixels to decode"):
        read_image(path)


def test_request_bodies_use_the_same_checks(no_decoding: None) -> None:
    with pytest.raises(DataError, match=r"cannot read image request body: image is 20000x1"):
        read_image(io.BytesIO(_png(20000, 1)), name="request body")


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((20000, 1), "would make 5,120,000x256 px"),
        ((1, 20000), "would make 5,120,000x256 px"),
        ((8001, 8001), "pixels to decode"),
        ((330, 10), "aspect ratio 33:1"),
        ((10, 330), "aspect ratio 33:1"),
    ],
)
def test_check_image_size_limits(size: tuple[int, int], message: str) -> None:
    with pytest.raises(ImageTooLargeError, match=message):
        check_image_size(*size)


@pytest.mark.parametrize("size", [(1, 1), (224, 224), (320, 10), (4000, 3000), (8000, 8000)])
def test_ordinary_sizes_pass(size: tuple[int, int]) -> None:
    check_image_size(*size)


def test_limits_are_consistent() -> None:
    assert 256 * int(256 * MAX_ASPECT_RATIO) <= MAX_RESIZED_PIXELS
    assert issubclass(ImageTooLargeError, DataError) and issubclass(ImageTooLargeError, ValueError)


def test_preprocess_itself_refuses_thin_images() -> None:
    # serve.decode calls preprocess() after image.load(): the resize must still be guarded.
    with pytest.raises(ImageTooLargeError, match="20000x1"):
        preprocess(Image.new("RGB", (20000, 1)))


def test_thin_image_is_skipped_with_skip_bad(tmp_path: Path) -> None:
    (tmp_path / "thin.png").write_bytes(_png(20000, 1))
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.png")
    images = load_images(tmp_path, None, seed=0, skip_bad=True)
    assert len(images) == 1 and "20000x1" in images.skipped[0][1]


def test_too_many_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at most 10000 images"):
        load_images(None, 10_001, seed=0)
