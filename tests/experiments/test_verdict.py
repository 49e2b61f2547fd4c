"""Verdict rules and the Green-mode sensitivity map (pure functions, no fleet)."""

from __future__ import annotations

import math

from carbonedge.experiments.sensitivity import cell
from carbonedge.experiments.stats import MeanCI
from carbonedge.experiments.verdict import _agree, _ci_ok

PAPER_FLEET = [
    ("node-high", 1.0, 1024.0, 620.0),
    ("node-medium", 0.6, 512.0, 530.0),
    ("node-green", 0.4, 512.0, 380.0),
]


def test_agree_inside_ci_tolerance_and_direction() -> None:
    assert _agree(MeanCI(25.0, 3.0, 3), 22.9, 5.0) == "reproduced"
    assert _agree(MeanCI(40.0, 3.0, 3), 22.9, 5.0) == "differs"
    assert _agree(MeanCI(-10.0, 3.0, 3), 22.9, 5.0) == "not reproduced"
    assert _agree(MeanCI(math.nan, math.nan, 0), 22.9, 5.0) == "not run"


def test_ci_ok_is_15_percent_of_mean() -> None:
    assert _ci_ok(MeanCI(10.0, 1.5, 3)) is True
    assert _ci_ok(MeanCI(10.0, 1.6, 3)) is False
    assert _ci_ok(MeanCI(10.0, math.nan, 1)) is None


def test_green_mode_map_paper_ranges() -> None:
    # At the paper's task times SP differs far more between nodes than at ours.
    ours = cell(PAPER_FLEET, 0.024, 8.0)
    paper_point = cell(PAPER_FLEET, 0.25, 8.0)
    assert ours.sp_range < paper_point.sp_range
    assert ours.pick == "node-green"
    # Tiny power: SC cannot tell the nodes apart and SP wins -> the fastest node.
    assert cell(PAPER_FLEET, 0.25, 0.1).pick == "node-high"
