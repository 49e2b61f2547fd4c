"""Image loading, sampling and preprocessing with real files written into tmp_path."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carbonedge.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SKIMAGE_PHOTOGRAPHS,
    find_images,
    load_images,
    model_input,
    normalize_pixels,
    preprocess,
    read_image,
    read_pixels,
    skimage_photographs,
    to_rgb,
)
from carbonedge.errors import ConfigError, DataError

MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
STD = np.asarray(IMAGENET_STD, dtype=np.float32)


def _normalised(rgb: tuple[int, int, int]) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float32) / 255.0 - MEAN) / STD


def _centre_pixel(tensor: np.ndarray) -> np.ndarray:
    return tensor[:, 112, 112]


def _write_every_mode(folder: Path) -> dict[str, Path]:
    """One file per PIL mode and suffix; solid colours so that the expected RGB is known."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nested" / "deeper").mkdir(parents=True)
    files: dict[str, Path] = {}

    def save(key: str, image: Image.Image, name: str) -> None:
        files[key] = folder / name
        image.save(files[key])

    save("rgb_jpg", Image.new("RGB", (300, 200), (200, 30, 40)), "rgb.jpg")
    save("rgb_upper", Image.new("RGB", (240, 240), (0, 0, 255)), "nested/UPPER.JPEG")
    save("l_png", Image.new("L", (256, 300), 128), "nested/grey.png")
    save("la_png", Image.new("LA", (256, 256), (0, 0)), "nested/deeper/la.png")
    save("rgba_png", Image.new("RGBA", (256, 256), (10, 20, 30, 0)), "rgba.png")
    save("cmyk_jpg", Image.new("CMYK", (256, 256), (0, 255, 255, 0)), "cmyk.jpg")
    palette = Image.new("P", (256, 256), 0)
    palette.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    save("p_png", palette, "palette.png")
    save("bilevel_bmp", Image.new("1", (256, 256), 1), "bilevel.bmp")
    save("i16_png", Image.fromarray(np.full((256, 256), 65535, dtype=np.uint16)), "wide.png")
    save("rgb_webp", Image.new("RGB", (256, 256), (255, 255, 0)), "nested/pic.WebP")
    (folder / "notes.txt").write_text("not an image")
    return files


def test_every_mode_becomes_normalised_rgb(tmp_path: Path) -> None:
    files = _write_every_mode(tmp_path / "imgs")
    expected_rgb = {
        "l_png": (128, 128, 128),
        "la_png": (255, 255, 255),  # fully transparent: composited onto white
        "rgba_png": (255, 255, 255),
        "p_png": (0, 255, 0),
        "bilevel_bmp": (255, 255, 255),
        "i16_png": (255, 255, 255),  # 16-bit full scale is rescaled, not clipped or wrapped
        "rgb_webp": (255, 255, 0),
    }
    images = load_images(tmp_path / "imgs", None, seed=0)
    assert images.tensors.shape == (len(files), 3, 224, 224)
    assert images.tensors.dtype == np.float32
    by_path = dict(zip(images.paths, images.tensors, strict=True))
    assert set(by_path) == set(files.values())
    for key, rgb in expected_rgb.items():
        np.testing.assert_allclose(_centre_pixel(by_path[files[key]]), _normalised(rgb), atol=1e-5)
    # Lossy formats: close to the colour written.
    np.testing.assert_allclose(
        _centre_pixel(by_path[files["rgb_jpg"]]), _normalised((200, 30, 40)), atol=0.1
    )
    np.testing.assert_allclose(
        _centre_pixel(by_path[files["rgb_upper"]]), _normalised((0, 0, 255)), atol=0.1
    )
    cmyk_red = _centre_pixel(by_path[files["cmyk_jpg"]])
    np.testing.assert_allclose(cmyk_red, _normalised((255, 0, 0)), atol=0.1)


def test_to_rgb_rescales_float_and_32_bit_grey() -> None:
    as_float = Image.fromarray(np.full((8, 8), 1000.0, dtype=np.float32))
    assert as_float.mode == "F"
    assert to_rgb(as_float).getpixel((0, 0)) == (4, 4, 4)  # 1000 / 65535 * 255
    eight_bit_in_i = Image.fromarray(np.full((8, 8), 200, dtype=np.int32))
    assert eight_bit_in_i.mode == "I"
    assert to_rgb(eight_bit_in_i).getpixel((0, 0)) == (200, 200, 200)


