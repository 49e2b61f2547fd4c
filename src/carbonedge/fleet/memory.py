"""Memory footprint of a deployed model, checked against the node's ``memory_mb`` before deploying.

Estimate (bytes) = parameters + buffers + activation peak, where the activation peak is the
largest ``input bytes + output bytes`` of any leaf module during one forward pass of a zero batch
of the deployment's input shape (in eval mode without autograd only a layer's input and output
need to be alive at once; skip connections add at most one more tensor of the same size, so the
estimate is a lower bound within about 1.5x). The Python interpreter and the runtime library
(torch: about 150-300 MB RSS) are not part of it: they are reported separately as the node's RSS.
This module is imported in the node process only (it imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Footprint:
    """Model memory estimate in bytes: weights (params + buffers) and activation peak."""

    weights_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    @property
    def total_mb(self) -> float:
        """Total in MiB."""
        return self.total_bytes / 2**20


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    return 0


def estimate_footprint(module: torch.nn.Module, input_shape: tuple[int, ...]) -> Footprint:
    """Estimate ``module``'s memory for one batch of ``input_shape`` (see module docstring)."""
    weights = sum(_nbytes(p) for p in module.parameters()) + sum(
        _nbytes(b) for b in module.buffers()
    )
    peak = [0]

    def hook(_m: torch.nn.Module, inputs: Any, output: Any) -> None:
        peak[0] = max(peak[0], _nbytes(inputs) + _nbytes(output))

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            out = module(torch.zeros(input_shape))
        peak[0] = max(peak[0], _nbytes(out) + _nbytes(torch.zeros(input_shape)))
    finally:
        for h in handles:
            h.remove()
    return Footprint(weights, peak[0])
