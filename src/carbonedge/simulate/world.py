"""A scenario made concrete: hourly demand per region, true and forecast intensity per site,
round-trip times, and the fleet as the scheduler's arrays.

Demand is drawn once per scenario (Poisson counts per region-hour from the seed), so every
policy sees the same requests. Forecasts are issued at 00:00 UTC of each day from the hours
up to and including that one, for the next 47 hours (fitted on the past only), and a plan made
at any hour of the day reads the forecast issued at its day's start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from carbonedge.errors import DataError
from carbonedge.grid.data import GridData, hour_of
from carbonedge.grid.forecast import AR_WINDOW_DAYS, predict
from carbonedge.scheduling import FleetArrays, NodeState
from carbonedge.simulate.scenario import Scenario

__all__ = ["FORECAST_HORIZON_H", "World", "build_world", "cell_carbon_g"]

Array = npt.NDArray[np.float64]

#: Hours a day's forecast covers after its hour of issue (enough for a 24 h deadline at 23:00).
FORECAST_HORIZON_H: Final = 47
_HISTORY_H: Final = 168 + AR_WINDOW_DAYS * 24 + 48


def cell_carbon_g(
    requests: Array, kwh_per_cpu_s: Array, cpu_s: Array, intensity: Array, pue: Array
) -> Array:
    """The charge of ``requests`` inferences per cell, in gCO2: energy = rate x CPU seconds
    (kWh), times I x PUE (Eq. 2), as ``accounting.charge.charge_task`` computes it for one
    task, in the same order of operations (a test checks they agree bit for bit)."""
    energy = kwh_per_cpu_s * (requests * cpu_s)
    return energy * intensity * pue


@dataclass
class World:
    """Everything a policy run reads. Shapes: R regions, S sites, N nodes, H hours."""

    scenario: Scenario
    start_h: int  # hours since the Unix epoch of the first simulated hour (UTC)
    intensity: Array  # (S, H) gCO2/kWh, true
    interactive: npt.NDArray[np.int64]  # (R, H) requests
    deferrable: npt.NDArray[np.int64]  # (R, H) requests
    rtt: Array  # (R, S) ms
    node_site: npt.NDArray[np.intp]  # (N,)
    grid: GridData
    _forecasts: dict[str, Array] = field(default_factory=dict)
    _site_arrays: dict[str, Array] = field(default_factory=dict)

    @property
    def hours(self) -> int:
        return int(self.intensity.shape[1])

    def site_array(self, name: str) -> Array:
        """A per-site property (``kwh_per_cpu_s``, ``cpu_s``, ``service_s``, ``servers``,
        ``capacity_per_h``, ``cores``, ``pue``) as an (S,) array (read-only, cached)."""
        if name not in self._site_arrays:
            sites = self.scenario.sites
            values = [s.pue if name == "pue" else getattr(s.profile, name) for s in sites]
            array = np.array(values, dtype=np.float64)
            array.flags.writeable = False
            self._site_arrays[name] = array
        return self._site_arrays[name]

    def fleet(self) -> FleetArrays:
        """The fleet idle at hour 0: one NodeState per node, named ``site-k``."""
        states = []
        for s in self.scenario.sites:
            p = s.profile
            for k in range(s.nodes):
                states.append(
                    NodeState(
                        name=f"{s.name}-{k}",
                        cpu_quota=p.cores,
                        memory_mb=p.memory_mb,
                        free_cpu=p.cores,
                        free_memory_mb=p.memory_mb,
                        load=0.0,
                        latency_ms=0.0,
                        avg_time_s=p.service_s,
                        tasks_in_flight=0,
                        power_w=p.max_w,
                        intensity_g_per_kwh=0.0,
                    )
                )
        return FleetArrays(states)

    def charge_g(
        self,
        work: Array,
        intensity: Array | None = None,
        sites: npt.NDArray[np.intp] | None = None,
    ) -> Array:
        """gCO2 of ``work`` requests per site (rows) and hour (:func:`cell_carbon_g`): all
        sites at the true intensity, or the rows ``sites`` at ``intensity`` (a forecast)."""
        rows = slice(None) if sites is None else sites
        return cell_carbon_g(
            work,
            self.site_array("kwh_per_cpu_s")[rows, None],
            self.site_array("cpu_s")[rows, None],
            self.intensity if intensity is None else intensity,
            self.site_array("pue")[rows, None],
        )

    def last_hour(self, region: int, hour: int) -> int:
        """The last hour a deferrable request of ``region`` arriving at ``hour`` may run."""
        return min(hour + self.scenario.regions[region].deadline_h, self.hours - 1)

    def cost_g(self) -> Array:
        """(S, H) gCO2 of one inference at each site and hour (the charge of one request)."""
        return self.charge_g(np.ones_like(self.intensity))

    def forecast(self, site: int) -> Array:
        """(days, 1 + FORECAST_HORIZON_H) for ``site``'s zone: column 0 the value of the hour of
        issue (00:00 UTC), then the forecast of the next hours, issued from the past only."""
        zone = self.scenario.sites[site].zone
        if zone not in self._forecasts:
            sc = self.scenario
            rows = []
            for day in range(sc.days):
                issue = self.start_h + 24 * day
                past = self.grid.history(zone, issue + 1, _HISTORY_H, sc.factors)
                ahead = predict(sc.forecaster, past, FORECAST_HORIZON_H)
                rows.append(np.concatenate([past[-1:], ahead]))
            self._forecasts[zone] = np.array(rows)
        return self._forecasts[zone]


def _shape_factors(sc: Scenario, start_h: int, hours: int) -> Array:
    """(R, H) demand multiplier (mean 1 over a week) from each region's local shapes."""
    t = np.arange(start_h, start_h + hours)
    out = np.empty((len(sc.regions), hours))
    for r, region in enumerate(sc.regions):
        local = t + region.utc_offset_h
        diurnal = np.array(region.diurnal) / np.mean(region.diurnal)
        weekly = np.array(region.weekly) / np.mean(region.weekly)
        weekday = (local // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        out[r] = diurnal[local % 24] * weekly[weekday]
    return out


def build_world(sc: Scenario, grid: GridData | None = None) -> World:
    """Draw the demand and read the grids; DataError naming a zone or year without data."""
    grid = grid or GridData.open()
    start_h = hour_of(datetime(sc.year, 1, 1, tzinfo=UTC))
    hours = sc.hours
    intensity = np.empty((len(sc.sites), hours))
    for i, site in enumerate(sc.sites):
        values = grid.window(site.zone, start_h, start_h + hours, sc.factors)
        if np.isnan(values).any():
            raise DataError(
                f"{sc.source}: sites[{i}] zone {site.zone}: no ENTSO-E data for part of "
                f"{sc.year} (first {sc.days} days); years with data: "
                f"{', '.join(map(str, grid.years(site.zone)))}"
            )
        intensity[i] = values
    rng = np.random.default_rng(sc.seed)
    mean = np.array([r.requests_per_s for r in sc.regions])[:, None] * 3600.0
    total = rng.poisson(mean * _shape_factors(sc, start_h, hours))
    share = np.array([r.deferrable_share for r in sc.regions])[:, None]
    deferrable = rng.binomial(total, np.broadcast_to(share, total.shape))
    rtt = np.array([[sc.network.rtt(r, s) for s in sc.sites] for r in sc.regions])
    node_site = np.repeat(np.arange(len(sc.sites)), [s.nodes for s in sc.sites])
    return World(
        scenario=sc,
        start_h=start_h,
        intensity=intensity,
        interactive=(total - deferrable).astype(np.int64),
        deferrable=deferrable.astype(np.int64),
        rtt=rtt,
        node_site=node_site,
        grid=grid,
    )
