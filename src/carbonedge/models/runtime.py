"""Inference runtimes behind one small interface: PyTorch eager and ONNX Runtime.

The paper runs PyTorch (Section III.F); ONNX Runtime is offered beside it because it is about
three times faster on one CPU thread for the paper's CNNs (see benchmarks/bench_runtimes.py).
Both take a float32 batch ``(B, 3, 224, 224)``, or a uint8 batch ``(B, 224, 224, 3)`` of 8-bit RGB
crops that they normalise first (``carbonedge.data.preprocess.model_input``: the server sends its
nodes a quarter of the bytes), return float32 logits ``(B, classes)``, and give the same logits
for the same model within 1e-4. Results name the runtime that produced them through
:attr:`Runtime.name`.

torch and onnxruntime are imported only when a runtime of that kind is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from carbonedge.data.preprocess import model_input
from carbonedge.errors import ConfigError, ModelError
from carbonedge.models.onnx_export import DEFAULT_INPUT_SHAPE, export_onnx

if TYPE_CHECKING:
    import torch

RuntimeKind = Literal["torch", "onnx"]
Batch = NDArray[np.float32] | NDArray[np.uint8]
"""A runtime's input: a normalised float batch (B, 3, H, W) or 8-bit RGB crops (B, H, W, 3)."""
RUNTIME_KINDS: tuple[RuntimeKind, ...] = ("torch", "onnx")


@runtime_checkable
class Runtime(Protocol):
    """Runs a model on a batch: float32 ``(B, 3, H, W)`` (or uint8 RGB ``(B, H, W, 3)``, which
    it normalises) -> float32 logits ``(B, classes)``."""

    name: str

    def run(self, batch: Batch) -> NDArray[np.float32]: ...


class TorchRuntime:
    """PyTorch eager execution under ``torch.inference_mode`` on ``threads`` intra-op threads.

    ``torch.set_num_threads`` is process-wide; the runtime sets it when made and again before a
    run if something else changed it.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, *, threads: int = 1) -> None:
        import torch

        self._torch = torch
        self.threads = _check_threads(threads)
        self.model = model.eval()
        torch.set_num_threads(self.threads)

    def run(self, batch: Batch) -> NDArray[np.float32]:
        torch = self._torch
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        array = model_input(batch)  # crops normalised; C-contiguous float32 as it is
        if not array.flags.writeable:
            # torch.from_numpy warns on read-only memory (ImageSet.tensors is read-only), and a
            # model may write its input in place: copy (~0.1 ms for 1x3x224x224).
            array = array.copy()
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(array))
        return np.asarray(logits.numpy(), dtype=np.float32)


class OnnxRuntime:
    """ONNX Runtime CPU execution: ``threads`` intra-op threads, one inter-op thread,
    sequential execution, all graph optimisations on.

    Attributes:
        model_path: the ``.onnx`` file being run (a cache entry or the user's own file).
        exported: True when this runtime exported the model itself (a cache miss).
    """

    name = "onnx"

    def __init__(self, model_path: Path, *, threads: int = 1, exported: bool = False) -> None:
        import onnxruntime as ort

        self.threads = _check_threads(threads)
        self.model_path = model_path
        self.exported = exported
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no optimiser chatter on stderr
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            reason = str(exc).split("\n", 1)[0]
            raise ModelError(f"cannot load ONNX model {model_path}: {reason}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ModelError(f"ONNX model {model_path} must have one input, it has {names}")
        self._input_name: str = inputs[0].name

    def run(self, batch: Batch) -> NDArray[np.float32]:
        outputs = self._session.run(None, {self._input_name: model_input(batch)})
        return np.asarray(outputs[0], dtype=np.float32)


def _check_threads(threads: int) -> int:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads: must be a whole number of at least 1, got {threads!r}")
    return threads


def make_runtime(
    kind: str,
    model: torch.nn.Module | str | Path,
    *,
    threads: int = 1,
    cache_dir: Path | None = None,
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
) -> Runtime:
    """Make a runtime of ``kind`` ("torch" or "onnx") for ``model``.

    Args:
        kind: ``"torch"`` (PyTorch eager) or ``"onnx"`` (ONNX Runtime).
        model: a ``torch.nn.Module``; an ``.onnx`` file (``kind="onnx"`` only, run as is); or
            anything ``carbonedge.models.registry.build_model`` accepts (a paper model name, a
            TorchScript file, ``package.module:callable``), built with seeded random weights.
        threads: intra-op CPU threads.
        cache_dir: where exported ONNX files are cached (default ``$CARBONEDGE_CACHE`` or
            ``~/.cache/carbonedge``).
        input_shape: the example input used for the ONNX export; the batch axis stays dynamic.
    """
    if kind not in RUNTIME_KINDS:
        raise ConfigError(f"runtime: unknown kind {kind!r}; choose one of {list(RUNTIME_KINDS)}")
    if isinstance(model, str | Path) and Path(model).suffix.lower() == ".onnx":
        path = Path(model)
        if kind != "onnx":
            raise ModelError(f"{path} is an ONNX file: run it with the onnx runtime")
        if not path.is_file():
            raise ModelError(f"ONNX model file {path} does not exist")
        return OnnxRuntime(path, threads=threads)
    module = _as_module(model)
    if kind == "torch":
        return TorchRuntime(module, threads=threads)
    onnx_path, exported = export_onnx(module, cache_dir, input_shape)
    return OnnxRuntime(onnx_path, threads=threads, exported=exported)


def _as_module(model: torch.nn.Module | str | Path) -> torch.nn.Module:
    if not isinstance(model, str | Path):
        return model
    from carbonedge.models.registry import build_model

    return build_model(str(model))
