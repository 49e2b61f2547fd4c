"""Export a PyTorch model to ONNX once, cached on disk by a key over its structure and weights.

The ONNX Runtime backend (see :mod:`carbonedge.models.runtime`) runs an exported graph. The
export (legacy TorchScript exporter, ``dynamo=False``, opset 17, dynamic batch axis) takes
seconds for the paper's CNNs, so its result is kept under a cache folder and found again by a
SHA-256 key that covers:

- the class of every sub-module and the model's printed structure (layer hyper-parameters),
- the source file of every sub-module class that is not part of torch (so editing ``forward``
  invalidates the cache),
- every parameter and buffer: name, dtype, shape and raw bytes (so new weights do too),
- the input shape, the opset and the torch version.

Files are written atomically (temporary file in the same folder, then ``os.replace``), so a
reader never sees half a model and two processes exporting at once both end with a whole file.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import warnings
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Final

from carbonedge.errors import ModelError

if TYPE_CHECKING:
    import torch

OPSET_VERSION: Final = 17
DEFAULT_INPUT_SHAPE: Final = (1, 3, 224, 224)
INPUT_NAME: Final = "input"
OUTPUT_NAME: Final = "logits"
CACHE_ENV: Final = "CARBONEDGE_CACHE"


def default_cache_dir() -> Path:
    """``$CARBONEDGE_CACHE`` if set, else ``~/.cache/carbonedge``; ONNX files go in ``onnx/``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "carbonedge"


def model_key(model: torch.nn.Module, input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE) -> str:
    """SHA-256 hex digest over the model's structure, code, weights and export settings."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"torch={torch.__version__};opset={OPSET_VERSION};shape={input_shape}".encode())
    digest.update(repr(model).encode())
    classes = sorted({type(m) for m in model.modules()}, key=lambda c: (c.__module__, c.__name__))
    for cls in classes:
        digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        if not cls.__module__.startswith("torch."):
            digest.update(_source_bytes(cls))
    named = chain(model.named_parameters(), model.named_buffers())
    for name, tensor in named:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _source_bytes(cls: type) -> bytes:
    try:
        source_file = inspect.getsourcefile(cls)
    except TypeError:
        return b""
    if source_file is None or not Path(source_file).is_file():
        return b""
    return Path(source_file).read_bytes()


def export_onnx(
    model: torch.nn.Module,
    cache_dir: Path | None = None,
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
) -> tuple[Path, bool]:
    """Return ``(path, exported_now)`` of the ONNX file for ``model``, exporting on a cache miss.

    The batch axis (dim 0) of input and output is dynamic; other dimensions follow
    ``input_shape``. ``cache_dir`` defaults to :func:`default_cache_dir`.
    """
    import torch

    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "onnx"
    key = model_key(model, input_shape)
    target = folder / f"{type(model).__name__.lower()}-{key[:24]}.onnx"
    if target.is_file():
        return target, False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the ONNX cache folder {folder}: {exc}") from exc
    was_training = model.training
    model.eval()
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript;
            # its deprecation and tracer notices are expected here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(input_shape),),
                tmp_name,
                dynamo=False,
                opset_version=OPSET_VERSION,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        os.replace(tmp_name, target)
    except Exception as exc:  # the exporter raises many types for unsupported models
        Path(tmp_name).unlink(missing_ok=True)
        raise ModelError(f"cannot export {type(model).__name__} to ONNX: {exc}") from exc
    finally:
        model.train(was_training)
    return target, True
