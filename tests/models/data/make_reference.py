"""Generate the reference lists in this folder from torchvision and timm (NOT run by pytest).

For each of the paper's three CNNs this writes

- ``<model>.txt``: one line per state_dict entry, ``name<TAB>shape<TAB>dtype``, in the
  reference library's order;
- ``<model>_logits.json``: the first 20 logits and their sum for :func:`reference_input`, after
  every state_dict entry was filled with :func:`fill_deterministic` (no RNG involved).

The tests in ``tests/models/test_architectures.py`` load :func:`fill_deterministic` and
:func:`reference_input` from this file (they need only torch), build our own models, fill them
the same way, load with ``strict=True`` and compare.

How to run (in a throw-away environment outside the repository; the CUDA torchvision wheel's C
ops cannot load against the CPU torch build, so the op registrations are stubbed out, which does
not affect the pure-Python model definitions)::

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0 torchvision==0.28.0 timm
    /tmp/refenv/bin/python tests/models/data/make_reference.py

Generated with torch 2.13.0, torchvision 0.28.0 and timm 1.0.31.
"""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parent
N_LOGITS = 20


def fill_deterministic(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a copy of ``state`` with every tensor set by a closed-form formula (no RNG).

    Entries are numbered ``k`` in sorted-name order; with ``s = sin(0.37 * arange(numel) + k)``:
    conv/linear weights ``s * sqrt(3 / fan_in)``; BN weights ``1 + 0.1 s``; running variances
    ``0.75 + 0.25 s`` (positive); other 1-D tensors (biases, running means) ``0.05 s``;
    ``num_batches_tracked`` = ``k``. Computed in float64, stored in the entry's dtype.
    """
    filled: dict[str, torch.Tensor] = {}
    for k, name in enumerate(sorted(state)):
        tensor = state[name]
        if not tensor.is_floating_point():
            filled[name] = torch.full_like(tensor, k)
            continue
        wave = torch.sin(0.37 * torch.arange(tensor.numel(), dtype=torch.float64) + k)
        wave = wave.reshape(tensor.shape)
        if name.endswith("running_var"):
            value = 0.75 + 0.25 * wave
        elif tensor.dim() >= 2:
            fan_in = tensor[0].numel()
            value = wave * math.sqrt(3.0 / fan_in)
        elif name.endswith("weight"):
            value = 1.0 + 0.1 * wave
        else:
            value = 0.05 * wave
        filled[name] = value.to(tensor.dtype)
    return filled


def reference_input() -> torch.Tensor:
    """A fixed (1, 3, 224, 224) float32 input with ImageNet-like range, built without RNG."""
    i = torch.arange(3 * 224 * 224, dtype=torch.float64)
    x = 1.5 * torch.sin(0.013 * i) * torch.cos(0.0029 * i) + 0.3 * torch.sin(0.41 * i)
    return x.reshape(1, 3, 224, 224).to(torch.float32)


def reference_logits(model: torch.nn.Module) -> dict[str, object]:
    """Fill ``model`` with :func:`fill_deterministic` and return its logits summary."""
    model.load_state_dict(fill_deterministic(model.state_dict()), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(reference_input())[0].to(torch.float64)
    return {
        "first_logits": [float(v) for v in logits[:N_LOGITS]],
        "sum": float(logits.sum()),
        "abs_sum": float(logits.abs().sum()),
        "argmax": int(logits.argmax()),
        "num_classes": int(logits.numel()),
    }


def _reference_models() -> dict[str, torch.nn.Module]:
    # The CUDA torchvision wheel's ops fail to register against CPU torch; the models need none.
    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    import timm
    import torchvision
    from torchvision.models import efficientnet_b0, mobilenet_v2

    print(
        f"torch {torch.__version__} torchvision {torchvision.__version__} timm {timm.__version__}"
    )
    return {
        "mobilenet_v2": mobilenet_v2(),
        "efficientnet_b0": efficientnet_b0(),
        "mobilenetv4_conv_small": timm.create_model("mobilenetv4_conv_small", pretrained=False),
    }


def main() -> None:
    torch.set_num_threads(1)
    for name, model in _reference_models().items():
        state = model.state_dict()
        lines = [
            f"{key}\t{tuple(t.shape)}\t{str(t.dtype).removeprefix('torch.')}"
            for key, t in state.items()
        ]
        (DATA_DIR / f"{name}.txt").write_text("\n".join(lines) + "\n")
        summary = reference_logits(model)
        summary["parameters"] = sum(p.numel() for p in model.parameters())
        (DATA_DIR / f"{name}_logits.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(name, summary["parameters"], len(state), summary["sum"], summary["argmax"])


if __name__ == "__main__":
    main()
