"""Building the cache from messy generation data: time zones, DST, 15-minute and hourly files,
negative values, gaps of a type and of whole hours, unknown types, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonedge.errors import DataError
from carbonedge.grid import FACTOR_SETS, GridData, build_cache
from carbonedge.grid.build import fill_missing, hourly_intensity
from carbonedge.grid.factors import PRODUCTION_TYPES

from .conftest import DIRECT_G, LIFECYCLE_G, WIND_MW, write_zone


def test_every_set_has_a_factor_for_every_entsoe_type() -> None:
    for fs in FACTOR_SETS.values():
        assert set(fs.g_per_kwh) == set(PRODUCTION_TYPES)
        assert all(0 <= g <= 1500 for g in fs.g_per_kwh.values())
    direct, life = FACTOR_SETS["direct"].g_per_kwh, FACTOR_SETS["lifecycle"].g_per_kwh
    assert direct["Nuclear"] == direct["Wind Onshore"] == direct["Solar"] == 0.0
    assert all(life[t] >= direct[t] for t in PRODUCTION_TYPES)  # lifecycle adds, never removes


def test_hourly_intensity_is_the_generation_weighted_mean() -> None:
    gen = np.array([[600.0, 400.0], [0.0, 100.0], [0.0, 0.0]])  # (H, T)
    out = hourly_intensity(
        gen, ["Fossil Hard coal", "Wind Onshore"], dict(FACTOR_SETS["lifecycle"].g_per_kwh)
    )
    assert out[0] == pytest.approx((600 * 820 + 400 * 11) / 1000)
    assert out[1] == pytest.approx(11.0)
    assert np.isnan(out[2])  # no generation: missing, to be filled


def test_fill_missing_linear_short_gaps_and_profile_long_ones() -> None:
    hours = np.arange(24 * 40)
    values = 100.0 + 50.0 * np.sin(2 * np.pi * hours / 24)
    gappy = values.copy()
    gappy[100:103] = np.nan  # short: linear
    gappy[300 : 300 + 30] = np.nan  # long: the same hour of nearby days
    filled, codes = fill_missing(gappy)
    assert not np.isnan(filled).any()
    assert (codes[100:103] == 1).all() and (codes[300:330] == 2).all()
    assert (codes[:100] == 0).all()
    left, right = gappy[99], gappy[103]
    assert filled[101] == pytest.approx(left + (right - left) * 2 / 4)
    assert filled[300:330] == pytest.approx(values[300:330], abs=1e-6)  # a pure daily cycle
    with pytest.raises(ValueError):
        fill_missing(np.full(10, np.nan))


def test_a_clean_15_minute_file_across_dst_gives_every_utc_hour(tmp_path: Path) -> None:
    write_zone(tmp_path, "XX", 2019)
    write_zone(tmp_path, "XX", 2020)
    meta = build_cache(tmp_path / "grid.npz", tmp_path)
    data = GridData.open(tmp_path / "grid.npz")
    assert data.zones() == ["XX"] and data.years("XX") == [2019, 2020]
    y19 = data.year("XX", 2019)
    assert len(y19.values) == 8760 and len(data.year("XX", 2020).values) == 8784
    assert y19.values == pytest.approx(LIFECYCLE_G)
    assert data.year("XX", 2019, "direct").values == pytest.approx(DIRECT_G)
    q = meta["years"]["XX/2019"]
    # local midnight is 23:00 UTC the day before: 2019's last UTC hour is in the 2020 file
    assert q["measured"] == 8760 and q["resolution_min"] == 15
    assert y19.start.isoformat() == "2019-01-01T00:00:00+00:00"


def test_hourly_and_half_hourly_files_and_the_year_edge(tmp_path: Path) -> None:
    write_zone(tmp_path, "HH", 2019, freq="30min", tz="Europe/London")
    write_zone(tmp_path, "HO", 2019, freq="1h", tz="Europe/Athens")  # UTC+2: two edge hours
    build_cache(tmp_path / "grid.npz", tmp_path)
    data = GridData.open(tmp_path / "grid.npz")
    assert data.year("HH", 2019).stats()["hours_measured"] == 8760
    athens = data.year("HO", 2019)
    assert athens.stats()["hours_measured"] == 8758  # 22:00 and 23:00 UTC of Dec 31: no file
    assert athens.values[-2:] == pytest.approx(LIFECYCLE_G)  # held from the last hour


def test_negatives_type_gaps_and_missing_hours_are_counted(tmp_path: Path) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["Hydro Pumped Storage"] = 0.0
        frame.iloc[400:480, frame.columns.get_loc("Hydro Pumped Storage")] = -500.0  # pumping
        frame.iloc[1000:1004, frame.columns.get_loc("Fossil Hard coal")] = np.nan  # one hour
        frame.iloc[2000:2040, frame.columns.get_loc("Fossil Hard coal")] = np.nan  # 10 hours
        return frame.drop(frame.index[5000:5040])  # 10 hours with no row at all

    write_zone(tmp_path, "NG", 2019, edit=edit)
    meta = build_cache(tmp_path / "grid.npz", tmp_path)
    q = meta["years"]["NG/2019"]
    assert q["negative_clipped"] == 80
    assert q["type_interpolated"] == 1 + 3  # the 1-hour gap, and the first 3 h of the 10
    assert q["type_zeroed"] == 7  # the rest: not reported, taken as 0
    # 10 hours from the same hour of nearby days; 1 held: Dec 31 23:00 UTC (no 2020 file)
    assert q["filled_profile"] == 10 and q["filled_linear"] == 1
    year = GridData.open(tmp_path / "grid.npz").year("NG", 2019)
    assert not np.isnan(year.values).any()
    assert year.values.max() == pytest.approx(LIFECYCLE_G)  # pumping is not generation
    assert year.values.min() == pytest.approx(11.0)  # hours with wind only: 11 g/kWh
    assert year.values[year.fill == 2] == pytest.approx(LIFECYCLE_G)


def test_a_zone_that_changes_types_between_years(tmp_path: Path) -> None:
    write_zone(tmp_path, "CH", 2019)
    write_zone(
        tmp_path, "CH", 2020, edit=lambda f: f.rename(columns={"Fossil Hard coal": "Nuclear"})
    )
    meta = build_cache(tmp_path / "grid.npz", tmp_path)
    # 2019's last UTC hour is local 2020: it comes from the 2020 file, with its types
    assert meta["years"]["CH/2019"]["types"] == ["Fossil Hard coal", "Nuclear", "Wind Onshore"]
    assert meta["years"]["CH/2019"]["type_zeroed"] == 8759 + 1  # nuclear before, coal after
    assert meta["years"]["CH/2020"]["types"] == ["Nuclear", "Wind Onshore"]
    y20 = GridData.open(tmp_path / "grid.npz").year("CH", 2020)
    assert np.median(y20.values) == pytest.approx((600 * 12 + WIND_MW * 11) / 1000)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    write_zone(
        tmp_path, "UK", 2019, edit=lambda f: f.rename(columns={"Wind Onshore": "Unobtainium"})
    )
    with pytest.raises(DataError, match=r"2019_UK_gen_entsoe.parquet.*Unobtainium"):
        build_cache(tmp_path / "grid.npz", tmp_path)
    (tmp_path / "2019_UK_gen_entsoe.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"2019_UK_gen_entsoe.parquet: cannot read"):
        build_cache(tmp_path / "grid.npz", tmp_path)
    (tmp_path / "2019_UK_gen_entsoe.parquet").unlink()
    write_zone(tmp_path, "ZZ", 2019, edit=lambda f: f * 0.0)
    with pytest.raises(DataError, match=r"2019_ZZ_gen_entsoe.parquet: no hour with generation"):
        build_cache(tmp_path / "grid.npz", tmp_path)
    with pytest.raises(DataError, match=r"no YYYY_CC_gen_entsoe\.parquet"):
        (tmp_path / "empty").mkdir()
        build_cache(tmp_path / "grid.npz", tmp_path / "empty")


def test_a_missing_or_corrupt_cache_says_how_to_rebuild(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no grid cache; build it with `carbonedge grid build`"):
        GridData.open(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match=r"bad.npz: corrupt grid cache.*carbonedge grid build"):
        GridData.open(bad)
    write_zone(tmp_path, "XX", 2019)
    build_cache(tmp_path / "grid.npz", tmp_path)
    data = GridData.open(tmp_path / "grid.npz")
    with pytest.raises(DataError, match=r"no ENTSO-E data for zone 'QQ'; zones: XX"):
        data.year("QQ", 2019)
    with pytest.raises(DataError, match=r"no ENTSO-E data for zone XX in 2017; years: 2019"):
        data.year("XX", 2017)
    with pytest.raises(DataError, match=r"unknown emission-factor set 'marginal'"):
        data.year("XX", 2019, "marginal")
