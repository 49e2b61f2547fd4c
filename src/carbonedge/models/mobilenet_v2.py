"""MobileNetV2 (Sandler et al., 2018; paper ref. [32], Section IV.A.3) in plain PyTorch.

The state_dict matches torchvision's ``mobilenet_v2()`` name for name and shape (3,504,872
parameters), so a checkpoint saved from torchvision loads with ``strict=True``:

- ``features``: ``nn.Sequential`` of the stem (``features.0``), 17 inverted-residual blocks
  (``features.1`` .. ``features.17``, each with a ``conv`` Sequential) and the 1x1 head conv
  (``features.18``); ReLU6 activations, BatchNorm eps 1e-5.
- ``classifier``: ``Dropout(0.2)`` then ``Linear(1280, num_classes)``.

The top level (``features`` then global average pool then ``classifier``) is what the
partitioner cuts.
"""

from __future__ import annotations

import torch
from torch import nn

from carbonedge.models.layers import conv_bn_act, init_torchvision_style, make_divisible

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), with a skip when shapes match.

    Children of ``conv``: ``[expand,] depthwise, project conv, project BN`` (torchvision layout).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(in_channels, hidden, kernel_size=1))
        layers += [
            conv_bn_act(hidden, hidden, kernel_size=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """MobileNetV2 for 224x224 RGB input; ``forward`` maps (B, 3, H, W) to logits (B, classes)."""

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        in_channels = make_divisible(32 * width_mult)
        last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [conv_bn_act(3, in_channels, kernel_size=3, stride=2)]
        for expand, channels, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
            out_channels = make_divisible(channels * width_mult)
            for i in range(repeats):
                stride = first_stride if i == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, stride, expand))
                in_channels = out_channels
        layers.append(conv_bn_act(in_channels, last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(last_channels, num_classes)
        )
        init_torchvision_style(self, _normal_small)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, H/32, W/32)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)  # (B, 1280)
        out: torch.Tensor = self.classifier(x)
        return out


def _normal_small(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, 0.0, 0.01)


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """Build MobileNetV2 (width 1.0) with randomly initialised weights from the global RNG."""
    return MobileNetV2(num_classes=num_classes)
