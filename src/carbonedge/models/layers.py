"""Building blocks shared by the paper's three CNNs (paper Section IV.A.3).

The blocks reproduce the *state_dict layout* of the reference libraries so that their
checkpoints load with ``strict=True``:

- :func:`conv_bn_act` is an ``nn.Sequential`` of (conv, batch norm, activation) whose children
  are named ``0``, ``1`` and ``2``, the layout of torchvision's ``Conv2dNormActivation``.
- :class:`SqueezeExcitation` has children ``fc1`` and ``fc2`` like torchvision's block of the same
  name (used by EfficientNet-B0).

Padding is ``(kernel_size - 1) // 2``, which equals both torchvision's rule and timm's default
(``pad_type=''``) rule ``((stride - 1) + (kernel_size - 1)) // 2`` for the odd kernels used here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ActivationFactory = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping below 90%.

    This is the rounding rule of the MobileNet papers that both torchvision and timm use.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def same_padding(kernel_size: int) -> int:
    """Symmetric padding that keeps the output size ``ceil(input / stride)`` for odd kernels."""
    return (kernel_size - 1) // 2


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    activation: ActivationFactory | None = nn.ReLU6,
    bn_eps: float = 1e-5,
) -> nn.Sequential:
    """Conv2d (no bias) -> BatchNorm2d -> optional activation, as children ``0``, ``1``, ``2``."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size),
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=bn_eps),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(fc2(act(fc1(mean_hw(x)))))``.

    ``fc1``/``fc2`` are 1x1 convolutions with bias, as in torchvision's EfficientNet.
    """

    def __init__(
        self, channels: int, squeeze_channels: int, activation: ActivationFactory = nn.SiLU
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = activation()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)  # (B, C, 1, 1)
        scale = self.fc2(self.activation(self.fc1(scale)))
        out: torch.Tensor = x * self.scale_activation(scale)
        return out


class StochasticDepth(nn.Module):
    """Row-wise stochastic depth (drop a residual branch per sample) during training only.

    In eval mode (how :func:`carbonedge.models.build_model` returns models) it is the identity.
    It holds no parameters, so it does not affect the state_dict.
    """

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
        return x * mask / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def init_torchvision_style(model: nn.Module, linear_init: Callable[[nn.Linear], None]) -> None:
    """Initialise like torchvision: Kaiming-normal (fan_out) convs, unit BN, zero biases.

    ``linear_init`` fills ``nn.Linear`` weights (it differs between MobileNetV2 and EfficientNet).
    Uses the global torch RNG; :func:`carbonedge.models.build_model` seeds it in a forked scope.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            linear_init(module)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
