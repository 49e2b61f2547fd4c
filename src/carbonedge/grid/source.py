"""The intensity source ``entsoe``: a zone's real hourly intensity from the grid cache.

``intensity(zone, at)`` answers the value of the UTC hour that holds ``at``. With ``year``
set, a time outside that year is read at the same month, day and hour of ``year`` (29 February
as the 28th), so that a server running today, or a replay clock, follows a real year of data;
without it, ``at`` must lie in a year the cache holds. :meth:`history` gives a forecaster the
hours up to ``at`` (the same mapping), never one after.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from carbonedge.carbon.errors import IntensityError
from carbonedge.carbon.intensity import IntensityReading, utc
from carbonedge.errors import DataError
from carbonedge.grid.data import GridData, hour_of

__all__ = ["EntsoeIntensity"]

_HOUR_S = 3600


class EntsoeIntensity:
    """An :class:`~carbonedge.carbon.IntensitySource` over :class:`GridData` (see module doc)."""

    def __init__(
        self,
        data: GridData | None = None,
        *,
        year: int | None = None,
        factors: str = "lifecycle",
    ) -> None:
        try:
            self.data = data or GridData.open()
        except DataError as exc:
            raise IntensityError(str(exc)) from None
        if factors not in self.data.factor_sets:
            raise IntensityError(
                f"unknown emission-factor set {factors!r}; known: "
                f"{', '.join(self.data.factor_sets)}"
            )
        self.year = year
        self.factors = factors

    def data_hour(self, zone: str, at: datetime) -> int:
        """The cache hour (hours since the epoch) that ``at`` reads for ``zone``."""
        when = utc(at)
        try:
            years = self.data.years(zone)
        except DataError as exc:
            raise IntensityError(str(exc)) from None
        if self.year is None:
            if when.year not in years:
                raise IntensityError(
                    f"entsoe: no data for {zone} in {when.year} (years: "
                    f"{', '.join(map(str, years))}); give a year to replay one"
                )
            return hour_of(when)
        if self.year not in years:
            raise IntensityError(
                f"entsoe: no data for {zone} in {self.year}; years: {', '.join(map(str, years))}"
            )
        if when.year == self.year:
            return hour_of(when)
        day = min(when.day, 28) if when.month == 2 and when.day == 29 else when.day
        mapped = datetime(self.year, when.month, day, when.hour, tzinfo=UTC)
        return hour_of(mapped)

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """The zone's average intensity (gCO2/kWh) in the hour that holds ``at``."""
        when = utc(at)
        h = self.data_hour(zone, when)
        value = self.data.window(zone, h, h + 1, self.factors)[0]
        hour = datetime.fromtimestamp(h * _HOUR_S, UTC)
        source = f"entsoe:{zone}:{hour:%Y-%m-%dT%H}Z:{self.factors}"
        return IntensityReading(float(value), zone, when, source)

    def history(self, zone: str, at: datetime, hours: int) -> npt.NDArray[np.float64]:
        """Up to ``hours`` hourly values ending with the hour that holds ``at`` (its data hour),
        oldest first; shorter where the cache has no earlier data."""
        return self.data.history(zone, self.data_hour(zone, at) + 1, hours, self.factors)
