"""Emission factors per ENTSO-E production type, in gCO2eq per kWh generated, by named set.

Hourly average intensity of a zone (production-based, no imports or exports, not marginal):
``I = sum_f(G_f x F_f) / sum_f(G_f)`` with ``G_f`` the generation of type ``f`` (MW over the
hour) and ``F_f`` its factor. Two sets, chosen by name:

- ``lifecycle``: IPCC AR5 WG3 Annex III (Schloemer et al. 2014), Table A.III.2, median
  lifecycle emissions; fuels AR5 leaves out (oil, unknown) take the defaults Electricity Maps
  publishes. Lifecycle accounting is what Electricity Maps (and Ember since 2023) report.
- ``direct``: combustion at the stack only (renewables, nuclear and biomass are 0), the direct
  defaults Electricity Maps publishes; closer to CO2-only statistics (EEA, older Ember data).

Both sets are the published values typed here with their sources, not copied files.

Every ENTSO-E type must have a factor in every set: a generation column with an unknown type
is an error at build time (:mod:`carbonedge.grid.build`), never a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from carbonedge.errors import ConfigError

__all__ = ["FACTOR_SETS", "PRODUCTION_TYPES", "FactorSet", "factor_set"]

PRODUCTION_TYPES: Final = (
    "Biomass",
    "Fossil Brown coal/Lignite",
    "Fossil Coal-derived gas",
    "Fossil Gas",
    "Fossil Hard coal",
    "Fossil Oil",
    "Fossil Oil shale",
    "Fossil Peat",
    "Geothermal",
    "Hydro Pumped Storage",
    "Hydro Run-of-river and poundage",
    "Hydro Water Reservoir",
    "Marine",
    "Nuclear",
    "Other",
    "Other renewable",
    "Solar",
    "Waste",
    "Wind Offshore",
    "Wind Onshore",
)
"""ENTSO-E Transparency production types (document 'Actual Generation per Production Type')."""


@dataclass(frozen=True)
class FactorSet:
    """``g_per_kwh`` maps every :data:`PRODUCTION_TYPES` entry to gCO2eq/kWh generated."""

    name: str
    description: str
    citation: str
    g_per_kwh: Mapping[str, float]

    def __post_init__(self) -> None:
        missing = sorted(set(PRODUCTION_TYPES) - set(self.g_per_kwh))
        if missing:
            raise ConfigError(f"factor set {self.name!r}: no factor for {missing}")


def _by_fuel(
    coal: float, gas: float, oil: float, biomass: float, unknown: float, **other: float
) -> MappingProxyType[str, float]:
    """Factors per ENTSO-E type from per-fuel values: lignite, peat and oil shale count as
    their fuel family, waste and 'other renewable' as biomass, 'other' as unknown."""
    return MappingProxyType(
        {
            "Biomass": biomass,
            "Fossil Brown coal/Lignite": coal,
            "Fossil Coal-derived gas": coal,
            "Fossil Gas": gas,
            "Fossil Hard coal": coal,
            "Fossil Oil": oil,
            "Fossil Oil shale": oil,
            "Fossil Peat": coal,
            "Geothermal": other["geothermal"],
            "Hydro Pumped Storage": other["hydro"],
            "Hydro Run-of-river and poundage": other["hydro"],
            "Hydro Water Reservoir": other["hydro"],
            "Marine": other["ocean"],
            "Nuclear": other["nuclear"],
            "Other": unknown,
            "Other renewable": biomass,
            "Solar": other["solar"],
            "Waste": biomass,
            "Wind Offshore": other["wind_offshore"],
            "Wind Onshore": other["wind_onshore"],
        }
    )


def _lifecycle() -> FactorSet:
    return FactorSet(
        "lifecycle",
        "lifecycle gCO2eq/kWh: IPCC AR5 medians; oil and unknown as Electricity Maps' defaults",
        "IPCC AR5 WG3 Annex III (Schloemer et al. 2014), Table A.III.2, medians: coal "
        "(pulverised) 820, gas (combined cycle) 490, biomass (dedicated) 230, geothermal 38, "
        "hydropower 24, nuclear 12, ocean 17, wind onshore 11, offshore 12; solar 45 = mean of "
        "the PV medians rooftop 41 and utility 48. AR5 has no oil or unknown value: oil 650 "
        "(UK POST 2014) and unknown 700, the defaults Electricity Maps publishes",
        _by_fuel(
            coal=820.0,
            gas=490.0,
            oil=650.0,
            biomass=230.0,
            unknown=700.0,
            geothermal=38.0,
            hydro=24.0,
            ocean=17.0,
            nuclear=12.0,
            solar=45.0,
            wind_offshore=12.0,
            wind_onshore=11.0,
        ),
    )


def _direct() -> FactorSet:
    return FactorSet(
        "direct",
        "direct (combustion) gCO2/kWh: fossil fuels only; renewables, nuclear, biomass 0",
        "combustion-only defaults as Electricity Maps publishes them: coal 760 and gas 370 "
        "(IPCC 2014), oil 406 (EIA 2020 / BEIS 2021), unknown 575 (an assumed thermal mix); "
        "biomass and waste 0 (biogenic CO2, BEIS 2021), every non-combustion type 0. One "
        "coal value for every zone: lignite-heavy zones (DE, PL, CZ, BG, GR) are under-counted "
        "(zone-specific EU-ETS values for lignite are about 1,000-1,100)",
        _by_fuel(
            coal=760.0,
            gas=370.0,
            oil=406.0,
            biomass=0.0,
            unknown=575.0,
            geothermal=0.0,
            hydro=0.0,
            ocean=0.0,
            nuclear=0.0,
            solar=0.0,
            wind_offshore=0.0,
            wind_onshore=0.0,
        ),
    )


FACTOR_SETS: Final[Mapping[str, FactorSet]] = MappingProxyType(
    {s.name: s for s in (_lifecycle(), _direct())}
)
"""The named factor sets: ``lifecycle`` (the default) and ``direct``."""


def factor_set(name: str) -> FactorSet:
    """The factor set called ``name``; ConfigError naming the known sets otherwise."""
    try:
        return FACTOR_SETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown emission-factor set {name!r}; known: {', '.join(FACTOR_SETS)}"
        ) from None
