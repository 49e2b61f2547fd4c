"""What an answer's predictions rest on: the weights' source and the class names.

Built once when the server starts (hashing a checkpoint takes tens of milliseconds; the class
file a millisecond), then reused by every answer. The weights' source is worded as
:func:`carbonedge.models.describe_model` words it (``random (seed N)`` or the checkpoint's
path) without building the model, so the server process never imports torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from carbonedge.models import MODEL_NAMES
from carbonedge.models.labels import imagenet_classes

__all__ = ["Provenance", "file_sha256", "model_provenance"]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Provenance:
    """``weights_source``: ``random (seed N)``, a checkpoint path, a model file or a callable;
    ``weights_sha256``: the file's hash where there is a file; ``labels``: class names by index
    (ImageNet-1k), used only for models with exactly that many outputs."""

    weights_source: str
    weights_sha256: str | None
    labels: tuple[str, ...]
    labels_source: str

    def top5(
        self, top: tuple[tuple[int, float], ...], logits: NDArray[np.float32]
    ) -> list[dict[str, Any]]:
        """``top_k``'s (class, probability) pairs as answer entries, with ``label`` when the
        model's output has one class per label."""
        named = np.asarray(logits).shape[-1] == len(self.labels)
        return [
            {"class": c, "probability": p, **({"label": self.labels[c]} if named else {})}
            for c, p in top
        ]

    def fields(self) -> dict[str, Any]:
        """The fields every answer carries."""
        return {
            "weights_source": self.weights_source,
            "weights_sha256": self.weights_sha256,
            "labels_source": self.labels_source,
        }


def model_provenance(model: str, weights: str | None, seed: int) -> Provenance:
    """The provenance of ``model`` with ``weights`` (None: seeded random weights)."""
    classes = imagenet_classes()
    labels, labels_source = classes.labels, f"ImageNet-1k classes from {classes.source}"
    if weights is not None:
        path = Path(weights)
        sha = file_sha256(path) if path.is_file() else None
        return Provenance(str(weights), sha, labels, labels_source)
    if model in MODEL_NAMES:
        return Provenance(f"random (seed {seed})", None, labels, labels_source)
    path = Path(model)
    if path.is_file():  # a TorchScript or ONNX file carries its own weights
        return Provenance(f"model file {model}", file_sha256(path), labels, labels_source)
    return Provenance(f"callable {model} (its own weights)", None, labels, labels_source)
