"""Image sets for inference: a user's folder or the photographs shipped in scikit-image.

Paper Section IV.A.2 samples 50 ImageNet validation images per experiment. Here a user's folder
(ImageNet val works) is searched recursively, sorted, and sampled with a seed; without a folder
the real photographs bundled in the installed ``scikit-image`` package are used (no download).

Sampling rules (documented in docs/data-and-runtimes.md):

- ``n=None`` takes every image, in a seeded random order.
- A user's folder with fewer images than ``n``: every image is used once, and ``notes`` says so
  (repeating a user's images would silently inflate an experiment with duplicates).
- The bundled photographs with fewer than ``n``: they are repeated, each pass in a new seeded
  order, so each photograph appears ``floor(n/k)`` or ``ceil(n/k)`` times, and ``notes`` says so.
- A file that cannot be decoded raises :class:`DataError` naming it; with ``skip_bad=True`` it
  is recorded in ``skipped`` and the next file of the seeded order takes its place.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from carbonedge.data.preprocess import (
    IMAGE_SIZE_PX,
    check_image_size,
    crop_pixels,
    draft_size,
    normalize_pixels,
)
from carbonedge.errors import ConfigError, DataError

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

MAX_IMAGES: Final = 10_000
"""Most images one :func:`load_images` call returns: 10,000 x (3, 224, 224) float32 is 5.6 GiB.
Ask for fewer with ``n`` (the paper samples 50)."""

# Real photographs of scenes and objects among the files that the scikit-image wheel ships.
# Left out: textures (brick, grass, gravel), microscopy and medical images (cell, ihc,
# microaneurysms, retina), drawings and synthetic images (chessboard, color, logo, horse,
# phantom), documents (page, text), the astronomical hubble_deep_field, and motorcycle_right
# (the stereo twin of motorcycle_left).
SKIMAGE_PHOTOGRAPHS: Final = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "moon.png",
    "motorcycle_left.png",
    "rocket.jpg",
)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Preprocessed images ready for inference.

    Attributes:
        paths: the file behind each row of ``tensors`` (a path repeats when photographs are reused).
        tensors: float32 array (N, 3, 224, 224), ImageNet-normalised, read-only.
        skipped: ``(path, reason)`` for each unreadable file passed over with ``skip_bad=True``.
        source: the folder the images came from, or ``"skimage.data (<folder>)"``.
        notes: sentences about how the sample was drawn (fewer images than asked, repetition).
    """

    paths: tuple[Path, ...]
    tensors: NDArray[np.float32]
    skipped: tuple[tuple[Path, str], ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.paths)


def load_images(
    folder: Path | None, n: int | None, seed: int, *, skip_bad: bool = False
) -> ImageSet:
    """Load, sample and preprocess images (paper IV.A.2: 224x224, ImageNet mean/std).

    Args:
        folder: a folder searched recursively for jpg/jpeg/png/bmp/webp files (any letter case),
            or ``None`` for the photographs bundled with scikit-image.
        n: how many images to return; ``None`` for all.
        seed: seed of the sampling order (``numpy.random.default_rng``).
        skip_bad: pass over unreadable files (reported in ``ImageSet.skipped``) instead of
            raising :class:`DataError`.
    """
    if n is not None and n < 1:
        raise ConfigError(f"n: the number of images must be at least 1, got {n}")
    if n is not None and n > MAX_IMAGES:
        raise ConfigError(f"n: at most {MAX_IMAGES} images per set, got {n}")
    rng = np.random.default_rng(seed)
    if folder is None:
        return _load_skimage(n, rng, skip_bad)
    files = find_images(folder)
    if n is None and len(files) > MAX_IMAGES:
        raise ConfigError(
            f"{folder} holds {len(files)} images, more than {MAX_IMAGES} per set: "
            "choose how many to sample (n, --n)"
        )
    notes: list[str] = []
    if n is not None and n > len(files):
        notes.append(
            f"asked for {n} images but {folder} holds {len(files)}: using all {len(files)}"
        )
    order = [files[i] for i in rng.permutation(len(files))]
    wanted = len(files) if n is None else min(n, len(files))
    paths, arrays, skipped = _decode_until(order, wanted, skip_bad)
    if len(paths) < wanted:
        notes.append(f"only {len(paths)} of {wanted} images could be read")
    return _image_set(paths, arrays, skipped, str(folder), notes)


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, suffix case-insensitive), sorted by path."""
    if not folder.exists():
        raise DataError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"image folder {folder} is not a folder")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"image folder {folder} holds no images ({suffixes})")
    return files


def skimage_photographs() -> list[Path]:
    """The bundled scikit-image photographs present on disk (found without importing skimage)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise DataError("scikit-image is not installed: pass an image folder instead")
    data_dir = Path(spec.origin).parent / "data"
    found = [data_dir / name for name in SKIMAGE_PHOTOGRAPHS if (data_dir / name).is_file()]
    if not found:
        raise DataError(f"no scikit-image photographs found in {data_dir}")
    return found


