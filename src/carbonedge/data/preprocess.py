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

from typing import Final, cast

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
_EXIF_ORIENTATION: Final = 0x0112
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
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # exif_transpose always copies
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


def resized_size(width: int, height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` px image has after its shorter side becomes 256 px
    (the longer side truncated to whole pixels, as torchvision's ``Resize(256)`` does)."""
    if width <= height:
        return RESIZE_SHORTER_SIDE_PX, int(RESIZE_SHORTER_SIDE_PX * height / width)
    return int(RESIZE_SHORTER_SIDE_PX * width / height), RESIZE_SHORTER_SIDE_PX


def resize_and_crop(image: Image.Image) -> Image.Image:
    """Resize the shorter side to 256 px (bilinear, antialiased) and centre-crop 224x224 px.

    Done in one resampling pass: the crop's square, mapped back to source coordinates, is
    resampled straight to 224x224 (``Image.resize(box=...)``). Every output pixel has the same
    centre and filter width as in resize-then-crop, and the filter still reads source pixels
    outside the box, so the result equals resize-then-crop up to rounding (at most 1 of 255,
    tests/data/test_images.py); it skips resampling the ~30% of the image the crop throws away.
    """
    width, height = image.size
    size = resized_size(width, height)
    left = round((size[0] - IMAGE_SIZE_PX) / 2.0)
    top = round((size[1] - IMAGE_SIZE_PX) / 2.0)
    sx, sy = width / size[0], height / size[1]  # source px per resized px
    box = (left * sx, top * sy, (left + IMAGE_SIZE_PX) * sx, (top + IMAGE_SIZE_PX) * sy)
    return image.resize((IMAGE_SIZE_PX, IMAGE_SIZE_PX), Image.Resampling.BILINEAR, box=box)


def draft_size(width: int, height: int) -> tuple[int, int]:
    """The smallest size a JPEG may be decoded at (``Image.draft``: libjpeg scales by 1/2, 1/4
    or 1/8 while decoding) for :func:`resize_and_crop` to still shrink it at least twice, so
    that the antialiasing filter, not the decoder's scaling, sets the output's quality."""
    w, h = resized_size(width, height)
    return 2 * w, 2 * h


_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)
_SCALE = (1.0 / (255.0 * _STD)).astype(np.float32)  # (pixel / 255 - mean) / std
_BIAS = (-_MEAN / _STD).astype(np.float32)  #  = pixel * _SCALE + _BIAS


def normalize_pixels(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """8-bit RGB pixels ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)``: ``(pixel / 255 -
    mean) / std`` per channel, computed as ``pixel * scale + bias`` straight into the
    channel-first output (one image or a batch)."""
    if pixels.dtype != np.uint8 or pixels.ndim < 3 or pixels.shape[-1] != 3:
        raise DataError(
            f"pixels must be uint8 (..., H, W, 3) RGB, got {pixels.dtype} {pixels.shape}"
        )
    lead, (h, w) = pixels.shape[:-3], pixels.shape[-3:-1]
    out = np.empty((*lead, 3, h, w), dtype=np.float32)
    for c in range(3):
        channel = out[..., c, :, :]
        np.multiply(pixels[..., c], _SCALE[c], out=channel, casting="unsafe")
        channel += _BIAS[c]
    return out


def model_input(batch: NDArray[np.generic]) -> NDArray[np.float32]:
    """What a runtime feeds its model: a uint8 batch ``(B, H, W, 3)`` is 8-bit RGB crops
    (what ``carbonedge serve`` sends its nodes: a quarter of the bytes of float32) and is
    normalised here, on the node that runs it; anything else is taken as an already
    normalised float batch ``(B, 3, H, W)`` (no copy when it is C-contiguous float32)."""
    if batch.dtype == np.uint8:
        return normalize_pixels(cast("NDArray[np.uint8]", batch))
    return np.ascontiguousarray(batch, dtype=np.float32)


def crop_pixels(image: Image.Image) -> NDArray[np.uint8]:
    """Any PIL image -> uint8 (224, 224, 3) RGB: the transform of :func:`preprocess` without
    the normalisation (checks the size limits first, like it)."""
    check_image_size(*image.size)
    return np.asarray(resize_and_crop(to_rgb(image)))


def preprocess(image: Image.Image) -> NDArray[np.float32]:
    """Any PIL image -> float32 (3, 224, 224), ImageNet-normalised (paper IV.A.2).

    Raises :class:`ImageTooLargeError` (before converting or resizing) for an image outside the
    size limits; to refuse one before it is decoded, see :func:`carbonedge.data.read_image`.
    """
    return normalize_pixels(crop_pixels(image))
