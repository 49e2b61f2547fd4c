"""The real cache (ENTSO-E, 2017-2020) that ``make setup`` builds, through the CLI as a user
runs it: zones, a zone-year's statistics and heatmap, forecast errors, and no network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from carbonedge.cli.main import main
from carbonedge.grid import GridData


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_every_zone_year_is_complete_and_finite(real_grid: GridData) -> None:
    assert len(real_grid.zones(2019)) >= 25
    for zone in real_grid.zones():
        for year in real_grid.years(zone):
            for factors in real_grid.factor_sets:
                gy = real_grid.year(zone, year, factors)
                assert len(gy.values) == (8784 if year % 4 == 0 else 8760)
                assert np.all(np.isfinite(gy.values)), (zone, year)
                assert gy.values.min() >= 0 and gy.values.max() <= 1500, (zone, year)
            direct, life = (real_grid.year(zone, year, f).values for f in ("direct", "lifecycle"))
            assert np.all(direct <= life + 1e-3)


def test_the_grids_differ_as_their_fuels_do(real_grid: GridData) -> None:
    mean = {z: float(real_grid.year(z, 2019).values.mean()) for z in ("PL", "DE", "FR", "CH")}
    assert mean["PL"] > mean["DE"] > mean["FR"] > mean["CH"]  # coal > mixed > nuclear > hydro
    de = real_grid.year("DE", 2019).values.reshape(365, 24)
    assert float(np.mean(de.max(axis=1) / de.min(axis=1))) > 1.2  # it moves within a day


def test_cli_zones_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    zones = _json(capsys, "grid", "zones", "--year", "2019", "--json")
    assert isinstance(zones, list) and len(zones) >= 25
    assert {"DE", "FR", "PL"} <= {z["zone"] for z in zones}
    png = tmp_path / "de.png"
    show = _json(capsys, "grid", "show", "DE", "--year", "2019", "--json", "--plot", str(png))
    assert isinstance(show, dict)
    for key in ("zone", "year", "hours", "mean_g_per_kwh", "p5_g_per_kwh", "p95_g_per_kwh"):
        assert key in show
    assert show["factors"] == "lifecycle" and show["hours"] == 8760
    assert show["p5_g_per_kwh"] < show["mean_g_per_kwh"] < show["p95_g_per_kwh"]
    assert "ENTSO-E" in show["attribution"] and "production-based" in show["kind"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["grid", "show", "XX", "--year", "2019"]) == 2
    assert "no ENTSO-E data for zone 'XX'" in capsys.readouterr().err
    assert main(["grid", "show", "DE", "--year", "2016"]) == 2
    assert "no ENTSO-E data for zone DE in 2016; years: 2017, 2018, 2019, 2020" in (
        capsys.readouterr().err
    )


def test_cli_forecast_scores_every_forecaster(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, "grid", "forecast", "PL", "DK", "--year", "2019", "--json")
    assert isinstance(rows, list) and [r["zone"] for r in rows] == ["PL", "DK"]
    for r in rows:
        assert r["days"] == 365  # 2018 gives January its history
        errors = {n: e["mape_pct"] for n, e in r["forecasters"].items()}
        assert set(errors) == {"persistence", "daily", "weekly", "ar"}
        assert all(0 < e < 100 for e in errors.values())


def _offline() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _offline(), reason="unshare -n is not permitted here")
def test_show_needs_no_network(real_grid: GridData) -> None:
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "carbonedge.cli.main", "grid", "--cache",
         str(real_grid.path), "show", "DE", "--year", "2019", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["zone"] == "DE"
