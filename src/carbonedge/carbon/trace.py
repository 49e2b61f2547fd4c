"""A carbon-intensity trace from a CSV file: ``timestamp, zone, gco2_per_kwh``.

Timestamps are ISO 8601 (``2024-05-01T12:00:00Z``; naive values are taken as UTC). Between
two points the value is held (``step``) or interpolated (``linear``); after the last point the
last value holds; before the first point is an error.
"""

from __future__ import annotations

import bisect
import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Literal

from carbonedge.carbon.errors import IntensityError
from carbonedge.carbon.intensity import IntensityReading, utc

Interpolation = Literal["step", "linear"]
REQUIRED_COLUMNS = ("timestamp", "zone", "gco2_per_kwh")


class CsvTrace:
    """An :class:`~carbonedge.carbon.intensity.IntensitySource` over a CSV trace file."""

    def __init__(self, path: str | Path, interpolation: Interpolation = "step") -> None:
        if interpolation not in ("step", "linear"):
            raise IntensityError(f"interpolation must be 'step' or 'linear', got {interpolation!r}")
        self.path = Path(path)
        self.interpolation: Interpolation = interpolation
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[float]] = {}
        self._load()

    def _load(self) -> None:
        try:
            handle = self.path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise IntensityError(f"{self.path}: cannot open intensity trace: {exc}") from exc
        points: dict[str, dict[float, float]] = {}
        with handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise IntensityError(
                    f"{self.path}: missing column(s) {missing}; need {list(REQUIRED_COLUMNS)}"
                )
            for row in reader:
                line = reader.line_num
                zone = (row["zone"] or "").strip()
                if not zone:
                    raise IntensityError(f"{self.path}:{line}: field 'zone' is empty")
                try:
                    t = utc(datetime.fromisoformat((row["timestamp"] or "").strip())).timestamp()
                except ValueError as exc:
                    raise IntensityError(
                        f"{self.path}:{line}: field 'timestamp' is not ISO 8601: "
                        f"{row['timestamp']!r}"
                    ) from exc
                try:
                    value = float(row["gco2_per_kwh"] or "")
                except ValueError as exc:
                    raise IntensityError(
                        f"{self.path}:{line}: field 'gco2_per_kwh' is not a number: "
                        f"{row['gco2_per_kwh']!r}"
                    ) from exc
                if not math.isfinite(value) or value < 0:
                    raise IntensityError(
                        f"{self.path}:{line}: field 'gco2_per_kwh' must be >= 0, got {value}"
                    )
                series = points.setdefault(zone, {})
                if t in series:
                    raise IntensityError(
                        f"{self.path}:{line}: duplicate timestamp {row['timestamp']} for {zone}"
                    )
                series[t] = value
        if not points:
            raise IntensityError(f"{self.path}: the trace has no rows")
        for zone, series in points.items():
            ordered = sorted(series.items())
            self._times[zone] = [t for t, _ in ordered]
            self._values[zone] = [v for _, v in ordered]

    @property
    def zones(self) -> list[str]:
        """The zones in the trace, sorted."""
        return sorted(self._times)

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """The trace's value for ``zone`` at ``at`` (UTC; None = now)."""
        when = utc(at)
        times = self._times.get(zone)
        if times is None:
            raise IntensityError(f"{self.path}: no rows for zone {zone!r}; zones: {self.zones}")
        values = self._values[zone]
        t = when.timestamp()
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            first = datetime.fromtimestamp(times[0]).astimezone().isoformat()
            raise IntensityError(
                f"{self.path}: {when.isoformat()} is before the first point for {zone} ({first})"
            )
        value = values[i]
        if self.interpolation == "linear" and i + 1 < len(times):
            frac = (t - times[i]) / (times[i + 1] - times[i])
            value = values[i] + frac * (values[i + 1] - values[i])
        return IntensityReading(value, zone, when, f"csv:{self.path.name}:{self.interpolation}")
