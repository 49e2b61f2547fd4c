"""Find a model's cut points: the chain of modules whose composition is its forward (adapter).

Supported structures (checked by attributes, not class names):

- an ``nn.Sequential`` (a user model): its children, in order;
- torchvision style (MobileNetV2, EfficientNet-B0): ``features`` (Sequential), then global
  average pooling (``avgpool`` if present, else ``AdaptiveAvgPool2d(1)`` as torchvision's
  MobileNetV2 calls functionally), ``torch.flatten(x, 1)``, then ``classifier``;
- timm MobileNetV3/V4 style: ``conv_stem``, ``bn1`` [``act1``], ``blocks`` (Sequential of
  stages), then ``global_pool``, ``conv_head``, [``norm_head``], [``act2``], ``flatten``,
  ``classifier``.

Inside them, a nested plain ``nn.Sequential`` holding blocks (a stage such as EfficientNet's
``features.2`` or timm's ``blocks.1``) is flattened into its blocks; a Sequential made only of
leaf layers (conv-BN-activation) stays one unit. The chain is always checked against the
model's own forward on a random input before it is used (:func:`check_chain`).
"""

from __future__ import annotations

import torch
from torch import nn

from carbonedge.partition.errors import PartitionError

Chain = list[tuple[str, nn.Module]]
_TIMM = ("conv_stem", "bn1", "blocks", "global_pool", "conv_head", "classifier")


def _is_plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _expand(prefix: str, container: nn.Module) -> Chain:
    chain: Chain = []
    for name, child in container.named_children():
        path = f"{prefix}.{name}" if prefix else name
        has_blocks = any(next(c.children(), None) is not None for c in child.children())
        if _is_plain_sequential(child) and has_blocks:
            chain.extend(_expand(path, child))
        else:
            chain.append((path, child))
    return chain


def _sub(model: nn.Module, name: str) -> nn.Module | None:
    module = getattr(model, name, None)
    return module if isinstance(module, nn.Module) else None


def _subs(model: nn.Module, *names: str) -> list[nn.Module]:
    return [m for m in (_sub(model, name) for name in names) if m is not None]


def _timm_head(model: nn.Module) -> Chain:
    head = _subs(model, "global_pool", "conv_head", "norm_head", "act2")
    tail = [_sub(model, "flatten") or nn.Flatten(1), *_subs(model, "classifier")]
    return [("head", nn.Sequential(*head)), ("classifier", nn.Sequential(*tail))]


def find_chain(model: nn.Module) -> Chain:
    """Return ``[(name, module), ...]`` whose sequential composition equals ``model``.

    Raises:
        PartitionError: TorchScript module, or no known structure with cut points.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise PartitionError(
            f"{type(model).__name__}: a TorchScript module cannot be cut; pass the eager model"
        )
    if _is_plain_sequential(model):
        chain = _expand("", model)
    elif isinstance(features := _sub(model, "features"), nn.Sequential) and (
        (classifier := _sub(model, "classifier")) is not None
    ):
        pool = _sub(model, "avgpool") or nn.AdaptiveAvgPool2d(1)
        chain = _expand("features", features)
        chain += [("avgpool", nn.Sequential(pool, nn.Flatten(1))), ("classifier", classifier)]
    elif len(_subs(model, *_TIMM)) == len(_TIMM) and (blocks := _sub(model, "blocks")) is not None:
        chain = [("stem", nn.Sequential(*_subs(model, "conv_stem", "bn1", "act1")))]
        chain += _expand("blocks", blocks)
        chain += _timm_head(model)
    else:
        raise PartitionError(
            f"{type(model).__name__}: no cut points found; the partitioner needs an nn.Sequential, "
            "a torchvision-style model (features + classifier) or a timm-style MobileNet "
            "(conv_stem, bn1, blocks, global_pool, conv_head, classifier)"
        )
    if len(chain) == 0:
        raise PartitionError(f"{type(model).__name__}: the model has no layers to partition")
    return chain


def run_chain(chain: Chain, x: torch.Tensor) -> torch.Tensor:
    """Apply the chain's modules in order."""
    for _, module in chain:
        x = module(x)
    return x


def check_chain(
    model: nn.Module, chain: Chain, input_shape: tuple[int, ...], atol: float = 1e-4
) -> None:
    """Raise PartitionError unless the chain reproduces ``model(x)`` for a random ``x``."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(input_shape, generator=generator)
    with torch.inference_mode():
        try:
            expected = model(x)
            got = run_chain(chain, x)
        except Exception as exc:  # a user model that rejects the shape or the chain
            raise PartitionError(
                f"{type(model).__name__}: forward on input shape {tuple(input_shape)} failed "
                f"while checking cut points: {exc}"
            ) from exc
    if not isinstance(expected, torch.Tensor) or expected.shape != got.shape:
        raise PartitionError(
            f"{type(model).__name__}: the units' composition does not reproduce the model's "
            "output shape; its forward does more than its structure shows"
        )
    diff = (expected - got).abs().max().item()
    if not diff <= atol * max(1.0, expected.abs().max().item()):
        raise PartitionError(
            f"{type(model).__name__}: the units' composition differs from the model's forward "
            f"(max abs diff {diff:.3g}); its forward does more than its structure shows"
        )
