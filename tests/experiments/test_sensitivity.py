"""The Green-mode sensitivity map uses the free memory the live engine saw (SR's memory term)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.experiments.sensitivity import cell, fig_sensitivity, free_memory_of, states
from carbonedge.fleet import default_fleet
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.telemetry import NodeTelemetry
from carbonedge.scheduling.components import components

PAPER_FLEET = [
    ("node-high", 1.0, 1024.0, 620.0),
    ("node-medium", 0.6, 512.0, 530.0),
    ("node-green", 0.4, 512.0, 380.0),
]
# What the reproduction's engine reported: the three paper models and the AMP4EC segments on
# every node (node-high 104 of 1024 MiB used, node-medium 77, node-green 100 of 512).
FREE = {"node-high": 1024 - 104.113, "node-medium": 512 - 77.499, "node-green": 512 - 99.747}


def test_map_states_use_the_given_free_memory() -> None:
    sts = {s.name: s for s in states(PAPER_FLEET, 0.024, 8.0, free_memory_mb=FREE)}
    assert {n: s.free_memory_mb for n, s in sts.items()} == pytest.approx(FREE)
    sr = {n: components(s).sr for n, s in sts.items()}
    assert sr["node-high"] == pytest.approx(0.5 * (1.0 + FREE["node-high"] / 1024))
    assert sr["node-high"] - sr["node-green"] == pytest.approx(0.0468, abs=1e-3)
    # Not given: empty nodes, as before.
    assert all(s.free_memory_mb == s.memory_mb for s in states(PAPER_FLEET, 0.024, 8.0))


def test_memory_term_changes_the_pick_at_our_point() -> None:
    # At our task time (24 ms on a full core, 8 W) empty nodes make Green pick node-green; with
    # the deployed footprints the live engine sees, SR's ~0.007 (x wR) favours node-high.
    assert cell(PAPER_FLEET, 0.024, 8.0).pick == "node-green"
    assert cell(PAPER_FLEET, 0.024, 8.0, free_memory_mb=FREE).pick == "node-high"


def test_free_memory_comes_from_the_engines_telemetry() -> None:
    spec = default_fleet()
    fleet = InProcessFleet(spec)
    for name, t in fleet.telemetry.items():
        assert isinstance(t, NodeTelemetry)
        t.used_memory_mb = spec.node(name).memory_mb - FREE[name]
    assert free_memory_of(fleet.node_states("m")) == pytest.approx(FREE)


def test_the_caption_says_whether_the_memory_term_is_included(tmp_path: Path) -> None:
    with_memory = fig_sensitivity(
        PAPER_FLEET, tmp_path / "a.png", (0.024, 8.0), free_memory_mb=FREE
    )
    assert "memory term is included" in with_memory and "node-high 104 of 1024 MiB" in with_memory
    assert "Green picks node-high" in with_memory
    empty = fig_sensitivity(PAPER_FLEET, tmp_path / "b.png", (0.024, 8.0))
    assert "assumes empty nodes" in empty and "Green picks node-green" in empty
    assert (tmp_path / "a.png").stat().st_size > 0
