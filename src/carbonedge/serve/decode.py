"""Request bodies -> one preprocessed image (paper IV.A.2: 224x224, ImageNet mean/std).

A body is either the raw bytes of an image file (any format Pillow reads; ``Content-Type:
image/*`` or anything that is not JSON) or a JSON object ``{"image_b64": "<base64>"}``. The
image goes through ``carbonedge.data.preprocess``, the same transform the rest of CarbonEdge
uses (any PIL mode -> 8-bit RGB, shorter side 256 px, centre crop 224 px, normalise).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from carbonedge.data import preprocess
from carbonedge.serve.errors import BadRequest

__all__ = ["MAX_IMAGE_PIXELS", "decode_body", "decode_image"]

# Refuse images above 64 megapixels (decompression bombs) with a 400 rather than running out
# of memory; larger real photographs are rare at the edge.
MAX_IMAGE_PIXELS = 64_000_000


def decode_image(data: bytes) -> NDArray[np.float32]:
    """Image file bytes -> float32 (1, 3, 224, 224); raises BadRequest naming the problem."""
    if not data:
        raise BadRequest("empty body: send the bytes of an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise BadRequest(
                        f"image is {width}x{height} px, more than {MAX_IMAGE_PIXELS} pixels"
                    )
                image.load()
                array = preprocess(image)  # (3, 224, 224)
    except BadRequest:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        reason = str(exc).split("\n", 1)[0].strip() or type(exc).__name__
        raise BadRequest(f"cannot decode image ({len(data)} bytes): {reason}") from exc
    return array[None]  # (1, 3, 224, 224)


def decode_body(data: bytes, content_type: str) -> NDArray[np.float32]:
    """A request body -> float32 (1, 3, 224, 224).

    ``application/json`` bodies must be ``{"image_b64": "<standard base64 of an image file>"}``;
    every other content type is taken as the image file itself.
    """
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return decode_image(data)
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or "image_b64" not in payload:
        raise BadRequest('JSON body must be an object with the field "image_b64"')
    encoded = payload["image_b64"]
    if not isinstance(encoded, str):
        raise BadRequest(f'field "image_b64" must be a base64 string, got {type(encoded).__name__}')
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f'field "image_b64" is not valid base64: {exc}') from exc
    return decode_image(raw)
