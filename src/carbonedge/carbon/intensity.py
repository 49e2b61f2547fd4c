"""Carbon-intensity sources: the ``I_carbon`` of Eq. 2 (paper Section III.B.2).

Every source answers ``intensity(zone, at=None)`` with an :class:`IntensityReading` that says
the value (gCO2/kWh), where it came from, whether it is an average or a marginal signal and,
when a fallback value was used, why.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from carbonedge.carbon.errors import IntensityError

IntensityKind = Literal["average", "marginal"]

MAX_G_PER_KWH: Final = 10_000.0
"""Largest grid intensity any source may report, in gCO2/kWh: ten times the dirtiest grid
(coal-fired, about 1,000). A larger, negative or non-finite value is refused as bad data."""


def check_g_per_kwh(value: object, where: str) -> float:
    """``value`` as a float in gCO2/kWh, or an :class:`IntensityError` naming ``where``: it must
    be a number (not a bool or string), finite, >= 0 and at most :data:`MAX_G_PER_KWH`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        raise IntensityError(f"{where}: intensity must be a number (gCO2/kWh), got {text}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not (math.isfinite(number) and 0 <= number <= MAX_G_PER_KWH):
        raise IntensityError(
            f"{where}: intensity must be >= 0 and <= {MAX_G_PER_KWH:g} gCO2/kWh, got {number:g}"
        )
    return number


@dataclass(frozen=True)
class IntensityReading:
    """Grid carbon intensity ``g_per_kwh`` (gCO2/kWh) for ``zone`` at time ``at`` (UTC).

    ``source`` names the provider and endpoint (``static``, ``csv:<file>``,
    ``electricitymaps:latest``, ``watttime:forecast``, ...); ``fallback`` is true when the
    provider failed and a last-known or static value was used instead, with ``fallback_reason``.
    """

    g_per_kwh: float
    zone: str
    at: datetime
    source: str
    kind: IntensityKind = "average"
    fallback: bool = False
    fallback_reason: str | None = None


class IntensitySource(Protocol):
    """Anything that gives the carbon intensity of a zone at a time (None = now)."""

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """Return the intensity of ``zone`` at ``at`` (UTC; ``None`` means now)."""
        ...


def utc(at: datetime | None) -> datetime:
    """``at`` as an aware UTC datetime (naive values are taken as UTC); ``None`` -> now."""
    if at is None:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class StaticIntensity:
    """Fixed values per zone or node (the paper's static scenarios, Section IV.A.1).

    ``values`` maps a zone (or node name) to gCO2/kWh; ``default`` answers other zones.
    """

    def __init__(
        self,
        values: Mapping[str, float] | None = None,
        default: float | None = None,
        source: str = "static",
        kind: IntensityKind = "average",
    ) -> None:
        self._values = dict(values or {})
        for zone, value in [*self._values.items(), ("default", default)]:
            if value is not None:
                check_g_per_kwh(value, f"static intensity for {zone!r}")
        self._default = default
        self._source = source
        self._kind: IntensityKind = kind

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """The configured value for ``zone`` (or the default)."""
        value = self._values.get(zone, self._default)
        if value is None:
            raise IntensityError(
                f"no static intensity for zone {zone!r}; known: {sorted(self._values)}"
            )
        return IntensityReading(value, zone, utc(at), self._source, self._kind)


def _codecarbon_data_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")  # locate without importing the tracker
    if spec is None or not spec.submodule_search_locations:
        raise IntensityError("codecarbon is not installed; its country data is unavailable")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "private_infra"


class CountryMixIntensity:
    """Yearly average intensity per country from the data CodeCarbon ships.

    Zone is a 3-letter ISO code (``FRA``, ``USA``); ``WORLD`` gives CodeCarbon's world average.
    Values come from ``global_energy_mix.json`` (field ``carbon_intensity``, gCO2/kWh) and
    ``carbon_intensity_per_source.json`` (``world_average``).
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._dir = data_dir
        self._mix: dict[str, Any] | None = None
        self._world: float | None = None

    def _load(self) -> tuple[dict[str, Any], float]:
        if self._mix is None or self._world is None:
            folder = self._dir or _codecarbon_data_dir()
            try:
                self._mix = json.loads((folder / "global_energy_mix.json").read_text())
                per_source = json.loads((folder / "carbon_intensity_per_source.json").read_text())
                self._world = float(per_source["world_average"])
            except (OSError, ValueError, KeyError) as exc:
                raise IntensityError(f"cannot read CodeCarbon's data in {folder}: {exc}") from exc
        return self._mix, self._world

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """The country's yearly average (gCO2/kWh) from CodeCarbon's bundled energy mix."""
        mix, world = self._load()
        code = zone.upper()
        if code == "WORLD":
            return IntensityReading(world, "WORLD", utc(at), "codecarbon:world-average")
        entry = mix.get(code)
        if entry is None or entry.get("carbon_intensity") is None:
            raise IntensityError(
                f"country {zone!r} not in CodeCarbon's global_energy_mix.json "
                "(use a 3-letter ISO code such as FRA, USA, DEU, or WORLD)"
            )
        year = entry.get("year", "?")
        source = f"codecarbon:global_energy_mix({year})"
        return IntensityReading(float(entry["carbon_intensity"]), code, utc(at), source)
