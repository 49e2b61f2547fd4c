"""The names of the 1000 ImageNet-1k classes the paper's three models predict.

The labels ship as package data (``imagenet_classes.txt``, taken from the ``timm`` package's
class files; the file's header names the source and the WordNet 3.0 licence). Callers read them
once (``carbonedge serve`` does at start) and keep the tuple: nothing is cached here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

__all__ = ["IMAGENET_CLASSES", "ImageNetClasses", "imagenet_classes"]

#: Number of ImageNet-1k classes (the models' output width).
IMAGENET_CLASSES = 1000
_FILE = "imagenet_classes.txt"


@dataclass(frozen=True)
class ImageNetClasses:
    """``labels[i]``: the lemmas of class ``i`` (e.g. ``"tabby, tabby cat"`` for 281);
    ``synsets[i]``: its WordNet synset id (``"n02123045"``); ``source``: where they came from."""

    labels: tuple[str, ...]
    synsets: tuple[str, ...]
    source: str


def imagenet_classes() -> ImageNetClasses:
    """Read the shipped class file (about 30 kB, a millisecond)."""
    text = resources.files("carbonedge.models").joinpath(_FILE).read_text(encoding="utf-8")
    synsets, labels = [], []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        synset, _, label = line.partition("\t")
        synsets.append(synset)
        labels.append(label)
    if len(labels) != IMAGENET_CLASSES:  # a packaging error, not a user error
        raise RuntimeError(f"{_FILE}: expected {IMAGENET_CLASSES} classes, found {len(labels)}")
    return ImageNetClasses(tuple(labels), tuple(synsets), "timm 1.0.31 class files (WordNet 3.0)")
