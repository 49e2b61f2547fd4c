"""``carbonedge models`` and ``carbonedge infer``: list the paper's models, classify images.

Module-level imports stay light (argparse, json, stdlib): torch, onnxruntime and the image
loader are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonedge.cli.checks import MAX_SEED, dumps, integer
from carbonedge.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

TOP_K = 5
MAX_THREADS = 1024
"""Most CPU threads ``infer --threads`` may ask the runtime for."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``models`` and ``infer`` to the ``carbonedge`` parser."""
    models = subparsers.add_parser(
        "models", help="list the paper's models: parameters and MACs at 224x224"
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(handler=run_models)

    infer = subparsers.add_parser(
        "infer", help="classify images with a model: top-5 classes and latency per image"
    )
    infer.add_argument(
        "--model",
        required=True,
        help="a paper model name, a TorchScript or ONNX file, or package.module:callable",
    )
    infer.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder of images, searched recursively (default: scikit-image's photographs)",
    )
    infer.add_argument("--n", type=int, default=None, help="number of images (default: all)")
    infer.add_argument("--seed", type=int, default=0, help="seed of the image sample (default 0)")
    infer.add_argument(
        "--model-seed", type=int, default=0, help="seed of random weights (default 0)"
    )
    infer.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default=None,
        help="torch (eager, the paper's) or onnx (ONNX Runtime); default torch, onnx for .onnx",
    )
    infer.add_argument("--weights", default=None, help="state_dict checkpoint file")
    infer.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    infer.add_argument("--cache-dir", type=Path, default=None, help="ONNX export cache folder")
    infer.add_argument("--json", action="store_true", help="print JSON instead of text")
    infer.add_argument(
        "--skip-bad", action="store_true", help="skip unreadable images and report them"
    )
    infer.set_defaults(handler=run_infer)


