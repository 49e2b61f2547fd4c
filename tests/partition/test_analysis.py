"""Layer analysis on toy models and the three paper models; clear errors without cut points."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from carbonedge.partition import PartitionError, analyze, unit_comm_bytes, unit_costs  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(  # a stage of blocks: flattened into its two blocks
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU()),
        ),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(16, 10),
    ).eval()


def test_toy_sequential_units_and_costs() -> None:
    units = analyze(_toy(), (1, 3, 16, 16), repeats=1)
    assert [u.name for u in units] == ["0", "1.0", "1.1", "2", "3", "4"]
    assert [u.index for u in units] == list(range(6))
    assert units[0].eq5_cost == 9 * 3 * 8 + 16  # conv + BN weight and bias
    assert units[1].eq5_cost == 9 * 8 * 8  # depthwise counted as Cin x Cout; bias not counted
    assert units[2].eq5_cost == 8 * 16
    assert units[4].eq5_cost == 0
    assert units[5].eq5_cost == 16 * 10  # Linear Nin x Nout; its bias is not counted
    assert units[0].macs == 16 * 16 * 8 * 27
    assert units[1].macs == 16 * 16 * 8 * 9
    assert units[5].macs == 160
    assert units[2].output_shape == (1, 16, 16, 16)
    assert units[2].output_bytes == 16 * 16 * 16 * 4
    assert units[4].output_bytes == 16 * 4
    assert units[0].parameters == 3 * 8 * 9 + 16
    assert all(u.latency_ms > 0 for u in units)
    assert unit_costs(units, "macs")[0] == float(units[0].macs)
    assert unit_comm_bytes(units) == [u.output_bytes for u in units[:-1]]


class _NoStructure(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return out


class _HiddenSkip(nn.Sequential):
    """A Sequential subclass whose forward adds a skip: kept whole, as one unit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out: torch.Tensor = x + super().forward(x)
        return out


class _MaxPoolNet(nn.Module):
    """torchvision-style attributes, but its forward max-pools where the recipe average-pools."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.classifier = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_max_pool2d(self.features(x), 1), 1)
        out: torch.Tensor = self.classifier(x)
        return out


def test_model_without_cut_points_is_refused() -> None:
    with pytest.raises(PartitionError, match="_NoStructure: no cut points found"):
        analyze(_NoStructure().eval(), (1, 3, 8, 8), repeats=1)


def test_forward_that_differs_from_structure_is_refused() -> None:
    with pytest.raises(PartitionError, match="_MaxPoolNet: the units' composition differs"):
        analyze(_MaxPoolNet().eval(), (1, 3, 8, 8), repeats=1)


def test_sequential_subclass_with_own_forward_stays_one_unit() -> None:
    model = nn.Sequential(_HiddenSkip(nn.Conv2d(3, 3, 1), nn.ReLU()), nn.Flatten(1)).eval()
    units = analyze(model, (1, 3, 4, 4), repeats=1)
    assert [(u.name, u.type) for u in units] == [("0", "_HiddenSkip"), ("1", "Flatten")]


def test_training_mode_and_bad_shape_are_refused() -> None:
    with pytest.raises(PartitionError, match="training mode"):
        analyze(_toy().train(), (1, 3, 16, 16))
    with pytest.raises(PartitionError, match=r"input shape \(1, 5, 16, 16\) failed"):
        analyze(_toy(), (1, 5, 16, 16), repeats=1)
    with pytest.raises(PartitionError, match="repeats = 0"):
        analyze(_toy(), (1, 3, 16, 16), repeats=0)


def test_torchscript_is_refused() -> None:
    scripted = torch.jit.script(_toy())
    with pytest.raises(PartitionError, match="TorchScript"):
        analyze(scripted, (1, 3, 16, 16), repeats=1)
