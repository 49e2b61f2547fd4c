"""``carbonedge sensors`` end to end, on fixture trees and on this machine.

Fixture trees are laid out as the reader tests cite (kernel powercap.rst, kernel
hwmon/ina3221.rst with NVIDIA's Jetson Linux guide, a real Pi 5's ``vcgencmd pmic_read_adc``).
This development machine has no RAPL and no GPU: the command must say so and show the fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonedge.carbon.sensors.fixtures import write_jetson_iio, write_pi5, write_rapl
from carbonedge.cli.main import main


def test_pi5_fixture_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_pi5(tmp_path)
    assert main(["sensors", "--root", str(tmp_path), "--duration", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chosen"] == ["pi5-pmic"]
    probes = {p["method"]: p for p in out["probes"]}
    assert set(probes) == {"ina3221", "pi5-pmic", "rapl", "nvml", "power-profile", "codecarbon"}
    assert "no powercap directory" in probes["rapl"]["detail"]
    r = out["readings"]["pi5-pmic"]
    assert r["method"] == {"cpu": "pi5-pmic", "gpu": "included-in-cpu", "ram": "pi5-pmic"}
    assert r["mean_power_w"]["cpu"] == pytest.approx(1.7915, abs=1e-3)  # V x I, by hand
    assert r["rails_mean_w"]["pi5-pmic:VDD_CORE"] == pytest.approx(
        0.92871990 * 0.72097620, rel=1e-3
    )


def test_text_lists_every_reader_and_reads_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_rapl(tmp_path)
    write_jetson_iio(tmp_path)
    assert main(["sensors", "--root", str(tmp_path), "--duration", "0.2"]) == 0
    text = capsys.readouterr().out
    assert "a node here would measure its energy with: ina3221" in text
    assert "  rapl           yes" in text and "  ina3221        chosen" in text
    assert "ina3221: " in text and "rapl: " in text  # both read
    assert "ina3221:POM_5V_IN" in text and "rapl:package-0" in text


def test_nothing_and_the_profile_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sensors", "--root", str(tmp_path), "--duration", "0.1"]) == 1
    assert "no power sensor and no fallback" in capsys.readouterr().out
    args = ["sensors", "--root", str(tmp_path), "--duration", "0.1", "--device", "raspberry-pi-5"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "MODEL its energy (power-profile" in text and "[power-profile]" in text
    assert main(["sensors", "--idle-w", "5", "--max-w", "1", "--root", str(tmp_path)]) == 2
    assert "--idle-w" in capsys.readouterr().err


@pytest.mark.slow
def test_this_machine_says_what_it_lacks_and_reads_the_fallback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sensors", "--duration", "1", "--json"]) == 0  # CodeCarbon: ~2 s to start
    out = json.loads(capsys.readouterr().out)
    probes = {p["method"]: p for p in out["probes"]}
    if not Path("/sys/class/powercap").exists():
        assert probes["rapl"]["available"] is False
        assert "no powercap directory" in probes["rapl"]["detail"]
    if not probes["nvml"]["available"] and not probes["rapl"]["available"]:
        assert out["chosen"] == ["codecarbon"]
        cc = out["readings"]["codecarbon"]
        assert cc["meter"] == "codecarbon" and cc["method"]["cpu"].startswith("cpu-load-model")
        assert cc["energy_j"]["cpu"] > 0
