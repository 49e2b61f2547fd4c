"""Each node's grid carbon intensity from its fleet description (paper IV.A.1, Eq. 2's I)."""

from __future__ import annotations

from carbonedge.carbon import CountryMixIntensity, IntensityReading, StaticIntensity
from carbonedge.errors import ConfigError
from carbonedge.fleet.spec import FleetSpec

__all__ = ["node_intensities"]


def node_intensities(spec: FleetSpec) -> dict[str, IntensityReading]:
    """Each node's intensity (gCO2/kWh): the fleet file's static value, else the yearly average
    of its zone from CodeCarbon's bundled energy mix. Every reading names its source."""
    static = StaticIntensity(
        {n.name: n.intensity_g_per_kwh for n in spec.nodes if n.intensity_g_per_kwh is not None},
        source="static (fleet spec)",
    )
    country = CountryMixIntensity()
    out = {}
    for n in spec.nodes:
        if n.intensity_g_per_kwh is not None:
            out[n.name] = static.intensity(n.name)
        elif n.zone is not None:
            out[n.name] = country.intensity(n.zone)
        else:  # load_fleet requires one of them; a hand-built spec may not
            raise ConfigError(f"{spec.source}: node {n.name!r} has neither intensity nor zone")
    return out
