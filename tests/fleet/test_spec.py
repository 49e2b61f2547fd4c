"""Fleet TOML validation: defaults, device profiles, errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.errors import ConfigError
from carbonedge.fleet import device_profile_names, load_fleet
from carbonedge.fleet.spec import load_device_profile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


GOOD = """
[[nodes]]
name = "a"
cpu_quota = 1.0
memory_mb = 1024
intensity_g_per_kwh = 620
idle_w = 1
max_w = 8
"""


def test_default_fleet_is_the_papers_three_nodes() -> None:
    spec = load_fleet(None)
    rows = [(n.name, n.cpu_quota, n.memory_mb, n.intensity_g_per_kwh) for n in spec.nodes]
    assert rows == [
        ("node-high", 1.0, 1024, 620.0),
        ("node-medium", 0.6, 512, 530.0),
        ("node-green", 0.4, 512, 380.0),
    ]
    assert spec.total_quota == pytest.approx(2.0)
    assert all(n.pue == 1.0 for n in spec.nodes)


def test_example_file_loads_with_device_profiles() -> None:
    spec = load_fleet(EXAMPLE)
    pi = spec.node("pi4-green")
    assert (pi.power.idle_w, pi.power.max_w) == (1.6, 5.0)
    assert "sbc-reviews" in pi.power.source
    orin = spec.node("orin-edge")
    assert orin.power.idle_w == 3.0 and orin.power.max_w == 15.0  # override wins


def test_every_shipped_profile_cites_a_source() -> None:
    names = device_profile_names()
    assert {"raspberry-pi-4", "raspberry-pi-5", "jetson-nano", "jetson-orin-nano"} <= set(names)
    for name in names:
        prof = load_device_profile(name)
        assert prof["max_w"] > 0 and prof["idle_w"] >= 0 and len(prof["source"]) > 20


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ("cpu_quota = 1.0", "fleet.toml: nodes[0].cpu_quota must be > 0, got -0.5"),
        ("memory_mb = 1024", "fleet.toml: nodes[0].memory_mb must be a number, got 'lots'"),
        ("intensity_g_per_kwh = 620", "fleet.toml: nodes[0].intensity_g_per_kwh or zone"),
        ("max_w = 8", "fleet.toml: nodes[0].max_w must be >= idle_w (1.0), got 0.5"),
        ('name = "a"', "fleet.toml: nodes[0].name is required"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, replace: str, message: str) -> None:
    bad = {
        "cpu_quota = 1.0": "cpu_quota = -0.5",
        "memory_mb = 1024": 'memory_mb = "lots"',
        "intensity_g_per_kwh = 620": "",
        "max_w = 8": "max_w = 0.5",
        'name = "a"': "",
    }[replace]
    with pytest.raises(ConfigError) as exc:
        load_fleet(_write(tmp_path, GOOD.replace(replace, bad)))
    assert message in str(exc.value)


def test_second_node_index_duplicate_and_unknown_fields(tmp_path: Path) -> None:
    second = GOOD + GOOD.replace('"a"', '"b"').replace("cpu_quota = 1.0", "cpu_quota = -0.5")
    with pytest.raises(ConfigError, match=r"nodes\[1\]\.cpu_quota must be > 0, got -0.5"):
        load_fleet(_write(tmp_path, second))
    with pytest.raises(ConfigError, match=r"nodes\[1\]\.name 'a' is used twice"):
        load_fleet(_write(tmp_path, GOOD + GOOD))
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.cpus is not a known field"):
        load_fleet(_write(tmp_path, GOOD + "cpus = 2\n"))
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.device unknown device profile 'pi9'"):
        load_fleet(_write(tmp_path, GOOD + 'device = "pi9"\n'))
    with pytest.raises(ConfigError, match=r"fleet\.toml: invalid TOML"):
        load_fleet(_write(tmp_path, "[[nodes]\n"))
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path / "missing.toml")


def test_measured_power_needs_no_profile(tmp_path: Path) -> None:
    text = GOOD.replace("idle_w = 1\nmax_w = 8\n", 'power = "measured"\n')
    node = load_fleet(_write(tmp_path, text)).nodes[0]
    assert node.power.kind == "measured"


def test_load_is_windowed_utilisation_or_occupancy() -> None:
    from carbonedge.fleet.spec import load_fleet
    from carbonedge.fleet.telemetry import NodeTelemetry

    spec = load_fleet(None).nodes[2]  # node-green, 0.4 cores
    windowed = NodeTelemetry(spec, window_s=1.0)
    windowed.submitted()
    windowed.finished(now_s=10.0, cpu_s=0.2, exec_ms=500.0, latency_ms=501.0)
    assert windowed.load(10.5) == pytest.approx(0.2 / (1.0 * 0.4))
    assert windowed.load(11.5) == 0.0  # the task left the window

    occupancy = NodeTelemetry(spec, window_s=0.0)
    assert occupancy.load(10.0) == 0.0
    occupancy.submitted()
    assert occupancy.load(10.0) == 1.0  # busy now
    occupancy.finished(now_s=10.0, cpu_s=0.2, exec_ms=500.0, latency_ms=501.0)
    assert occupancy.load(10.0) == 0.0  # idle at the next decision, however recent the task


def test_average_execution_time_is_kept_per_model() -> None:
    from carbonedge.fleet.spec import load_fleet
    from carbonedge.fleet.telemetry import NodeTelemetry

    t = NodeTelemetry(load_fleet(None).nodes[0], window_s=0.0)
    for _ in range(3):
        t.submitted()
        t.finished(now_s=1.0, cpu_s=0.03, exec_ms=30.0, latency_ms=31.0, model_key="whole")
    for _ in range(4):
        t.submitted()
        t.finished(now_s=2.0, cpu_s=0.002, exec_ms=2.0, latency_ms=3.0, model_key="segment")
    assert t.state(2.0, "whole").avg_time_s == pytest.approx(0.030)
    assert t.state(2.0, "segment").avg_time_s == pytest.approx(0.002)
    assert t.state(2.0, "never-run").avg_time_s == t.state(2.0).avg_time_s  # node-wide median
    assert t.state(2.0).avg_time_s == pytest.approx(0.002)  # median of 3 x 30 ms and 4 x 2 ms
