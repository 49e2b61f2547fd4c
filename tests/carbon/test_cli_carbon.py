"""``carbonedge monitor`` and ``carbonedge intensity`` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from carbonedge.cli.main import main


def test_intensity_static_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intensity", "--source", "static", "--value", "530", "--zone", "n", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["g_per_kwh"] == 530.0 and out["source"] == "static" and out["fallback"] is False


def test_intensity_csv_and_errors_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,zone,gco2_per_kwh\n2024-01-01T00:00:00Z,DE,300\n")
    assert main(["intensity", "--source", "csv", "--file", str(trace), "--zone", "DE"]) == 0
    assert capsys.readouterr().out.startswith("300.0 gCO2/kWh")
    assert main(["intensity", "--source", "static"]) == 2
    assert "--value" in capsys.readouterr().err
    assert main(["intensity", "--source", "country", "--zone", "ZZZ"]) == 2
    assert (
        main(
            [
                "intensity",
                "--source",
                "electricitymaps",
                "--base-url",
                "http://127.0.0.1:9/v3",
                "--timeout",
                "0.5",
                "--zone",
                "DE",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "carbonedge: error:" in err


def test_monitor_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--"]) == 2
    assert "no command" in capsys.readouterr().err


@pytest.mark.slow
def test_monitor_reports_energy_and_returns_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "monitor",
            "--json",
            "--intensity",
            "530",
            "--pue",
            "1.2",
            "--measure-power-secs",
            "0.5",
            "--",
            sys.executable,
            "-c",
            "import sys, time; time.sleep(0.8); sys.exit(3)",
        ]
    )
    assert code == 3
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 3 and out["duration_s"] > 0.7
    assert out["energy_kwh"] > 0 and out["method"]["cpu"]
    assert out["carbon_g"] == pytest.approx(out["energy_kwh"] * 530 * 1.2)
    assert out["intensity_source"] == "static(--intensity)"
