"""``carbonedge partition``: tables, JSON, fleet files and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonedge.cli.main import main
from carbonedge.errors import ConfigError
from carbonedge.partition.nodes import load_node_profiles, paper_nodes

FAST = ["--input-size", "64", "--repeats", "1"]


def test_default_is_the_paper_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partition", *FAST, "--units"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2: 21 units, cost eq5" in out
    assert "features.17" in out  # --units table
    for name in ("high", "medium", "green"):
        assert name in out.lower()
    assert "bottleneck" in out


def test_json_with_slo_and_equal_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["partition", *FAST, "--nodes", "2", "--cost", "macs", "--json", "--slo-ms", "1000"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"] == "macs"
    assert [s["capacity"] for s in data["plan"]["segments"]] == [1.0, 1.0]
    assert len(data["units"]) == 21
    assert data["placement"]["chosen"]["latency_ms"] <= 1000
    assert data["plan"]["segments"][0]["stop"] == data["plan"]["segments"][1]["start"]


def test_fleet_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[nodes]]\nname = "a"\ncpu_quota = 0.5\nmemory_mb = 512\nintensity_g_per_kwh = 100\n'
        "idle_w = 1.0\nmax_w = 4.0\n"
        '[[nodes]]\nname = "b"\ncpu_quota = 1.0\nmemory_mb = 512\nintensity_g_per_kwh = 700\n'
        "idle_w = 2.0\nmax_w = 8.0\n"
    )
    profiles = load_node_profiles(fleet)
    assert [(p.name, p.capacity, p.intensity_g_per_kwh) for p in profiles] == [
        ("a", 0.5, 100.0),
        ("b", 1.0, 700.0),
    ]
    assert [(p.power_w, p.idle_power_w) for p in profiles] == [(4.0, 1.0), (8.0, 2.0)]
    assert main(["partition", *FAST, "--fleet", str(fleet), "--objective", "paper"]) == 0
    assert "objective paper" in capsys.readouterr().out


def test_paper_nodes_profile() -> None:
    expected = [(1.0, 620.0, 8.0), (0.6, 530.0, 4.8), (0.4, 380.0, 3.2)]
    for nodes in (paper_nodes(), load_node_profiles(None)):
        got = [(n.capacity, n.intensity_g_per_kwh, round(n.power_w, 9)) for n in nodes]
        assert got == expected


def test_local_reader_without_the_fleet_package(tmp_path: Path) -> None:
    from carbonedge.partition.nodes import _read_toml

    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[nodes]]\nname = "a"\ncpu_quota = 0.5\nintensity_g_per_kwh = 100\n')
    assert _read_toml(fleet)[0].power_w == pytest.approx(4.0)
    fleet.write_text('[[nodes]]\nname = "a"\ncpu_quota = -1\nintensity_g_per_kwh = 100\n')
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.cpu_quota = -1\.0"):
        _read_toml(fleet)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "40"], "k=40 > units=21"),
        (["--nodes", "1.0,0,0.4"], "capacities[1] = 0.0"),
        (["--nodes", "many"], "--nodes 'many'"),
        (["--slo-ms", "0.01"], "no placement meets slo_ms=0.01"),
        (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    ],
)
def test_errors_are_one_line_and_exit_two(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["partition", *FAST, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("carbonedge: error: ") and message in err
    assert err.count("\n") == 1


def test_bad_fleet_field_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "bad.toml"
    fleet.write_text(
        '[[nodes]]\nname = "a"\ncpu_quota = "lots"\nmemory_mb = 512\nintensity_g_per_kwh = 1\n'
    )
    assert main(["partition", *FAST, "--fleet", str(fleet)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "nodes[0].cpu_quota" in err and "'lots'" in err
