"""Embodied carbon: a device's manufacturing footprint charged to the time a node occupies it.

Paper Section V.A lists "embodied carbon accounting" as future work. The model is the ``M``
term of the Green Software Foundation's Software Carbon Intensity specification (SCI, ISO/IEC
21031:2024), ``M = TE x TS x RS``: total embodied emissions, times the share of the device's
service life that the work reserved, times the share of the device it reserved. Here

    embodied_g = embodied_kgco2e x 1000 x busy_s / (lifetime_years x 365.25 x 86400) x share

with ``embodied_kgco2e`` in kgCO2e (cradle-to-gate or cradle-to-grave, as the source states),
``lifetime_years`` in Julian years of wall-clock service life, ``busy_s`` in seconds of
occupancy and ``share`` the fraction of the device the node holds (e.g. its CPU quota over
the device's cores), 0..1. The result is in gCO2e.

Limits: amortisation is linear over wall-clock life, so idle time in a device's life is
charged to nobody and a device that outlives ``lifetime_years`` keeps being charged; it says
nothing about how the footprint was measured (that is ``source``'s job). Pure arithmetic: no
I/O, microseconds per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from carbonedge.errors import CarbonEdgeError

SECONDS_PER_YEAR = 365.25 * 86400.0  # a Julian year, s


class EmbodiedError(CarbonEdgeError, ValueError):
    """An embodied-carbon input is out of range (non-positive footprint or life, share > 1)."""


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EmbodiedError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise EmbodiedError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EmbodiedProfile:
    """A device's embodied footprint ``embodied_kgco2e`` (kgCO2e) over ``lifetime_years``.

    ``source`` says where the footprint came from (a manufacturer's product carbon footprint,
    an LCA study, or the user's own figure); results carry it so a reader can judge them.
    """

    embodied_kgco2e: float
    lifetime_years: float
    source: str

    def __post_init__(self) -> None:
        _positive("embodied_kgco2e", self.embodied_kgco2e)
        _positive("lifetime_years", self.lifetime_years)
        if not self.source.strip():
            raise EmbodiedError("embodied profile needs a non-empty source")

    @property
    def lifetime_s(self) -> float:
        """Service life in seconds (Julian years)."""
        return self.lifetime_years * SECONDS_PER_YEAR

    @property
    def g_per_s(self) -> float:
        """Embodied carbon per second of whole-device occupancy, gCO2e/s (SCI ``TE / EL``)."""
        return self.embodied_kgco2e * 1000.0 / self.lifetime_s


def embodied_g(profile: EmbodiedProfile, busy_s: float, share: float = 1.0) -> float:
    """Embodied carbon (gCO2e) charged for ``busy_s`` seconds holding ``share`` of the device.

    SCI's ``M = TE x TS x RS`` with ``TS = busy_s / lifetime_s`` and ``RS = share`` (0..1).
    Raises :class:`EmbodiedError` for a negative or non-finite ``busy_s`` or a share outside
    0..1.
    """
    if not math.isfinite(busy_s) or busy_s < 0:
        raise EmbodiedError(f"busy_s must be a finite number >= 0, got {busy_s!r}")
    if not math.isfinite(share) or not 0.0 <= share <= 1.0:
        raise EmbodiedError(f"share must be between 0 and 1, got {share!r}")
    return profile.embodied_kgco2e * 1000.0 * busy_s / profile.lifetime_s * share
