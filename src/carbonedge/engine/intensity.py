"""Each node's grid intensity at decision time: the engine's intensity feed (paper V.A).

The paper's first limitation is that intensities were static. Here every node has an
:class:`~carbonedge.carbon.IntensitySource` chosen in the fleet file
(:class:`~carbonedge.fleet.spec.IntensityConfig`): a static value, a country's yearly mix, a
CSV trace replayed against the engine's clock, a zone's real hourly ENTSO-E intensity
(``entsoe``, :mod:`carbonedge.grid`), or a live API (Electricity Maps, WattTime).
:meth:`IntensityFeed.readings` is called before every scheduling decision; the reading it
returns is the one the scheduler sees *and* the one the task's ledger row records (value,
source, time it applies to, fallback flag), so a decision and its accounting never disagree.

Cost per decision: static and country values are read once; a trace is a binary search per
node (microseconds); a live API is polled by a background thread every ``ttl_s`` and the feed
returns its latest answer, so a slow API never stalls a decision. When a source fails, the last
reading is reused, else the node's ``fallback_g_per_kwh``, each marked ``fallback=True`` with the
reason; with neither, the feed raises :class:`~carbonedge.carbon.IntensityError`.

The clock: :class:`ReplayClock` maps the machine's monotonic time to grid time, ``start +
(elapsed x speedup)``, so a 24-hour trace can be replayed in minutes; tests pass their own
callable returning an aware UTC datetime.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from carbonedge.carbon import (
    CountryMixIntensity,
    CsvTrace,
    ElectricityMapsSource,
    IntensityError,
    IntensityReading,
    IntensitySource,
    StaticIntensity,
    WattTimeSource,
)
from carbonedge.errors import ConfigError, DataError
from carbonedge.fleet.spec import FleetSpec, IntensityConfig, NodeSpec
from carbonedge.grid import DEFAULT_FORECASTER, EntsoeIntensity, GridData

__all__ = ["Clock", "IntensityFeed", "ReplayClock", "make_source"]

Clock = Callable[[], datetime]


class ReplayClock:
    """Grid time = ``start + (monotonic now - monotonic at creation) x speedup`` (aware UTC).

    ``start=None`` is the wall clock now; ``speedup=3600`` replays an hour per second.
    """

    def __init__(
        self,
        start: datetime | None = None,
        speedup: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speedup > 0 or speedup == float("inf"):
            raise ConfigError(f"clock speedup must be a finite number > 0, got {speedup!r}")
        self.start = (start or datetime.now(UTC)).astimezone(UTC)
        self.speedup = float(speedup)
        self._monotonic = monotonic
        self._t0 = monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speedup)

    def __repr__(self) -> str:
        return f"ReplayClock(start={self.start.isoformat()}, speedup={self.speedup:g})"


def make_source(
    node: NodeSpec,
    base_dir: str | None,
    env: Mapping[str, str] | None = None,
    grid: Callable[[], GridData] | None = None,
) -> tuple[IntensitySource, str, bool]:
    """The source of ``node``'s intensity: (source, zone to ask it for, is it a live API).

    ``grid``: gives the loaded grid cache for ``entsoe`` nodes (one cache for a whole fleet).
    """
    cfg = node.intensity_config
    env = os.environ if env is None else env
    zone = cfg.zone or node.name
    if cfg.source == "static":
        assert cfg.g_per_kwh is not None
        return StaticIntensity({zone: cfg.g_per_kwh}, source="static (fleet spec)"), zone, False
    if cfg.source == "country":
        return CountryMixIntensity(), zone, False
    if cfg.source == "trace":
        assert cfg.file is not None
        path = Path(cfg.file)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        trace = CsvTrace(path, cfg.interpolation)  # type: ignore[arg-type]
        if zone not in trace.zones:
            raise ConfigError(
                f"node {node.name!r}: trace {path.name} has no rows for zone {zone!r} "
                f"(zones: {', '.join(trace.zones)})"
            )
        return trace, zone, False
    if cfg.source == "entsoe":
        try:
            data = grid() if grid is not None else GridData.open()
            source = EntsoeIntensity(data, year=cfg.year, factors=cfg.factors)
            years = data.years(zone)  # a bad zone or year fails here, not at the first task
            source.data_hour(zone, datetime(cfg.year or years[0], 1, 1, tzinfo=UTC))
        except (IntensityError, DataError) as exc:
            raise ConfigError(f"node {node.name!r}: intensity source 'entsoe': {exc}") from None
        return source, zone, False
    token = _token(node, cfg, env)
    if cfg.source == "electricitymaps":
        return (
            ElectricityMapsSource(token, timeout_s=cfg.timeout_s, ttl_s=cfg.ttl_s),
            zone,
            True,
        )
    return WattTimeSource(token, timeout_s=cfg.timeout_s, ttl_s=cfg.ttl_s), zone, True


def _token(node: NodeSpec, cfg: IntensityConfig, env: Mapping[str, str]) -> str:
    if cfg.token_env is None:
        raise ConfigError(
            f"node {node.name!r}: intensity source {cfg.source!r} needs token_env (the name of "
            "the environment variable that holds the API token)"
        )
    token = env.get(cfg.token_env)
    if not token:
        raise ConfigError(
            f"node {node.name!r}: environment variable {cfg.token_env} (token_env) is not set"
        )
    return token


class _Node:
    """One node's source and what the feed last read from it."""

    def __init__(
        self, spec: NodeSpec, source: IntensitySource, zone: str, live: bool, constant: bool
    ) -> None:
        self.spec = spec
        self.source = source
        self.zone = zone
        self.live = live
        self.constant = constant
        self.fallback_g_per_kwh = spec.intensity_config.fallback_g_per_kwh
        self.ttl_s = spec.intensity_config.ttl_s
        self.last: IntensityReading | None = None


