"""Image preprocessing as the paper describes it (Section IV.A.2).

The paper says only "preprocessed to 224x224 pixels with standard normalization
(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])". We read "standard" as the
torchvision ImageNet evaluation transform that the three models' reference checkpoints were
scored with: resize the shorter side to 256 px (bilinear, antialiased), centre-crop 224x224,
scale to [0, 1], subtract the mean and divide by the standard deviation per channel.

Any PIL mode is turned into 8-bit RGB first (:func:`to_rgb`): transparency is composited onto
white, 16-bit and 32-bit greyscale is rescaled rather than clipped, CMYK and palettes go through
PIL's own conversion. Nothing here imports torch: the output is a float32 numpy array.

Size limits (docs/security.md): an image file is small but its pixels may not be. A 141-byte PNG
can declare 20000x1 pixels, and resizing its shorter side to 256 px would make it
5,120,000x256 (3.9 GB as RGB). :func:`check_image_size` refuses such an image from its header
alone (``Image.open`` reads the header without decoding), before any decoding or resizing:
:data:`MAX_IMAGE_PIXELS` decoded pixels, :data:`MAX_RESIZED_PIXELS` after the resize and
:data:`MAX_ASPECT_RATIO`. :func:`preprocess` checks them too, so every caller is covered.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from carbonedge.errors import DataError

IMAGE_SIZE_PX: Final = 224
RESIZE_SHORTER_SIDE_PX: Final = 256
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)

MAX_IMAGE_PIXELS: Final = 64_000_000
"""Most pixels (width x height) an image may have to be decoded: 64 megapixels, 192 MiB as
8-bit RGB. Larger than any phone photograph; far below what a decompression bomb declares."""

MAX_RESIZED_PIXELS: Final = RESIZE_SHORTER_SIDE_PX * RESIZE_SHORTER_SIDE_PX * 64
"""Most pixels an image may have after its shorter side is resized to 256 px (4,194,304:
12 MiB as RGB). Bounds the resize of long, thin images that decode cheaply."""

MAX_ASPECT_RATIO: Final = 32.0
"""Largest ratio of an image's longer side to its shorter side. The centre crop keeps a
224x224 square, so a thinner image would be almost entirely thrown away."""

_WHITE: Final = (255, 255, 255)
# Modes whose samples are wider than 8 bits; PIL's own conversion to "L" clips them at 255.
_WIDE_GREY_MODES: Final = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


class ImageTooLargeError(DataError, ValueError):
    """An image's declared size is outside the limits (a ValueError too, so that callers that
    treat any undecodable image as a ValueError report it the same way)."""


def check_image_size(width: int, height: int) -> None:
    """Refuse a ``width`` x ``height`` px image beyond :data:`MAX_IMAGE_PIXELS`,
    :data:`MAX_RESIZED_PIXELS` (after the shorter side becomes 256 px) or
    :data:`MAX_ASPECT_RATIO`, with an :class:`ImageTooLargeError`. Call it on the size that
    ``Image.open`` reads from the header, before ``image.load()`` decodes the pixels."""
    short, long = min(width, height), max(width, height)
    if short < 1:
        raise ImageTooLargeError(f"image is {width}x{height} px: it has no pixels")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} px, more than {MAX_IMAGE_PIXELS:,} pixels to decode"
        )
    resized_long = RESIZE_SHORTER_SIDE_PX * long // short
    if resized_long * RESIZE_SHORTER_SIDE_PX > MAX_RESIZED_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} px: resizing its shorter side to "
            f"{RESIZE_SHORTER_SIDE_PX} px would make {resized_long:,}x{RESIZE_SHORTER_SIDE_PX} "
            f"px, more than {MAX_RESIZED_PIXELS:,} pixels"
        )
    if long / short > MAX_ASPECT_RATIO:
        raise ImageTooLargeError(
            f"image is {width}x{height} px: aspect ratio {long / short:.3g}:1 is above "
            f"{MAX_ASPECT_RATIO:g}:1"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit RGB, whatever its mode (L, LA, RGBA, CMYK, P, 1, I;16, I, F...).

    EXIF orientation is applied first, so that a phone photograph is upright. Alpha is
    composited onto white (not dropped, which would expose whatever colour hides under
    transparent pixels). Raises ``ValueError`` for a mode PIL cannot convert.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_GREY_MODES:
        image = _wide_grey_to_l(image)
    if image.mode == "P":
        has_alpha = "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    """Rescale a 16/32-bit or float greyscale image to 8 bits (PIL would clip at 255)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        full_scale = 65535.0
    else:
        top = float(values.max()) if values.size else 0.0
        # 32-bit "I" is how PIL opens 16-bit PNGs; treat values up to 255 as already 8-bit.
        full_scale = 255.0 if top <= 255.0 else (65535.0 if top <= 65535.0 else top)
    scaled = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def resize_and_crop(image: Image.Image) -> Image.Image:
    """Resize the shorter side to 256 px (bilinear, antialiased) and centre-crop 224x224 px."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    long_px = int(RESIZE_SHORTER_SIDE_PX * long / short)
    size = (
        (RESIZE_SHORTER_SIDE_PX, long_px) if width <= height else (long_px, RESIZE_SHORTER_SIDE_PX)
    )
    image = image.resize(size, Image.Resampling.BILINEAR)
    left = round((size[0] - IMAGE_SIZE_PX) / 2.0)
    top = round((size[1] - IMAGE_SIZE_PX) / 2.0)
    return image.crop((left, top, left + IMAGE_SIZE_PX, top + IMAGE_SIZE_PX))


def normalize(image: Image.Image) -> NDArray[np.float32]:
    """RGB image -> float32 array (3, H, W): ``(pixel / 255 - mean) / std`` per channel."""
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)  # (H, W, 3)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    chw = ((pixels - mean) / std).transpose(2, 0, 1)  # (3, H, W)
    return np.ascontiguousarray(chw, dtype=np.float32)


def preprocess(image: Image.Image) -> NDArray[np.float32]:
    """Any PIL image -> float32 (3, 224, 224), ImageNet-normalised (paper IV.A.2).

    Raises :class:`ImageTooLargeError` (before converting or resizing) for an image outside the
    size limits; to refuse one before it is decoded, see :func:`carbonedge.data.read_image`.
    """
    check_image_size(*image.size)
    return normalize(resize_and_crop(to_rgb(image)))
