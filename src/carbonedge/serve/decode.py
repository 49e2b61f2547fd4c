"""Request bodies -> one image's 224x224 crop (paper IV.A.2), as 8-bit RGB.

A body is either the raw bytes of an image file (any format Pillow reads; ``Content-Type:
image/*`` or anything that is not JSON) or a JSON object ``{"image_b64": "<base64>"}``. The
image goes through ``carbonedge.data.preprocess``, the same transform the rest of CarbonEdge
uses (any PIL mode -> 8-bit RGB, shorter side 256 px, centre crop 224 px), up to the
normalisation: the server hands the engine uint8 ``(1, 224, 224, 3)`` crops, a quarter of the
bytes of the float32 input, and the node that runs a task normalises it
(``carbonedge.data.preprocess.model_input``), so that its CPU time, and its energy, are the
task's.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

import numpy as np
from numpy.typing import NDArray
from PIL import UnidentifiedImageError

from carbonedge.data import MAX_IMAGE_PIXELS, read_pixels
from carbonedge.errors import DataError
from carbonedge.serve.errors import BadRequest

__all__ = ["MAX_IMAGE_PIXELS", "decode_body", "decode_image"]


def decode_image(data: bytes) -> NDArray[np.uint8]:
    """Image file bytes -> uint8 (1, 224, 224, 3); raises BadRequest naming the problem.

    ``carbonedge.data.read_pixels`` checks the size the header declares against the pixel,
    resize and aspect-ratio limits of ``carbonedge.data.preprocess`` before decoding a pixel.
    """
    if not data:
        raise BadRequest("empty body: send the bytes of an image file (PNG, JPEG, ...)")
    try:
        array = read_pixels(io.BytesIO(data), name=f"request body ({len(data)} bytes)")
    except DataError as exc:
        raise BadRequest(_cannot_decode(data, exc.__cause__ or exc)) from exc
    except Exception as exc:  # Pillow's plugins parse untrusted bytes; any failure is a 400
        raise BadRequest(_cannot_decode(data, exc)) from exc
    return array[None]  # (1, 224, 224, 3)


def _cannot_decode(data: bytes, exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):  # its text names a BytesIO at an address
        return f"cannot decode image ({len(data)} bytes): not an image format Pillow reads"
    reason = str(exc).split("\n", 1)[0].strip() or type(exc).__name__
    return f"cannot decode image ({len(data)} bytes): {reason}"


def decode_body(data: bytes, content_type: str) -> NDArray[np.uint8]:
    """A request body -> uint8 (1, 224, 224, 3) (see :func:`decode_image`).

    ``application/json`` bodies must be ``{"image_b64": "<standard base64 of an image file>"}``;
    every other content type is taken as the image file itself.
    """
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return decode_image(data)
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, huge ints, deep nesting
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