class IntensityFeed:
    """Per-node intensity at the engine's clock; see the module docstring.

    ``sources``: per-node sources that replace the fleet file's (tests, embedders).
    ``clock``: grid time now (default: the wall clock).
    ``forecaster``: what :func:`carbonedge.engine.forecast.forecast` plans on by default.
    """

    def __init__(
        self,
        spec: FleetSpec,
        clock: Clock | None = None,
        *,
        sources: Mapping[str, IntensitySource] | None = None,
        env: Mapping[str, str] | None = None,
        forecaster: str = DEFAULT_FORECASTER,
    ) -> None:
        self.spec = spec
        self.clock: Clock = clock or ReplayClock()
        self.forecaster = forecaster
        self._nodes: dict[str, _Node] = {}
        given = dict(sources or {})
        grid: list[GridData] = []

        def grid_data() -> GridData:
            if not grid:
                grid.append(GridData.open())
            return grid[0]

        for n in spec.nodes:
            if n.name in given:
                node = _Node(n, given.pop(n.name), n.intensity_config.zone or n.name, False, False)
            else:
                source, zone, live = make_source(n, spec.base_dir, env, grid_data)
                constant = n.intensity_config.source in ("static", "country")
                node = _Node(n, source, zone, live, constant)
            self._nodes[n.name] = node
        if given:
            raise ConfigError(f"intensity sources given for unknown nodes: {sorted(given)}")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        now = self.clock()
        for node in self._nodes.values():
            self._read(node, now)  # fail early on a broken source, warm every cache

    def start(self) -> None:
        """Start polling the live APIs in the background (nothing to do without any)."""
        if any(n.live for n in self._nodes.values()) and self._poller is None:
            self._poller = threading.Thread(
                target=self._poll, name="carbonedge-intensity", daemon=True
            )
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> dict[str, str]:
        """Node -> a short description of its source (for health and reports)."""
        return {
            name: f"{n.spec.intensity_config.source} ({n.zone})" for name, n in self._nodes.items()
        }

    def source(self, node: str) -> tuple[IntensitySource, str]:
        """``node``'s source and the zone it asks it for."""
        try:
            entry = self._nodes[node]
        except KeyError:
            raise ConfigError(f"no node named {node!r} in the intensity feed") from None
        return entry.source, entry.zone

    def readings(self, at: datetime | None = None) -> dict[str, IntensityReading]:
        """Every node's intensity at ``at`` (default: the clock now)."""
        now = at or self.clock()
        return {name: self._current(node, now) for name, node in self._nodes.items()}

    def reading(self, node: str, at: datetime | None = None) -> IntensityReading:
        """One node's intensity at ``at`` (default: the clock now)."""
        try:
            entry = self._nodes[node]
        except KeyError:
            raise ConfigError(f"no node named {node!r} in the intensity feed") from None
        return self._current(entry, at or self.clock())

    # -- internals -------------------------------------------------------------------------------

    def _current(self, node: _Node, now: datetime) -> IntensityReading:
        last = node.last
        if last is not None and node.live:
            return last  # the API's latest answer, stamped with the time it applies to
        if last is not None and node.constant:
            return replace(last, at=now)
        return self._read(node, now)

    def _read(self, node: _Node, now: datetime) -> IntensityReading:
        try:
            reading = node.source.intensity(node.zone, now)
            if not reading.g_per_kwh >= 0 or reading.g_per_kwh == float("inf"):
                raise IntensityError(f"source answered {reading.g_per_kwh!r} gCO2/kWh")
        except IntensityError as exc:
            reading = self._fallback(node, now, str(exc))
        node.last = reading
        return reading

    def _fallback(self, node: _Node, now: datetime, reason: str) -> IntensityReading:
        last = node.last
        if last is not None and not last.fallback:
            return replace(last, at=now, fallback=True, fallback_reason=reason)
        if last is not None:
            return replace(last, at=now, fallback_reason=reason)
        if node.fallback_g_per_kwh is not None:
            return IntensityReading(
                node.fallback_g_per_kwh,
                node.zone,
                now,
                f"fallback (fleet spec) for {node.spec.intensity_config.source}",
                fallback=True,
                fallback_reason=reason,
            )
        raise IntensityError(f"node {node.spec.name!r}: no intensity: {reason}")

    def _poll(self) -> None:
        live = [n for n in self._nodes.values() if n.live]
        period_s = max(1.0, min(n.ttl_s for n in live))
        while not self._stop.wait(period_s):
            now = self.clock()
            for node in live:
                # on failure the previous reading stays, already marked as a fallback
                with contextlib.suppress(IntensityError):
                    self._read(node, now)