def _load_skimage(n: int | None, rng: np.random.Generator, skip_bad: bool) -> ImageSet:
    files = skimage_photographs()
    source = f"skimage.data ({files[0].parent})"
    first_pass = [files[i] for i in rng.permutation(len(files))]
    paths, arrays, skipped = _decode_until(first_pass, len(files), skip_bad)
    if not paths:
        raise DataError(f"none of the scikit-image photographs in {files[0].parent} is readable")
    if n is None or n <= len(paths):
        keep = len(paths) if n is None else n
        return _image_set(paths[:keep], arrays[:keep], skipped, source, [])
    # Fewer photographs than asked: repeat them, each pass in a fresh seeded order.
    by_path = dict(zip(paths, arrays, strict=True))
    unique = list(paths)
    while len(paths) < n:
        paths.extend(unique[i] for i in rng.permutation(len(unique)))
    paths = paths[:n]
    note = (
        f"asked for {n} images but scikit-image ships {len(unique)} photographs: "
        f"each is used {n // len(unique)}-{-(-n // len(unique))} times (sampled with replacement)"
    )
    return _image_set(paths, [by_path[p] for p in paths], skipped, source, [note])


def _decode_until(
    order: Sequence[Path], wanted: int, skip_bad: bool
) -> tuple[list[Path], list[NDArray[np.float32]], list[tuple[Path, str]]]:
    """Decode files in ``order`` until ``wanted`` are read; bad ones raise or are skipped."""
    paths: list[Path] = []
    arrays: list[NDArray[np.float32]] = []
    skipped: list[tuple[Path, str]] = []
    for path in order:
        if len(paths) == wanted:
            break
        try:
            arrays.append(read_image(path))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((path, str(exc)))
            continue
        paths.append(path)
    return paths, arrays, skipped


def read_image(source: Path | BinaryIO, name: str | None = None) -> NDArray[np.float32]:
    """Decode one image file and preprocess it to float32 (3, 224, 224) (:func:`read_pixels`,
    then :func:`carbonedge.data.preprocess.normalize_pixels`)."""
    return normalize_pixels(read_pixels(source, name))


def read_pixels(source: Path | BinaryIO, name: str | None = None) -> NDArray[np.uint8]:
    """Decode one image file to its 224x224 centre crop, uint8 (224, 224, 3) RGB: the
    preprocessing of :func:`read_image` up to, not including, the normalisation.

    ``source``: a path or a binary file object (e.g. ``io.BytesIO`` of a request body);
    ``name`` is what errors call it (default: the path). The size the header declares is
    checked against the limits of :func:`carbonedge.data.preprocess.check_image_size` before
    any pixel is decoded. A JPEG at least twice the resized size (shorter side 512 px and up) is
    decoded at a reduced scale (:func:`carbonedge.data.preprocess.draft_size`), and the resize
    still shrinks it at least twice. Every failure is a :class:`DataError` naming the file.
    """
    name = name if name is not None else str(source)
    try:
        with warnings.catch_warnings():
            # Our own limits (check_image_size) are stricter than PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                check_image_size(*image.size)  # header only: nothing decoded yet
                if image.format == "JPEG":  # decode a large photograph at 1/2, 1/4 or 1/8
                    image.draft(None, draft_size(*image.size))
                image.load()
                return crop_pixels(image)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        raise DataError(f"cannot read image {name}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).split("\n", 1)[0].strip()
    return text or type(exc).__name__


def _image_set(
    paths: list[Path],
    arrays: list[NDArray[np.float32]],
    skipped: list[tuple[Path, str]],
    source: str,
    notes: list[str],
) -> ImageSet:
    if not paths:
        raise DataError(f"no readable images in {source}")
    tensors = np.stack(arrays).astype(np.float32, copy=False)  # (N, 3, 224, 224)
    assert tensors.shape[1:] == (3, IMAGE_SIZE_PX, IMAGE_SIZE_PX)
    tensors.setflags(write=False)
    return ImageSet(tuple(paths), tensors, tuple(skipped), source, tuple(notes))
