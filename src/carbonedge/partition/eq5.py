"""Layer costs: the paper's Eq. 5 and multiply-accumulate counts (pure formulas).

Eq. 5 (Section III.E)::

    Cost(l) = kh x kw x Cin x Cout   for Conv2D
              Nin x Nout             for Linear
              parameter count        for other layers

Eq. 5 ignores a convolution's groups and its output size: a depthwise 3x3 conv on C channels
costs ``9 C^2`` although it does ``9 C H W`` multiply-accumulates. :func:`conv_macs` counts both,
so the two costs can be compared side by side.
"""

from __future__ import annotations

from math import prod


def eq5_conv(kernel_size: tuple[int, ...], in_channels: int, out_channels: int) -> int:
    """Eq. 5 for a convolution: product of the kernel sizes x Cin x Cout (groups ignored)."""
    return prod(kernel_size) * in_channels * out_channels


def eq5_linear(in_features: int, out_features: int) -> int:
    """Eq. 5 for a fully-connected layer: Nin x Nout."""
    return in_features * out_features


def conv_macs(
    kernel_size: tuple[int, ...],
    in_channels: int,
    out_channels: int,
    groups: int,
    output_elements_per_channel: int,
    batch: int = 1,
) -> int:
    """Multiply-accumulates of a convolution.

    Each output element needs ``prod(kernel) x Cin / groups`` MACs, and there are
    ``batch x Cout x output_elements_per_channel`` output elements (H x W for a Conv2d).
    """
    return (
        batch
        * out_channels
        * output_elements_per_channel
        * prod(kernel_size)
        * (in_channels // groups)
    )