def run_models(args: argparse.Namespace) -> int:
    """Print name, parameter count and MACs (one 224x224 image) of each paper model."""
    from carbonedge.models.registry import MODEL_NAMES, describe_model

    infos = [describe_model(name) for name in MODEL_NAMES]
    if args.json:
        rows = [{"name": i.name, "parameters": i.parameters, "macs": i.macs} for i in infos]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<24} {'parameters':>12} {'MACs (224x224)':>16}")
    for info in infos:
        macs = "n/a" if info.macs is None else f"{info.macs / 1e6:,.1f} M"
        print(f"{info.name:<24} {info.parameters:>12,} {macs:>16}")
    return 0


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image and the latency of its batch-1 inference (ms, wall clock)."""

    path: str
    classes: tuple[int, ...]
    probabilities: tuple[float, ...]
    latency_ms: float


def run_infer(args: argparse.Namespace) -> int:
    """Load images, build the model and runtime, run each image at batch 1 and report."""
    from carbonedge.data import load_images
    from carbonedge.data.images import MAX_IMAGES

    if args.threads < 1:
        raise ConfigError(f"--threads: must be at least 1, got {args.threads}")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n: must be at least 1, got {args.n}")
    integer("infer", "--threads", args.threads, minimum=1, maximum=MAX_THREADS)
    integer("infer", "--n", args.n, minimum=1, maximum=MAX_IMAGES)
    integer("infer", "--seed", args.seed, minimum=0, maximum=MAX_SEED)
    integer("infer", "--model-seed", args.model_seed, minimum=0, maximum=MAX_SEED)
    # The model first: a mistyped name is the commonest error and the cheapest to find.
    runtime, runtime_kind, weights_note = _make_runtime(args)
    images = load_images(args.images, args.n, args.seed, skip_bad=args.skip_bad)

    from tqdm import tqdm

    runtime.run(images.tensors[:1])  # warm-up: first-call allocations are not a user's latency
    predictions = []
    for path, tensor in tqdm(
        list(zip(images.paths, images.tensors, strict=True)),
        desc="infer",
        unit="img",
        file=sys.stderr,
        disable=None,
        leave=False,
    ):
        start_ns = time.perf_counter_ns()
        logits = runtime.run(tensor[None])  # (1, classes)
        latency_ms = (time.perf_counter_ns() - start_ns) / 1e6
        classes, probabilities = _top_k(logits[0], TOP_K)
        predictions.append(Prediction(str(path), classes, probabilities, latency_ms))

    latencies = sorted(p.latency_ms for p in predictions)
    summary = {
        "model": args.model,
        "runtime": runtime_kind,
        "threads": args.threads,
        "images": len(predictions),
        "image_source": images.source,
        "median_ms": _percentile(latencies, 50.0),
        "p90_ms": _percentile(latencies, 90.0),
        "weights": weights_note,
    }
    skipped = [{"path": str(p), "reason": r} for p, r in images.skipped]
    if args.json:
        report = {
            "summary": summary,
            "predictions": [asdict(p) for p in predictions],
            "skipped": skipped,
            "notes": list(images.notes),
        }
        print(dumps(report))
        return 0
    _print_text(predictions, summary, skipped, images.notes)
    return 0


def _make_runtime(args: argparse.Namespace) -> tuple[Any, str, str]:
    """Return (runtime, kind, what the weights are) for the ``infer`` arguments."""
    from carbonedge.models.registry import MODEL_NAMES, build_model
    from carbonedge.models.runtime import make_runtime

    is_onnx = args.model.lower().endswith(".onnx")
    kind = args.runtime or ("onnx" if is_onnx else "torch")
    if is_onnx:
        if args.weights is not None:
            raise ConfigError(f"--weights: an ONNX file carries its weights ({args.model})")
        if kind == "onnx" and not Path(args.model).is_file():
            raise ConfigError(f"--model: ONNX file {args.model} does not exist")
        note = f"weights from the ONNX file {args.model}"
        return make_runtime(kind, Path(args.model), threads=args.threads), kind, note
    model = build_model(args.model, weights=args.weights, seed=args.model_seed)
    if args.weights is not None:
        note = f"weights from {args.weights}"
    elif args.model in MODEL_NAMES:
        note = f"random weights (seed {args.model_seed}): predictions are meaningless"
    else:
        note = f"weights as built by {args.model}"
    runtime = make_runtime(kind, model, threads=args.threads, cache_dir=args.cache_dir)
    return runtime, kind, note


def _top_k(logits: NDArray[np.float32], k: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Softmax probabilities of the ``k`` largest logits, highest first."""
    import numpy as np

    shifted = logits.astype(np.float64) - float(logits.max())  # stable softmax
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum()
    top = np.argsort(-probabilities, kind="stable")[:k]
    return tuple(int(i) for i in top), tuple(float(probabilities[i]) for i in top)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _print_text(
    predictions: Sequence[Prediction],
    summary: dict[str, Any],
    skipped: Sequence[dict[str, str]],
    notes: Sequence[str],
) -> None:
    base = os.path.commonpath([p.path for p in predictions]) if predictions else ""
    if predictions and os.path.isfile(base):
        base = os.path.dirname(base)
    for prediction in predictions:
        shown = os.path.relpath(prediction.path, base) if base else prediction.path
        top = "  ".join(
            f"{c}:{p:.3f}"
            for c, p in zip(prediction.classes, prediction.probabilities, strict=True)
        )
        print(f"{shown:<32} {prediction.latency_ms:8.2f} ms  top-5 {top}")
    for item in skipped:
        print(f"skipped {item['path']}: {item['reason']}")
    for note in notes:
        print(f"note: {note}")
    if base:
        print(f"images under {base}")
    print(
        f"{summary['images']} images, {summary['model']} on {summary['runtime']} "
        f"({summary['threads']} thread{'s' if summary['threads'] != 1 else ''}): "
        f"median {summary['median_ms']:.2f} ms, p90 {summary['p90_ms']:.2f} ms per image; "
        f"{summary['weights']}"
    )
