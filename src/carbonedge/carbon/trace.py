"""A carbon-intensity trace from a CSV file: ``timestamp, zone, gco2_per_kwh``.

Timestamps are ISO 8601 (``2024-05-01T12:00:00Z``; naive values are taken as UTC). Between
two points the value is held (``step``) or interpolated (``linear``); after the last point the
last value holds; before the first point is an error.

The file must be UTF-8 (a byte-order mark, as spreadsheet programs write, is dropped) and at most
:data:`MAX_TRACE_BYTES`; column names may carry surrounding spaces. Every problem is an
:class:`IntensityError` naming the file, the line and the field.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from carbonedge.carbon.errors import IntensityError
from carbonedge.carbon.intensity import MAX_G_PER_KWH, IntensityReading, utc
from carbonedge.validation import read_text_file, shown

Interpolation = Literal["step", "linear"]
REQUIRED_COLUMNS = ("timestamp", "zone", "gco2_per_kwh")

MAX_TRACE_BYTES = 64 * 1024 * 1024
"""Largest trace file read, in bytes (64 MiB: about a year of 5-minute points for 15 zones).
A larger file is refused before it is read whole."""


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
        text = read_text_file(
            self.path, "intensity trace", max_bytes=MAX_TRACE_BYTES, error=IntensityError
        )
        try:
            points = self._parse(text)
        except csv.Error as exc:
            raise IntensityError(f"{self.path}: not a valid CSV file: {exc}") from None
        if not points:
            raise IntensityError(f"{self.path}: the trace has no rows")
        for zone, series in points.items():
            ordered = sorted(series.items())
            self._times[zone] = [t for t, _ in ordered]
            self._values[zone] = [v for _, v in ordered]

    def _parse(self, text: str) -> dict[str, dict[float, float]]:
        points: dict[str, dict[float, float]] = {}
        reader = csv.DictReader(io.StringIO(text, newline=""))
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in reader.fieldnames]
        if missing:
            raise IntensityError(
                f"{self.path}: missing column(s) {missing}; need {list(REQUIRED_COLUMNS)}"
            )
        for row in reader:
            line = reader.line_num
            zone = (row["zone"] or "").strip()
            if not zone:
                raise IntensityError(f"{self.path}:{line}: field 'zone' is empty")
            stamp = (row["timestamp"] or "").strip()
            try:
                t = utc(datetime.fromisoformat(stamp)).timestamp()
            except (ValueError, OverflowError):
                raise IntensityError(
                    f"{self.path}:{line}: field 'timestamp' is not ISO 8601: {shown(stamp)}"
                ) from None
            raw = (row["gco2_per_kwh"] or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise IntensityError(
                    f"{self.path}:{line}: field 'gco2_per_kwh' is not a number: {shown(raw)}"
                ) from None
            if not (math.isfinite(value) and 0 <= value <= MAX_G_PER_KWH):
                raise IntensityError(
                    f"{self.path}:{line}: field 'gco2_per_kwh' must be >= 0 and "
                    f"<= {MAX_G_PER_KWH:g}, got {value}"
                )
            series = points.setdefault(zone, {})
            if t in series:
                raise IntensityError(
                    f"{self.path}:{line}: duplicate timestamp {stamp} for {shown(zone)}"
                )
            series[t] = value
        return points

    def points(self, zone: str) -> list[tuple[datetime, float]]:
        """The trace's points for ``zone`` in time order: (UTC time, gCO2/kWh)."""
        if zone not in self._times:
            raise IntensityError(f"{self.path}: no rows for zone {zone!r}; zones: {self.zones}")
        return [
            (datetime.fromtimestamp(t, UTC), v)
            for t, v in zip(self._times[zone], self._values[zone], strict=True)
        ]

    @property
    def zones(self) -> list[str]:
        """The zones in the trace, sorted."""
        return sorted(self._times)

    def history(self, zone: str, at: datetime, hours: int) -> npt.NDArray[np.float64]:
        """The trace's values at the start of each UTC hour, up to ``hours`` of them, ending with
        the hour that holds ``at`` and starting no earlier than the first point (for
        forecasters: the past only)."""
        times = self._times.get(zone)
        if times is None:
            raise IntensityError(f"{self.path}: no rows for zone {zone!r}; zones: {self.zones}")
        now_h = math.floor(utc(at).timestamp() / 3600)
        first_h = max(math.ceil(times[0] / 3600), now_h - hours + 1)
        stamps = [datetime.fromtimestamp(h * 3600, UTC) for h in range(first_h, now_h + 1)]
        return np.array([self.intensity(zone, t).g_per_kwh for t in stamps], dtype=np.float64)

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
