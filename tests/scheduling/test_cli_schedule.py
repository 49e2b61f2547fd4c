"""``carbonedge schedule`` and the fleet-state file loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonedge.cli.main import main
from carbonedge.errors import ConfigError
from carbonedge.scheduling.fleet_file import load_fleet_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node_states.toml"

NODE = """
[[nodes]]
name = "{name}"
cpu_quota = 1.0
memory_mb = 1024
avg_time_s = 0.3
power_w = 3.0
intensity_g_per_kwh = 500
"""


def test_example_file_loads_with_defaults() -> None:
    fleet = load_fleet_file(EXAMPLE)
    assert [n.name for n in fleet.nodes] == ["Node-High", "Node-Medium", "Node-Green"]
    high = fleet.nodes[0]
    assert (high.free_cpu, high.free_memory_mb, high.load, high.tasks_in_flight) == (
        1.0,
        1024,
        0.0,
        0,
    )
    assert fleet.task is not None and fleet.task.memory_mb == 60.0


@pytest.mark.parametrize(
    ("mode", "node"),
    [("performance", "Node-High"), ("balanced", "Node-High"), ("green", "Node-Green")],
)
def test_cli_prints_decision_and_table(
    mode: str, node: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "--fleet", str(EXAMPLE), "--mode", mode]) == 0
    out = capsys.readouterr().out
    assert f"decision: {node} (score " in out
    assert "SR" in out and "SC" in out
    chosen = [line for line in out.splitlines() if line.endswith("CHOSEN")]
    assert len(chosen) == 1 and chosen[0].startswith(node)


def test_cli_json_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", "--fleet", str(EXAMPLE), "--policy", "constrained", "--slo-ms", "500"]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["policy"] == "constrained"
    assert data["node"] == "Node-Medium"
    assert data["nodes"][2]["note"] == "predicted latency > SLO 500 ms"
    assert main(["schedule", "--fleet", str(EXAMPLE), "--weights", "0,0,0,0,1"]) == 0
    assert "decision: Node-Green" in capsys.readouterr().out
    assert main(["schedule", "--fleet", str(EXAMPLE), "--policy", "normalized"]) == 0
    assert "min-max normalised" in capsys.readouterr().out


def test_cli_no_node_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["schedule", "--fleet", str(EXAMPLE), "--task-memory-mb", "5000"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "decision: no node eligible" in out
    assert "free_memory_mb 1024 < task needs 5000" in out


def test_cli_bad_file_exits_two_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.toml"
    text = NODE.format(name="a") + NODE.format(name="b") + NODE.format(name="c")
    bad.write_text(text + "load = 1.7\n")
    assert main(["schedule", "--fleet", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"carbonedge: error: {bad}: nodes[2].load: must be between 0 and 1, got 1.7"
    )
    assert main(["schedule", "--fleet", str(EXAMPLE), "--weights", "1,2"]) == 2
    assert "need 5 numbers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NODE.format(name="a").replace("power_w = 3.0\n", ""), r"nodes\[0\]\.power_w: missing"),
        (NODE.format(name="a") + "speed = 3\n", r"nodes\[0\]\.speed: unknown field"),
        (NODE.format(name="a") + NODE.format(name="a"), "duplicate node name 'a'"),
        (NODE.format(name="a") + "free_cpu = 2.0\n", r"nodes\[0\]\.free_cpu: must be at most"),
        ("nodes = []\n", "nodes: must be a non-empty list"),
        ("[[nodes]\n", "not valid"),
        ("[task]\nmemory_mb = -5\n" + NODE.format(name="a"), r"task\.memory_mb"),
        ("[extra]\n" + NODE.format(name="a"), "extra: unknown section"),
    ],
)
def test_loader_errors_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as exc:
        load_fleet_file(path)
    assert str(path) in str(exc.value)


def test_loader_reads_json_and_reports_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    node = {
        "name": "j",
        "cpu_quota": 0.5,
        "memory_mb": 512,
        "avg_time_s": 0.2,
        "power_w": 2,
        "intensity_g_per_kwh": 100,
        "load": 0.5,
    }
    path.write_text(json.dumps({"nodes": [node]}))
    fleet = load_fleet_file(path)
    assert fleet.nodes[0].free_cpu == 0.25
    assert fleet.task is None
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet_file(tmp_path / "missing.toml")
