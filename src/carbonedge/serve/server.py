"""Assemble and run the endpoint: fleet, model, scheduler, meter windows, ledger, HTTP server.

:func:`launch` is what ``carbonedge serve`` calls: it starts a :class:`~carbonedge.fleet.LocalFleet`
(one OS process per node), deploys the model on every node and returns a started
:class:`ServeApp` that owns the fleet. Tests and embedders can instead build a ``ServeApp`` on a
fleet they already run (any :class:`~carbonedge.fleet.FleetBackend`). ``ServeApp.close()``
stops, in order: the HTTP server, the meter windows (the last, partial window is attributed),
the ledger (queued rows written and committed) and, if it owns it, the fleet (no orphans).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from carbonedge.carbon import (
    CodeCarbonConfig,
    CodeCarbonMeter,
    EnergyMeter,
    FakeMeter,
)
from carbonedge.errors import ConfigError
from carbonedge.fleet import FleetBackend, LocalFleet, ModelRef, load_fleet
from carbonedge.fleet.intensity import node_intensities
from carbonedge.scheduling import Scheduler
from carbonedge.serve.config import ServeConfig
from carbonedge.serve.handler import InferenceHTTPServer
from carbonedge.serve.ledger_writer import LedgerWriter
from carbonedge.serve.metrics import ServeMetrics
from carbonedge.serve.rates import EnergyWindows
from carbonedge.serve.service import InferenceService

__all__ = ["FAKE_POWER_W", "ServeApp", "launch", "make_meter", "node_intensities"]

# The fake meter's constant host power (cpu, gpu, ram) in W, for tests and demos; every figure
# it yields is labelled "fake".
FAKE_POWER_W = (8.0, 0.0, 2.0)


def make_meter(config: ServeConfig) -> tuple[EnergyMeter, float | None]:
    """The configured meter and the idle CPU baseline (W) to use with it (None: running min).

    The fake meter draws a constant :data:`FAKE_POWER_W`; its whole CPU power counts as active
    (baseline 0 W), so that requests get non-zero, checkable figures.
    """
    if config.meter == "fake":
        fake = FakeMeter(lambda _t: FAKE_POWER_W, time.monotonic, config.measure_power_secs)
        return fake, 0.0
    meter = CodeCarbonMeter(
        CodeCarbonConfig(
            country_iso_code=config.country_iso_code,
            measure_power_secs=config.measure_power_secs,
        )
    )
    return meter, None


class ServeApp:
    """A running endpoint. Binds its socket on construction (``port`` 0: a free port), serves
    after :meth:`start`, stops everything on :meth:`close` (idempotent) or context exit."""

    def __init__(
        self,
        config: ServeConfig,
        fleet: FleetBackend,
        model_key: str,
        meter: EnergyMeter,
        *,
        idle_cpu_power_w: float | None = None,
        own_fleet: bool = False,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self._own_fleet = own_fleet
        self._closed = False
        self._tmpdir: str | None = None
        scheduler = Scheduler(config.policy, config.mode, slo_ms=config.slo_ms)
        intensities = node_intensities(fleet.spec)
        if config.ledger is None:
            self._tmpdir = tempfile.mkdtemp(prefix="carbonedge-serve-")
            ledger_path = Path(self._tmpdir) / "ledger.sqlite"
        else:
            ledger_path = config.ledger
        self.run_id = f"serve-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.windows = EnergyWindows(
            meter, fleet, config.window_s, idle_cpu_power_w=idle_cpu_power_w
        )
        self.ledger = LedgerWriter(ledger_path)
        self.metrics = ServeMetrics()
        self.service = InferenceService(
            config=config,
            fleet=fleet,
            model_key=model_key,
            scheduler=scheduler,
            windows=self.windows,
            ledger=self.ledger,
            metrics=self.metrics,
            intensities=intensities,
            run_id=self.run_id,
        )
        describe: dict[str, Any] = {
            "run_id": self.run_id,
            "model": config.model,
            "runtime": config.runtime,
            "policy": config.policy,
            "mode": config.mode,
            "weights_note": config.weights_note,
            "fleet": fleet.spec.source,
        }
        try:
            self.httpd = InferenceHTTPServer(
                (config.host, config.port),
                self.service,
                started_s=time.monotonic(),
                describe=describe,
            )
        except OSError as exc:
            self.ledger.close()
            raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> ServeApp:
        """Start the meter windows and serve in a background thread."""
        self.windows.start()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="carbonedge-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close the last meter window, flush the ledger, stop an owned fleet."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self.httpd.shutdown()
                self._thread.join(timeout=10.0)
            self.httpd.server_close()
            self.windows.stop()
            self.ledger.close()
        finally:
            if self._own_fleet:
                self.fleet.stop()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> ServeApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch(config: ServeConfig, fleet_file: Path | None = None) -> ServeApp:
    """Start a LocalFleet from ``fleet_file`` (None: the paper's three nodes), deploy the model
    on every node and return a started :class:`ServeApp` that owns the fleet."""
    spec = load_fleet(fleet_file)
    Scheduler(config.policy, config.mode, slo_ms=config.slo_ms)  # bad names fail before start
    fleet = LocalFleet(spec, restart=True)
    fleet.start()
    try:
        payload = ModelRef(config.model, config.weights, config.seed)
        key = fleet.deploy(payload, spec.names, runtime=config.runtime)
        meter, idle_w = make_meter(config)
        app = ServeApp(config, fleet, key, meter, idle_cpu_power_w=idle_w, own_fleet=True)
    except BaseException:
        fleet.stop()
        raise
    try:
        return app.start()
    except BaseException:
        app.close()
        raise
