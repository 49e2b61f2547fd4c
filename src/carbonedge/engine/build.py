"""Assembling an engine from settings: the fleet (local or Ray), its models, the meter windows,
the intensity feed and the durable ledger, started together and closed together.

``serve`` and ``reproduce`` both call :func:`open_engine`; a library user may too::

    from carbonedge.engine import EngineSettings, open_engine
    from carbonedge.fleet import ModelRef

    with open_engine(EngineSettings(meter="fake"), models=[ModelRef("mobilenet_v2")]) as engine:
        key = engine.model_keys[0]
        # batch: float32 (1, 3, 224, 224), or the 8-bit crop, uint8 (1, 224, 224, 3)
        outcome = engine.run(batch, key, task_id="img-0")
        print(outcome.node, outcome.charge.gco2, outcome.row)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from carbonedge.accounting import EnergyMeter
from carbonedge.carbon import CodeCarbonConfig, CodeCarbonMeter, FakeMeter, IntensitySource
from carbonedge.carbon.ledger import default_ledger_path
from carbonedge.carbon.ledger_writer import LedgerWriter
from carbonedge.engine.core import Engine, EngineConfig
from carbonedge.engine.intensity import Clock, IntensityFeed, ReplayClock
from carbonedge.engine.rates import RollingRates
from carbonedge.engine.windows import MeasurementWindows, NodeCpu
from carbonedge.errors import ConfigError
from carbonedge.fleet import FleetBackend, ModelPayload, load_fleet
from carbonedge.fleet.base import RuntimeKind
from carbonedge.fleet.telemetry import check_max_in_flight
from carbonedge.grid.forecast import DEFAULT_FORECASTER, check_forecaster
from carbonedge.scheduling import Scheduler

__all__ = [
    "BACKENDS",
    "FAKE_POWER_W",
    "METER_KINDS",
    "EngineSettings",
    "make_fleet",
    "meter_factory",
    "open_engine",
]

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")
MeterKind = Literal["codecarbon", "fake"]
METER_KINDS: tuple[str, ...] = ("codecarbon", "fake")

#: The fake meter's constant host power (cpu, gpu, ram) in W, for tests and demos; every figure
#: it yields is labelled "fake". Its whole CPU power counts as active (idle baseline 0 W).
FAKE_POWER_W = (8.0, 0.0, 2.0)


@dataclass(frozen=True)
class EngineSettings:
    """Everything chosen once, in configuration, for one engine.

    Attributes:
        fleet_file: fleet TOML (None: the paper's three nodes).
        backend: ``local`` (one OS process per node here) or ``ray`` (one actor per node).
        address: the Ray cluster (``None``: start a local one; ``auto``; ``ray://host:10001``).
        policy, mode, slo_ms: the default scheduler (docs/scheduler.md).
        meter: ``codecarbon`` (CodeCarbon's offline tracker) or ``fake`` (:data:`FAKE_POWER_W`).
        measure_power_secs: the meter's sampling interval, s.
        window_s: length of the rolling meter windows whose rates charge tasks, s (0: none;
            the rates stay the power-profile prior until :meth:`RollingRates.publish`).
        ledger: the SQLite ledger (None: :func:`~carbonedge.carbon.ledger.default_ledger_path`).
        run_id: the ledger's run id (None: ``<prefix>-<UTC time>-<pid>``).
        clock_start, clock_speedup: the grid clock traces are replayed against (None: now).
        forecaster: the intensity forecast deferrable jobs plan on
            (:mod:`carbonedge.grid.forecast`; ``oracle`` = perfect foresight, a bound).
        restart: restart a node that died and redeploy its models.
        load_window_s: Algorithm 1's load signal: 0 = each node's occupancy at decision time
            (the default), S > 0 = its quota utilisation over the last S seconds.
        max_in_flight: tasks a node may hold at once (1, the default: one; 2: it is given its
            next task while it runs one, see ``carbonedge.fleet.telemetry``).
            ``load_window_s`` and ``max_in_flight`` configure the fleet the engine makes; a
            fleet passed to :func:`open_engine` keeps its own.
        engine: admission, waiting and retries.
    """

    fleet_file: Path | None = None
    backend: Backend = "local"
    address: str | None = None
    policy: str = "normalized"
    mode: str = "balanced"
    slo_ms: float | None = None
    meter: MeterKind = "codecarbon"
    measure_power_secs: float = 1.0
    country_iso_code: str | None = None
    window_s: float = 5.0
    ledger: Path | None = None
    run_id: str | None = None
    run_prefix: str = "engine"
    clock_start: datetime | None = None
    clock_speedup: float = 1.0
    forecaster: str = DEFAULT_FORECASTER
    restart: bool = True
    load_window_s: float = 0.0
    max_in_flight: int = 1
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {BACKENDS}, got {self.backend!r}")
        if self.meter not in METER_KINDS:
            raise ConfigError(f"meter: must be one of {METER_KINDS}, got {self.meter!r}")
        if not 0 <= self.window_s < float("inf"):
            raise ConfigError(f"window_s: must be a number >= 0 (s), got {self.window_s!r}")
        check_max_in_flight(self.max_in_flight)
        check_forecaster(self.forecaster)
        if not 0 < self.measure_power_secs < float("inf"):
            raise ConfigError(
                f"measure_power_secs: must be a number > 0 (s), got {self.measure_power_secs!r}"
            )

    @property
    def ledger_path(self) -> Path:
        return self.ledger if self.ledger is not None else default_ledger_path()


def meter_factory(
    kind: str, *, measure_power_secs: float = 1.0, country_iso_code: str | None = None
) -> tuple[Callable[[], EnergyMeter], float | None]:
    """A factory of the named meter and the idle CPU baseline (W) to use with it (None:
    the running minimum of the CPU power samples)."""
    if kind == "fake":
        return (
            lambda: FakeMeter(lambda _t: FAKE_POWER_W, time.monotonic, measure_power_secs),
            0.0,
        )
    if kind != "codecarbon":
        raise ConfigError(f"meter: must be one of {METER_KINDS}, got {kind!r}")
    config = CodeCarbonConfig(
        country_iso_code=country_iso_code, measure_power_secs=measure_power_secs
    )
    return (lambda: CodeCarbonMeter(config)), None


def make_fleet(settings: EngineSettings) -> FleetBackend:
    """The fleet backend the settings name, not started."""
    spec = load_fleet(settings.fleet_file)
    if settings.backend == "ray":
        from carbonedge.fleet.ray_backend import RayFleet

        return RayFleet(
            spec,
            address=settings.address,
            restart=settings.restart,
            load_window_s=settings.load_window_s,
            max_in_flight=settings.max_in_flight,
        )
    if settings.address is not None:
        raise ConfigError("address: applies to backend 'ray' only")
    from carbonedge.fleet import LocalFleet

    return LocalFleet(
        spec,
        restart=settings.restart,
        load_window_s=settings.load_window_s,
        max_in_flight=settings.max_in_flight,
    )


def open_engine(
    settings: EngineSettings,
    *,
    models: Sequence[ModelPayload] = (),
    runtime: RuntimeKind = "torch",
    fleet: FleetBackend | None = None,
    meter: Callable[[], EnergyMeter] | None = None,
    idle_cpu_power_w: float | None = None,
    intensity_sources: Mapping[str, IntensitySource] | None = None,
    clock: Clock | None = None,
) -> Engine:
    """Start everything ``settings`` describe and return a started engine that owns it all.

    ``fleet``: a started fleet to use (the engine does not stop it) instead of making one.
    ``models``: deployed on every node (``engine.model_keys``). ``meter``: a meter factory
    instead of ``settings.meter``. ``intensity_sources`` / ``clock``: replace the fleet file's
    sources and the replay clock (tests, embedders). ``engine.close()`` stops in order: the
    engine (queued and running tasks drain), the rolling windows, the intensity feed, the
    ledger (rows committed), the fleet if it made it.
    """
    Scheduler(settings.policy, settings.mode, slo_ms=settings.slo_ms)  # bad names fail first
    closers: list[Callable[[], None]] = []
    try:
        if fleet is None:
            fleet = make_fleet(settings)
            fleet.start()  # type: ignore[attr-defined]
            closers.append(fleet.stop)
        keys = [fleet.deploy(m, fleet.spec.names, runtime) for m in models]
        run_id = settings.run_id or (
            f"{settings.run_prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
        )
        feed = IntensityFeed(
            fleet.spec,
            clock or ReplayClock(settings.clock_start, settings.clock_speedup),
            sources=intensity_sources,
            forecaster=settings.forecaster,
        )
        factory, idle_w = meter_factory(
            settings.meter,
            measure_power_secs=settings.measure_power_secs,
            country_iso_code=settings.country_iso_code,
        )
        cpu = NodeCpu(fleet)
        windows = MeasurementWindows(meter or factory, cpu)
        rates = RollingRates(
            fleet.spec,
            windows,
            settings.window_s or 1.0,
            idle_cpu_power_w=idle_cpu_power_w if meter is not None else idle_w,
        )
        ledger = LedgerWriter(settings.ledger_path)
        closers.insert(0, ledger.close)
        scheduler = Scheduler(settings.policy, settings.mode, slo_ms=settings.slo_ms)
        if settings.window_s > 0:
            rates.start()
            closers.insert(0, rates.stop)
        engine = Engine(
            fleet,
            scheduler,
            intensity=feed,
            rates=rates,
            cpu=cpu,
            ledger=ledger,
            run_id=run_id,
            config=settings.engine,
            windows=windows,
            model_keys=keys,
            owns=closers,
        )
        return engine.start()
    except BaseException:
        for close in closers:
            close()
        raise