def test_resize_shorter_side_then_centre_crop() -> None:
    # A wide image whose outer quarters are black: after resizing the shorter side to 256 and
    # cropping the centre 224, only the white middle remains.
    pixels = np.zeros((100, 400, 3), dtype=np.uint8)
    pixels[:, 100:300] = 255
    tensor = preprocess(Image.fromarray(pixels))
    assert tensor.shape == (3, 224, 224)
    np.testing.assert_allclose(
        tensor,
        np.broadcast_to(_normalised((255, 255, 255))[:, None, None], (3, 224, 224)),
        atol=1e-5,
    )
    # A tall image keeps its aspect ratio too: a 100x400 (w x h) image becomes 256x1024.
    tall = np.zeros((400, 100, 3), dtype=np.uint8)
    tall[:195] = 255  # the centre row (200) is black, the crop's top rows are white
    tensor = preprocess(Image.fromarray(tall))
    assert tensor[0, 0, 0] > 2.0 and tensor[0, 223, 0] < -2.0


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "good.png")
    bad = tmp_path / "sub" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    truncated = tmp_path / "truncated.png"
    full = tmp_path / "full.png"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(full)
    truncated.write_bytes(full.read_bytes()[:60])
    with pytest.raises(DataError, match=r"broken\.jpg|truncated\.png"):
        load_images(tmp_path, None, seed=0)
    for path in (bad, truncated):
        with pytest.raises(DataError, match=re.escape(f"cannot read image {path}")):
            read_image(path)


def test_skip_bad_reports_and_replaces(tmp_path: Path) -> None:
    for i in range(4):
        Image.new("RGB", (64, 64), (i, i, i)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    images = load_images(tmp_path, None, seed=3, skip_bad=True)
    assert len(images) == 4
    assert [p.name for p, _ in images.skipped] == ["bad.png"]
    assert "bad.png" in images.skipped[0][1]
    # Asking for 4 of the 5 files: whichever seeded order, 4 good images come back.
    for seed in range(6):
        sample = load_images(tmp_path, 4, seed=seed, skip_bad=True)
        assert len(sample) == 4 and all(p.name.startswith("ok") for p in sample.paths)


def test_empty_missing_and_imageless_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no images"):
        load_images(tmp_path, None, seed=0)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        find_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "nope", 3, seed=0)
    with pytest.raises(DataError, match="not a folder"):
        load_images(tmp_path / "readme.txt", 3, seed=0)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="no readable images"):
        load_images(only_bad, None, seed=0, skip_bad=True)


def test_n_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n: "):
        load_images(tmp_path, 0, seed=0)


def test_sampling_is_seeded_and_n_above_available_uses_all(tmp_path: Path) -> None:
    for i in range(12):
        Image.new("RGB", (32, 32), (i * 20, 0, 0)).save(tmp_path / f"img{i:02}.png")
    first = load_images(tmp_path, 5, seed=7)
    again = load_images(tmp_path, 5, seed=7)
    other = load_images(tmp_path, 5, seed=8)
    assert first.paths == again.paths
    np.testing.assert_array_equal(first.tensors, again.tensors)
    assert first.paths != other.paths
    assert len(set(first.paths)) == 5
    everything = load_images(tmp_path, 50, seed=7)
    assert sorted(everything.paths) == find_images(tmp_path)
    assert any("asked for 50" in note and "using all 12" in note for note in everything.notes)
    assert not first.notes


def test_tensors_are_read_only(tmp_path: Path) -> None:
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    images = load_images(tmp_path, 1, seed=0)
    with pytest.raises(ValueError):
        images.tensors[0, 0, 0, 0] = 1.0


def test_skimage_photographs_default_set() -> None:
    photos = skimage_photographs()
    assert {p.name for p in photos} <= set(SKIMAGE_PHOTOGRAPHS)
    assert len(photos) >= 5  # the wheel ships at least astronaut, camera, chelsea, coffee, rocket
    images = load_images(None, None, seed=0)
    assert sorted(images.paths) == sorted(photos)
    assert images.source.startswith("skimage.data")
    assert not images.notes
    # Real photographs: varied content, roughly ImageNet-like statistics after normalisation.
    assert float(images.tensors.std()) > 0.5
    assert len({float(t.mean()) for t in images.tensors}) == len(photos)


