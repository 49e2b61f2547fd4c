"""A node name can never place a cgroup directory outside the fleet's carbonedge-<pid> folder.

The cgroup root is a fake cgroup v2 tree in tmp_path, so these tests run without root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carbonedge.errors import ConfigError
from carbonedge.fleet import cgroup
from carbonedge.fleet.cgroup import CpuQuotaGroup


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    monkeypatch.setattr(cgroup, "_V1", tmp_path / "no-v1")
    monkeypatch.setattr(cgroup, "_V2", root)
    return root


def test_valid_name_creates_the_group_inside_the_fleet_folder(fake_root: Path) -> None:
    group = CpuQuotaGroup("node-green", 0.4)
    group.create()
    expected = fake_root / f"carbonedge-{os.getpid()}" / "node-green"
    assert group.path == expected
    assert (expected / "cpu.max").read_text() == "4000 10000"


@pytest.mark.parametrize(
    "name", ["..", "../../etc", "/sys/fs/cgroup", "a/../../b", ".", "", "a b", "x" * 64]
)
def test_bad_name_is_refused_before_any_path_is_built(fake_root: Path, name: str) -> None:
    before = sorted(fake_root.parent.rglob("*"))
    with pytest.raises(ConfigError, match="node name"):
        CpuQuotaGroup(name, 0.5)
    assert sorted(fake_root.parent.rglob("*")) == before


@pytest.mark.parametrize("quota", [float("nan"), float("inf"), 0.0, -1.0, 1e300])
def test_bad_quota_is_refused(fake_root: Path, quota: float) -> None:
    with pytest.raises(ConfigError, match="cpu_quota"):
        CpuQuotaGroup("node", quota)
