"""MobileNetV4 conv-small (Qin et al., 2024; paper ref. [33], Section IV.A.3) in plain PyTorch.

The state_dict matches timm's ``mobilenetv4_conv_small`` name for name and shape (3,774,024
parameters), so a checkpoint saved from timm loads with ``strict=True``. Top level, in timm's
order (what the partitioner cuts): ``conv_stem``, ``bn1`` (BN + ReLU), ``blocks`` (an
``nn.Sequential`` of five stages), ``global_pool``, ``conv_head`` (1x1, no bias, applied *after*
pooling), ``norm_head`` (BN + ReLU), ``flatten``, ``classifier``.

Blocks, ReLU activations and BatchNorm eps 1e-5 throughout:

- :class:`ConvBnAct` (timm's ``cn``): conv -> BN -> ReLU, never a residual;
- :class:`UniversalInvertedResidual` (``uir``): optional depthwise ``dw_start`` (BN, no
  activation) -> 1x1 ``pw_exp`` -> optional depthwise ``dw_mid`` -> 1x1 ``pw_proj`` (BN, no
  activation), with a residual when stride is 1 and channels are unchanged. ``dw_start`` only
  gives the "ExtraDW" block, ``dw_mid`` only the inverted residual, ``dw_start`` alone the
  ConvNeXt-like block. The stride sits on ``dw_mid`` when present, else on ``dw_start``.

Padding is symmetric ``(k - 1) // 2`` (timm's default ``pad_type=''``; no TF "same" padding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from carbonedge.models.layers import make_divisible, same_padding

# Stage definitions. ("cn", kernel, stride, out) or ("uir", start kernel, mid kernel, stride,
# expansion, out, repeats); kernel 0 = that depthwise conv is absent.
Block = tuple[str, int, int, int] | tuple[str, int, int, int, int, int, int]
CONV_SMALL_STAGES: tuple[tuple[Block, ...], ...] = (
    (("cn", 3, 2, 32), ("cn", 1, 1, 32)),
    (("cn", 3, 2, 96), ("cn", 1, 1, 64)),
    (
        ("uir", 5, 5, 2, 3, 96, 1),  # ExtraDW
        ("uir", 0, 3, 1, 2, 96, 4),  # IR
        ("uir", 3, 0, 1, 4, 96, 1),  # ConvNeXt-like
    ),
    (
        ("uir", 3, 3, 2, 6, 128, 1),  # ExtraDW
        ("uir", 5, 5, 1, 4, 128, 1),  # ExtraDW
        ("uir", 0, 5, 1, 4, 128, 1),  # IR
        ("uir", 0, 5, 1, 3, 128, 1),  # IR
        ("uir", 0, 3, 1, 4, 128, 2),  # IR
    ),
    (("cn", 1, 1, 960),),
)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by an activation; same state_dict as a plain ``BatchNorm2d``."""

    def __init__(self, num_features: int, act: bool = True, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps)
        self.act: nn.Module = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(super().forward(input))
        return out


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_ch, out_ch, kernel, stride, padding=same_padding(kernel), groups=groups, bias=False
    )


class ConvBnAct(nn.Module):
    """Plain convolution block (children ``conv``, ``bn1``), no residual."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = _conv(in_ch, out_ch, kernel, stride)
        self.bn1 = BatchNormAct2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn1(self.conv(x))
        return out


class ConvNormAct(nn.Module):
    """Convolution block used inside UIR blocks (children ``conv``, ``bn``)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = _conv(in_ch, out_ch, kernel, stride, groups)
        self.bn = BatchNormAct2d(out_ch, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(self.conv(x))
        return out


class UniversalInvertedResidual(nn.Module):
    """MobileNetV4's universal inverted bottleneck (UIB), see the module docstring."""

    def __init__(
        self, in_ch: int, out_ch: int, start_k: int, mid_k: int, stride: int, expansion: float
    ) -> None:
        super().__init__()
        self.has_skip = in_ch == out_ch and stride == 1
        mid_ch = make_divisible(in_ch * expansion)
        self.dw_start: nn.Module = nn.Identity()
        if start_k:
            start_stride = 1 if mid_k else stride
            self.dw_start = ConvNormAct(in_ch, in_ch, start_k, start_stride, in_ch, act=False)
        self.pw_exp = ConvNormAct(in_ch, mid_ch, 1)
        self.dw_mid: nn.Module = nn.Identity()
        if mid_k:
            self.dw_mid = ConvNormAct(mid_ch, mid_ch, mid_k, stride, mid_ch)
        self.pw_proj = ConvNormAct(mid_ch, out_ch, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return out + x if self.has_skip else out


def _make_stage(in_ch: int, blocks: tuple[Block, ...]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for spec in blocks:
        if spec[0] == "cn":
            _, kernel, stride, out_ch = spec[:4]
            layers.append(ConvBnAct(in_ch, out_ch, kernel, stride))
            in_ch = out_ch
            continue
        _, start_k, mid_k, stride, expansion, out_ch, repeats = spec  # type: ignore[misc]
        for i in range(repeats):
            layers.append(
                UniversalInvertedResidual(
                    in_ch, out_ch, start_k, mid_k, stride if i == 0 else 1, expansion
                )
            )
            in_ch = out_ch
    return nn.Sequential(*layers), in_ch


class MobileNetV4(nn.Module):
    """MobileNetV4 (conv-small stages); ``forward`` maps (B, 3, H, W) to logits (B, classes)."""

    def __init__(
        self,
        stages: tuple[tuple[Block, ...], ...] = CONV_SMALL_STAGES,
        num_classes: int = 1000,
        stem_channels: int = 32,
        head_channels: int = 1280,
    ) -> None:
        super().__init__()
        self.conv_stem = _conv(3, stem_channels, 3, stride=2)
        self.bn1 = BatchNormAct2d(stem_channels)
        channels = stem_channels
        built = []
        for blocks in stages:
            stage, channels = _make_stage(channels, blocks)
            built.append(stage)
        self.blocks = nn.Sequential(*built)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = _conv(channels, head_channels, 1)
        self.norm_head = BatchNormAct2d(head_channels)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(head_channels, num_classes)
        _init_like_tensorflow(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))  # (B, 960, H/32, W/32)
        x = self.norm_head(self.conv_head(self.global_pool(x)))  # (B, 1280, 1, 1)
        out: torch.Tensor = self.classifier(self.flatten(x))
        return out


def _init_like_tensorflow(model: nn.Module) -> None:
    """timm's TensorFlow-style init: conv N(0, sqrt(2 / fan_out)), fan_out = k*k*C_out/groups;
    BN weight 1, bias 0; linear U(+-1/sqrt(out_features)), bias 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            kernel_h, kernel_w = module.kernel_size
            fan_out = kernel_h * kernel_w * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


def mobilenetv4_conv_small(num_classes: int = 1000) -> MobileNetV4:
    """Build MobileNetV4 conv-small with randomly initialised weights from the global RNG."""
    return MobileNetV4(num_classes=num_classes)