def test_skimage_with_more_than_available_repeats_evenly() -> None:
    k = len(skimage_photographs())
    images = load_images(None, 50, seed=1)
    assert len(images) == 50
    counts = Counter(images.paths)
    assert len(counts) == k
    assert set(counts.values()) <= {50 // k, -(-50 // k)}
    assert images.notes and "with replacement" in images.notes[0]
    assert load_images(None, 50, seed=1).paths == images.paths
    same_photo = [i for i, p in enumerate(images.paths) if p == images.paths[0]]
    np.testing.assert_array_equal(images.tensors[same_photo[0]], images.tensors[same_photo[1]])


def test_importing_data_does_not_import_torch() -> None:
    code = (
        "import sys; from carbonedge.data import load_images; load_images(None, 2, 0); "
        "print('torch' in sys.modules, 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _resize_then_crop(image: Image.Image) -> np.ndarray:
    """The reference transform step by step (torchvision's Resize(256) + CenterCrop(224) on a
    PIL image): resize the whole image, crop, scale, normalise."""
    w, h = image.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    left, top = round((size[0] - 224) / 2.0), round((size[1] - 224) / 2.0)
    crop = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return ((crop / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def _in_pixel_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| of two normalised tensors in 8-bit levels (1 = one step of 255)."""
    return np.abs(a - b) * STD[:, None, None] * 255.0


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (301, 1000), (224, 224), (997, 256)])
def test_one_pass_resize_matches_resize_then_crop(size: tuple[int, int]) -> None:
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize(size, Image.Resampling.BICUBIC)
    levels = _in_pixel_levels(preprocess(image), _resize_then_crop(image))
    assert levels.max() <= 1.0 + 1e-3  # rounding of the 8-bit intermediate only
    assert levels.mean() < 0.05


def test_large_jpeg_is_decoded_reduced_and_still_matches(tmp_path: Path) -> None:
    from skimage import data

    path = tmp_path / "big.jpg"
    Image.fromarray(data.astronaut()).resize((3000, 2000)).save(path, quality=92)
    with Image.open(path) as full:
        full.load()
        reference = _resize_then_crop(full)
    levels = _in_pixel_levels(read_image(path), reference)
    assert 0.0 < levels.mean() < 1.0  # decoded at 1/2 scale: close to, not equal to, full
    assert levels.max() <= 8.0


def test_exif_orientation_is_applied() -> None:
    pixels = np.zeros((200, 300, 3), dtype=np.uint8)
    pixels[:, :150] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: the white half ends up on the right
    data = io.BytesIO()
    image.save(data, format="JPEG", exif=exif.tobytes())
    tensor = read_image(io.BytesIO(data.getvalue()))
    assert tensor[0, 112, 10] < -1.5 and tensor[0, 112, 213] > 2.0
    upright = read_image(io.BytesIO(_jpeg_bytes(image)))
    assert upright[0, 112, 10] > 2.0 and upright[0, 112, 213] < -1.5


def _jpeg_bytes(image: Image.Image) -> bytes:
    data = io.BytesIO()
    image.save(data, format="JPEG")
    return data.getvalue()


def test_normalize_pixels_and_model_input() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    batch = normalize_pixels(pixels)
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == np.float32
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float64)[:, None, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float64)[:, None, None]
    for i in range(3):  # the textbook formula, per image
        expected = (pixels[i].transpose(2, 0, 1) / 255.0 - mean) / std
        np.testing.assert_allclose(batch[i], expected, atol=1e-5)
    np.testing.assert_array_equal(model_input(pixels), batch)
    assert model_input(batch) is batch  # float32, C-contiguous: no copy
    np.testing.assert_array_equal(model_input(batch.astype(np.float64)), batch)
    with pytest.raises(DataError, match="uint8"):
        normalize_pixels(pixels.astype(np.uint16))
    with pytest.raises(DataError, match=r"\(224, 3, 224\)"):
        normalize_pixels(pixels[0].transpose(1, 2, 0).copy())


def test_read_pixels_is_read_image_before_normalising(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(
        np.random.default_rng(2).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    ).save(path, quality=90)
    pixels = read_pixels(path)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(normalize_pixels(pixels), read_image(path))
