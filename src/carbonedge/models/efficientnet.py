"""EfficientNet-B0 (Tan & Le, 2019; paper ref. [34], Section IV.A.3) in plain PyTorch.

The state_dict matches torchvision's ``efficientnet_b0()`` name for name and shape (5,288,548
parameters), so a checkpoint saved from torchvision loads with ``strict=True``:

- ``features.0``: 3x3 stride-2 stem (32 channels); ``features.1`` .. ``features.7``: the seven
  MBConv stages, each an ``nn.Sequential`` of :class:`MBConv` blocks; ``features.8``: 1x1 conv to
  1280 channels. SiLU activations; BatchNorm eps 1e-5 (torchvision's choice for B0, where the
  TensorFlow original used 1e-3).
- ``avgpool`` then ``classifier`` = ``Dropout(0.2)``, ``Linear(1280, num_classes)``.

Each MBConv's ``block`` holds ``[expand 1x1,] depthwise kxk, squeeze-excitation, project 1x1``.
The squeeze width is ``max(1, block input channels // 4)``. Stochastic depth grows linearly
from 0 to 0.2 over the 16 blocks and is a no-op in eval mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from carbonedge.models.layers import (
    SqueezeExcitation,
    StochasticDepth,
    conv_bn_act,
    init_torchvision_style,
)

# (expansion, kernel, first stride, input channels, output channels, repeats) for B0
# (width and depth multipliers 1.0), Table 1 of the EfficientNet paper.
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation and a stochastic-depth residual."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        drop_prob: float,
    ) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_channels == out_channels
        expanded = in_channels * expand_ratio
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_bn_act(in_channels, expanded, kernel_size=1, activation=nn.SiLU))
        layers += [
            conv_bn_act(
                expanded, expanded, kernel_size, stride=stride, groups=expanded, activation=nn.SiLU
            ),
            SqueezeExcitation(expanded, max(1, in_channels // 4), activation=nn.SiLU),
            conv_bn_act(expanded, out_channels, kernel_size=1, activation=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_prob)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(nn.Module):
    """EfficientNet (B0 configuration); ``forward`` maps (B, 3, H, W) to logits (B, classes)."""

    def __init__(
        self,
        stages: tuple[tuple[int, int, int, int, int, int], ...] = B0_STAGES,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            conv_bn_act(3, stages[0][3], kernel_size=3, stride=2, activation=nn.SiLU)
        ]
        total_blocks = sum(stage[5] for stage in stages)
        block_id = 0
        for expand, kernel, first_stride, in_channels, out_channels, repeats in stages:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                drop_prob = stochastic_depth_prob * block_id / total_blocks
                blocks.append(
                    MBConv(
                        in_channels if i == 0 else out_channels,
                        out_channels,
                        kernel,
                        first_stride if i == 0 else 1,
                        expand,
                        drop_prob,
                    )
                )
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        last_in = stages[-1][4]
        last_channels = 4 * last_in  # 1280 for B0
        layers.append(conv_bn_act(last_in, last_channels, kernel_size=1, activation=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(last_channels, num_classes)
        )
        init_torchvision_style(self, _uniform_by_fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1280)
        out: torch.Tensor = self.classifier(x)
        return out


def _uniform_by_fan_out(linear: nn.Linear) -> None:
    bound = 1.0 / math.sqrt(linear.out_features)
    nn.init.uniform_(linear.weight, -bound, bound)


def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """Build EfficientNet-B0 with randomly initialised weights from the global RNG."""
    return EfficientNet(num_classes=num_classes)
