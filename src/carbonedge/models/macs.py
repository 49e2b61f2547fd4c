"""Multiply-accumulate (MAC) count of a model's convolutions and linear layers.

For one forward pass on an input of ``input_shape``, forward hooks add

- ``nn.Conv2d``: ``numel(output) * (C_in / groups) * k_h * k_w``, i.e.
  ``B * C_out * H_out * W_out * (C_in / groups) * k_h * k_w`` (groups and output size counted,
  unlike the paper's Eq. 5 layer cost ``k_h * k_w * C_in * C_out``);
- ``nn.Linear``: ``numel(output) * in_features``.

Bias additions, batch norm, activations, pooling and the squeeze-excitation product are not
counted, which is the convention behind the published figures (MobileNetV2 ~0.30 GMACs,
EfficientNet-B0 ~0.39 GMACs, MobileNetV4 conv-small ~0.19 GMACs at 224x224).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from carbonedge.errors import ModelError

if TYPE_CHECKING:
    import torch


def count_macs(module: torch.nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Return the MACs (an integer count) of one forward pass on a zero input of ``input_shape``.

    The module runs once in eval mode under ``torch.no_grad()`` (so batch-norm statistics are
    not updated) and its previous train/eval mode is restored. The count scales with the batch
    size in ``input_shape``.

    Raises:
        ModelError: the module is a TorchScript module (its submodules cannot be hooked) or
            the forward pass fails on ``input_shape``.
    """
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        raise ModelError("count_macs: TorchScript modules cannot be hooked; count the eager model")
    was_training = module.training
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    try:
        module.eval()
        with counting_macs(module) as count, torch.no_grad():
            module(torch.zeros(input_shape, dtype=dtype))
    except Exception as exc:  # a user model that rejects the shape
        raise ModelError(
            f"count_macs: forward pass on input shape {tuple(input_shape)} failed: {exc}"
        ) from exc
    finally:
        module.train(was_training)
    return count.total


class MacCount:
    """The running MAC total of the forwards run inside :func:`counting_macs`."""

    def __init__(self) -> None:
        self.total = 0


@contextmanager
def counting_macs(module: torch.nn.Module) -> Iterator[MacCount]:
    """Hook every convolution and linear layer of ``module``; forwards run inside the block add
    their MACs (the formulas of the module docstring; any ``_ConvNd``, so also 1-D and 3-D) to
    the yielded :class:`MacCount`. The hooks are removed on exit."""
    from torch import nn

    count = MacCount()

    def conv_hook(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        assert isinstance(layer, nn.modules.conv._ConvNd)
        kernel = 1
        for size in layer.kernel_size:
            kernel *= size
        count.total += output.numel() * (layer.in_channels // layer.groups) * kernel

    def linear_hook(layer: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        assert isinstance(layer, nn.Linear)
        count.total += output.numel() * layer.in_features

    handles = []
    for sub in module.modules():
        if isinstance(sub, nn.modules.conv._ConvNd):
            handles.append(sub.register_forward_hook(conv_hook))
        elif isinstance(sub, nn.Linear):
            handles.append(sub.register_forward_hook(linear_hook))
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
