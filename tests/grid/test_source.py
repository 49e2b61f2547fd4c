"""The ``entsoe`` intensity source: hours, the replayed year, history, errors; in fleet files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonedge.carbon import IntensityError
from carbonedge.engine import IntensityFeed
from carbonedge.errors import ConfigError
from carbonedge.fleet.spec import parse_fleet
from carbonedge.grid import EntsoeIntensity, GridData, build_cache

from .conftest import LIFECYCLE_G, write_zone


@pytest.fixture
def grid(tmp_path: Path) -> GridData:
    write_zone(tmp_path, "XX", 2019, edit=lambda f: f.assign(**{"Wind Onshore": range(len(f))}))
    build_cache(tmp_path / "grid.npz", tmp_path)
    return GridData.open(tmp_path / "grid.npz")


def test_reads_the_hour_and_replays_the_year(grid: GridData) -> None:
    src = EntsoeIntensity(grid, year=2019)
    at = datetime(2019, 3, 5, 13, 40, tzinfo=UTC)
    r = src.intensity("XX", at)
    assert r.at == at and r.source == "entsoe:XX:2019-03-05T13Z:lifecycle" and r.kind == "average"
    assert src.intensity("XX", datetime(2026, 3, 5, 13, 5, tzinfo=UTC)).g_per_kwh == r.g_per_kwh
    leap = src.intensity("XX", datetime(2028, 2, 29, 6, tzinfo=UTC))
    assert leap.source == "entsoe:XX:2019-02-28T06Z:lifecycle"
    history = src.history("XX", at, 5)
    assert len(history) == 5 and history[-1] == pytest.approx(r.g_per_kwh)
    assert len(src.history("XX", datetime(2019, 1, 1, 2, tzinfo=UTC), 100)) == 3  # no 2018
    assert EntsoeIntensity(grid, factors="direct").intensity("XX", at).g_per_kwh < r.g_per_kwh


def test_errors_name_the_zone_year_or_set(grid: GridData) -> None:
    with pytest.raises(IntensityError, match=r"no data for XX in 2026 \(years: 2019\)"):
        EntsoeIntensity(grid).intensity("XX", datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(IntensityError, match=r"no ENTSO-E data for zone 'YY'"):
        EntsoeIntensity(grid, year=2019).intensity("YY")
    with pytest.raises(IntensityError, match=r"no data for XX in 2018"):
        EntsoeIntensity(grid, year=2018).intensity("XX")
    with pytest.raises(IntensityError, match=r"unknown emission-factor set 'x'"):
        EntsoeIntensity(grid, factors="x")


def _spec(**intensity: object) -> object:
    node = {"name": "n", "cpu_quota": 1.0, "memory_mb": 512, "idle_w": 0.0, "max_w": 8.0,
            "intensity": {"source": "entsoe", **intensity}}  # fmt: skip
    return parse_fleet({"nodes": [node]}, "fleet.toml")


def test_fleet_files_take_entsoe_and_refuse_bad_fields(
    grid: GridData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(zone="XX", year=2019, factors="direct")
    cfg = spec.nodes[0].intensity_config  # type: ignore[attr-defined]
    assert (cfg.source, cfg.zone, cfg.year, cfg.factors) == ("entsoe", "XX", 2019, "direct")
    monkeypatch.setenv("CARBONEDGE_GRID_CACHE", str(grid.path))
    feed = IntensityFeed(spec, lambda: datetime(2026, 5, 1, 12, tzinfo=UTC))  # type: ignore[arg-type]
    reading = feed.reading("n")
    assert reading.source == "entsoe:XX:2019-05-01T12Z:direct"
    assert reading.g_per_kwh < LIFECYCLE_G
    with pytest.raises(ConfigError, match=r"fleet.toml: nodes\[0\].intensity.zone is required"):
        _spec(year=2019)
    with pytest.raises(ConfigError, match=r"intensity.year must be a year such as 2019, got '19'"):
        _spec(zone="XX", year="19")
    with pytest.raises(ConfigError, match=r"intensity.factors must be one of lifecycle, direct"):
        _spec(zone="XX", factors="marginal")
    with pytest.raises(ConfigError, match=r"node 'n': intensity source 'entsoe': .*zone 'QQ'"):
        IntensityFeed(_spec(zone="QQ", year=2019))  # type: ignore[arg-type]
    monkeypatch.setenv("CARBONEDGE_GRID_CACHE", str(grid.path.with_name("none.npz")))
    with pytest.raises(ConfigError, match=r"none.npz: no grid cache; build it"):
        IntensityFeed(spec)  # type: ignore[arg-type]
