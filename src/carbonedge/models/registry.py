"""Model registry: the paper's three CNNs (Section IV.A.3) and users' own models.

``build_model(name, weights=None, seed=0)`` returns a ``torch.nn.Module`` in eval mode, where
``name`` is

- one of :data:`MODEL_NAMES` (our plain-PyTorch MobileNetV2, EfficientNet-B0 and MobileNetV4
  conv-small). Without ``weights`` the parameters are random, drawn from ``torch.manual_seed(seed)``
  inside a forked RNG scope (the caller's global RNG is untouched); with ``weights`` a state_dict
  file saved from torchvision/timm (or from us) is loaded with ``strict=True``;
- a TorchScript file (``torch.jit.save``), opened with ``torch.jit.load``;
- ``package.module:callable``: imported and called without arguments; it must return an
  ``nn.Module`` (``weights`` may then name a state_dict for it).

An ONNX file is not a torch module: it is run by the ONNX Runtime runtime
(``carbonedge.models.runtime``), and ``build_model`` says so.

torch is imported inside the functions so that ``import carbonedge.models`` stays light.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonedge.errors import ModelError

if TYPE_CHECKING:
    import torch

MODEL_NAMES: tuple[str, ...] = ("mobilenet_v2", "efficientnet_b0", "mobilenetv4_conv_small")

# name -> (module under carbonedge.models, factory function); imported on demand.
_FACTORIES: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("carbonedge.models.mobilenet_v2", "mobilenet_v2"),
    "efficientnet_b0": ("carbonedge.models.efficientnet", "efficientnet_b0"),
    "mobilenetv4_conv_small": ("carbonedge.models.mobilenetv4", "mobilenetv4_conv_small"),
}

_CALLABLE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
_PREVIEW = 5  # how many offending keys an error message lists


@dataclass(frozen=True)
class ModelInfo:
    """What ``carbonedge models`` prints about a model.

    Attributes:
        name: the name or path the model was built from.
        parameters: number of parameters (elements of all ``nn.Parameter`` tensors).
        macs: multiply-accumulates for one 224x224 RGB image (see :func:`count_macs`);
            ``None`` for TorchScript models, whose submodules cannot be hooked.
        weights_source: ``"random (seed N)"``, the checkpoint path, or the model file itself.
    """

    name: str
    parameters: int
    macs: int | None
    weights_source: str


def build_model(name: str, weights: str | Path | None = None, seed: int = 0) -> torch.nn.Module:
    """Build a model in eval mode (see the module docstring for what ``name`` may be).

    Raises:
        ModelError: unknown name, unreadable file, ONNX file, or a checkpoint whose keys or
            shapes do not match the model (the message names the file and the first bad keys).
    """
    import torch

    if name in _FACTORIES:
        module_name, factory_name = _FACTORIES[name]
        factory = getattr(importlib.import_module(module_name), factory_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model: torch.nn.Module = factory()
    elif _CALLABLE_RE.match(name) and not Path(name).exists():
        model = _build_from_callable(name)
    elif name.lower().endswith(".onnx"):
        raise ModelError(
            f"{name}: an ONNX file is not a PyTorch module; run it with the onnx runtime "
            "(carbonedge.models.runtime.make_runtime('onnx', ...) or --runtime onnx)"
        )
    elif Path(name).is_file():
        if weights is not None:
            raise ModelError(f"{name}: a TorchScript model carries its weights; drop --weights")
        model = _load_torchscript(Path(name))
    else:
        raise ModelError(
            f"unknown model {name!r}: expected one of {', '.join(MODEL_NAMES)}, "
            "a TorchScript file (.pt/.pth), an ONNX file, or package.module:callable"
        )
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


def describe_model(name: str, weights: str | Path | None = None, seed: int = 0) -> ModelInfo:
    """Build ``name`` (as :func:`build_model` does) and report its size and MACs at 224x224."""
    import torch

    from carbonedge.models.macs import count_macs

    model = build_model(name, weights=weights, seed=seed)
    parameters = sum(p.numel() for p in model.parameters())
    if isinstance(model, torch.jit.ScriptModule):
        macs: int | None = None
        source = str(name)
    else:
        macs = count_macs(model, (1, 3, 224, 224))
        source = str(weights) if weights is not None else f"random (seed {seed})"
    return ModelInfo(name=name, parameters=parameters, macs=macs, weights_source=source)


def load_weights(model: torch.nn.Module, weights: str | Path) -> None:
    """Load a state_dict file into ``model`` with ``strict=True``.

    Accepts a plain state_dict or a dict holding one under ``"state_dict"`` or ``"model"``
    (training checkpoints); a ``"module."`` prefix (DataParallel/DDP) is stripped.
    """
    path = Path(weights)
    state = _read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:_PREVIEW])})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:_PREVIEW])})"
        )
    if wrong_shape:
        problems.append(
            f"{len(wrong_shape)} shape mismatches (first: {'; '.join(wrong_shape[:_PREVIEW])})"
        )
    if problems:
        raise ModelError(
            f"{path}: checkpoint does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. dtype that cannot be copied
        raise ModelError(f"{path}: cannot load checkpoint: {exc}") from exc


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch

    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    if _is_torchscript_archive(path):
        raise ModelError(
            f"{path}: is a TorchScript model, not a state_dict; pass it as the model name"
        )
    try:
        raw: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable PyTorch state_dict ({first_line})") from exc
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise ModelError(
            f"{path}: expected a state_dict (a dict of tensors), got {type(raw).__name__}"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__})")
        state[key.removeprefix("module.")] = value
    return state


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives hold ``<root>/code/`` and ``constants.pkl``; torch.save files do not."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _load_torchscript(path: Path) -> torch.nn.Module:
    import torch

    if not _is_torchscript_archive(path):
        raise ModelError(
            f"{path}: not a TorchScript model (a state_dict? pass it as --weights with one of "
            f"{', '.join(MODEL_NAMES)})"
        )
    try:
        module: torch.nn.Module = torch.jit.load(  # type: ignore[no-untyped-call]
            str(path), map_location="cpu"
        )
    except Exception as exc:  # corrupt archive, unknown ops
        raise ModelError(f"{path}: cannot load TorchScript model: {exc}") from exc
    return module


def _build_from_callable(spec: str) -> torch.nn.Module:
    import torch

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"{spec}: cannot import module {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"{spec}: {module_name} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as exc:  # user code: report, do not crash the CLI
        raise ModelError(f"{spec}: calling {attr}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{spec}: {attr}() returned {type(model).__name__}, not a torch.nn.Module")
    return model
