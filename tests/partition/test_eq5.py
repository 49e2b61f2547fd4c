"""Eq. 5 and MAC counts against hand computations, per layer type and for composite blocks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from carbonedge.partition.analysis import count_unit_macs, eq5_cost  # noqa: E402
from carbonedge.partition.eq5 import conv_macs, eq5_conv, eq5_linear  # noqa: E402


def test_conv2d_is_kh_kw_cin_cout() -> None:
    assert eq5_cost(nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=True)) == 3 * 3 * 3 * 32
    assert eq5_cost(nn.Conv2d(16, 8, (1, 5))) == 1 * 5 * 16 * 8
    assert eq5_conv((3, 3), 3, 32) == 864


def test_depthwise_conv_ignores_groups_as_printed() -> None:
    # Eq. 5 has no groups term: a depthwise 3x3 conv on 32 channels costs 9 x 32 x 32.
    assert eq5_cost(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)) == 9 * 32 * 32


def test_linear_is_nin_nout_without_bias() -> None:
    assert eq5_cost(nn.Linear(1280, 1000)) == 1_280_000
    assert eq5_linear(7, 5) == 35


def test_other_layers_cost_their_parameter_count() -> None:
    assert eq5_cost(nn.BatchNorm2d(32)) == 64  # weight + bias; running stats are buffers
    assert eq5_cost(nn.LayerNorm(10)) == 20
    assert eq5_cost(nn.ReLU6()) == 0
    assert eq5_cost(nn.AdaptiveAvgPool2d(1)) == 0


def test_composite_block_sums_its_layers() -> None:
    block = nn.Sequential(nn.Conv2d(3, 32, 3, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
    assert eq5_cost(block) == 864 + 64


def test_conv_macs_count_groups_and_output_size() -> None:
    x = torch.zeros(1, 3, 224, 224)
    macs, out = count_unit_macs(nn.Conv2d(3, 32, 3, stride=2, padding=1), x)
    assert out.shape == (1, 32, 112, 112)
    assert macs == 112 * 112 * 32 * 27 == conv_macs((3, 3), 3, 32, 1, 112 * 112)
    depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
    macs, _ = count_unit_macs(depthwise, torch.zeros(2, 32, 10, 10))
    assert macs == 2 * 32 * 100 * 9 == conv_macs((3, 3), 32, 32, 32, 100, batch=2)


def test_linear_layer_macs_count_rows() -> None:
    macs, _ = count_unit_macs(nn.Linear(8, 4), torch.zeros(3, 8))
    assert macs == 3 * 8 * 4
    block = nn.Sequential(nn.Flatten(1), nn.ReLU(), nn.Linear(12, 2))
    macs, _ = count_unit_macs(block, torch.zeros(1, 3, 2, 2))
    assert macs == 24
