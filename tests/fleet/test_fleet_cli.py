"""``carbonedge fleet show`` / ``check``: output, and errors on one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonedge.cli.main import main


def test_show_prints_the_default_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "show"]) == 0
    out = capsys.readouterr().out
    assert "node-green" in out and "380" in out and "2 cores in all" in out


def test_bad_fleet_file_exits_two_with_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text('[[nodes]]\nname = "a"\ncpu_quota = -0.5\n')
    assert main(["fleet", "show", "--fleet", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "carbonedge: error: fleet.toml: nodes[0].cpu_quota must be > 0, got -0.5"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_check_starts_measures_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "one.toml"
    fleet.write_text(
        '[[nodes]]\nname = "solo"\ncpu_quota = 0.5\nmemory_mb = 512\n'
        "intensity_g_per_kwh = 300\nidle_w = 1\nmax_w = 4\n"
    )
    args = [
        "fleet",
        "check",
        "--fleet",
        str(fleet),
        "--enforcement",
        "dilation",
        "--probe-s",
        "0.5",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "solo" in out and "dilation" in out and " up" in out
