"""The Ray actor of one edge node, and the light per-node energy meter it can use.

``EdgeNodeActor`` is a plain class; :class:`~carbonedge.fleet.ray_backend.RayFleet` wraps it with
``ray.remote`` when it starts, so importing this module does not import ray. The actor is a
threaded actor (a few threads) so that control calls (``info``, ``read_energy``) answer while a
task runs, but inference is serialised by a lock: one inference thread per node, as in the local
backend and the paper's one-container-per-node setup (III.F).

Each actor measures its own energy with its own meter (on a real multi-host fleet the node *is*
the host, so CodeCarbon in machine mode measures that device):

- ``"codecarbon"``: :class:`carbonedge.carbon.CodeCarbonMeter` (RAPL/NVML where present, else
  CodeCarbon's CPU-load model), started when the actor starts.
- ``"profile"``: :class:`ProfileMeter`, the node's power profile driven by the actor process's CPU
  time (cheap, no hardware access; what tests and single-host simulations use).
- ``"auto"``: the best power sensor of the actor's own host
  (:func:`carbonedge.carbon.sensors.detect_sensors`: Jetson INA3221, Raspberry Pi 5 PMIC, RAPL,
  NVML, else the node's power profile, else CodeCarbon), read under the root directory named by
  the ``CARBONEDGE_SENSOR_ROOT`` environment variable of the worker (default ``/``), or under
  ``<root>`` for ``"auto:<root>"`` (a fixture tree, or a host's sysfs mounted into a container).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from carbonedge.accounting import EnergyMeter, EnergyReading, MeterInfo, PowerSample
from carbonedge.accounting.units import kwh_of_power
from carbonedge.carbon.errors import MeterError
from carbonedge.fleet.worker import (
    build_runtime_for_payload,
    busy_probe,
    dilation_sleep_s,
    rss_mb,
    steady_allocator,
)

if TYPE_CHECKING:
    from carbonedge.models.runtime import Runtime

MeterKind = Literal["profile", "codecarbon", "auto"]
METER_KINDS: tuple[MeterKind, ...] = ("profile", "codecarbon", "auto")
MeterSpec = str
"""A :data:`MeterKind`, or ``"auto:<root>"``: detect the sensors under ``<root>``."""
AUTO_ROOT_PREFIX = "auto:"
SENSOR_ROOT_ENV = "CARBONEDGE_SENSOR_ROOT"


def is_meter_spec(spec: object) -> bool:
    """True for one of :data:`METER_KINDS` or ``"auto:<root>"`` with a non-empty root."""
    if not isinstance(spec, str):
        return False
    return spec in METER_KINDS or (spec.startswith(AUTO_ROOT_PREFIX) and spec != AUTO_ROOT_PREFIX)


class ProfileMeter:
    """Node energy from its power profile and its process's CPU time (an EnergyMeter).

    Over a window of ``duration_s`` seconds in which the process used ``cpu_s`` CPU seconds, the
    node's utilisation of its quota ``q`` cores is ``u = min(1, cpu_s / (q x duration_s))`` and

        E_cpu [kWh] = (idle_w x duration_s + (max_w - idle_w) x u x duration_s) / 3.6e6

    i.e. the linear power model of ``PowerProfile.power_w`` (W) integrated over the window
    (Eq. 1 with a constant mean utilisation). The method is ``node-profile(cpu-time)``: modelled,
    not measured. RAM and GPU are reported as ``none``.
    """

    def __init__(self, idle_w: float, max_w: float, cpu_quota: float) -> None:
        self.idle_w = idle_w
        self.max_w = max_w
        self.cpu_quota = cpu_quota
        self._start: tuple[float, float, datetime] | None = None

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time(), datetime.now(UTC))

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise MeterError("ProfileMeter.stop() called before start()")
        w0, c0, started_at = self._start
        self._start = None
        duration_s = time.perf_counter() - w0
        cpu_s = time.process_time() - c0
        util = min(1.0, cpu_s / (self.cpu_quota * duration_s)) if duration_s > 0 else 0.0
        power_w = self.idle_w + (self.max_w - self.idle_w) * util
        return EnergyReading(
            duration_s=duration_s,
            cpu_energy_kwh=kwh_of_power(power_w, duration_s),
            gpu_energy_kwh=0.0,
            ram_energy_kwh=0.0,
            method={"cpu": "node-profile(cpu-time)", "gpu": "none", "ram": "none"},
            samples=(PowerSample(duration_s, power_w, 0.0, 0.0),),
            info=MeterInfo(
                meter="profile",
                details={"cpu_s": f"{cpu_s:.6f}", "utilisation": f"{util:.4f}"},
            ),
            started_at=started_at,
            finished_at=datetime.now(UTC),
        )


def make_meter(kind: str, idle_w: float, max_w: float, cpu_quota: float) -> EnergyMeter:
    """Build the meter named ``kind`` (one of ``METER_KINDS``, or ``"auto:<root>"``)."""
    if kind == "profile":
        return ProfileMeter(idle_w, max_w, cpu_quota)
    if kind == "codecarbon":
        from carbonedge.carbon.codecarbon_meter import CodeCarbonConfig, CodeCarbonMeter

        return CodeCarbonMeter(CodeCarbonConfig(measure_power_secs=1.0))
    if is_meter_spec(kind) and kind.startswith("auto"):
        from carbonedge.carbon.sensors import detect_sensors, meter_for
        from carbonedge.fleet.spec import PowerProfile

        root = kind[len(AUTO_ROOT_PREFIX) :] or os.environ.get(SENSOR_ROOT_ENV) or "/"
        profile = PowerProfile("linear", idle_w, max_w, "the node's power profile")
        return meter_for(detect_sensors(root, power_profile=profile))
    raise MeterError(f"meter must be one of {METER_KINDS} or 'auto:<root>', got {kind!r}")


@dataclass(frozen=True)
class StageMeta:
    """Timings of one task on a node: ``time.time()`` s stamps, ``exec_ms`` and ``cpu_s``;
    ``queued_ms``: how long it waited for the task before it on the actor (``max_in_flight``
    above 1), left out of the dispatch latency as the local fleet does."""

    started_at: float
    finished_at: float
    exec_ms: float
    cpu_s: float
    ray_node_id: str
    queued_ms: float = 0.0


class EdgeNodeActor:
    """One edge node on a Ray node: keeps deployed models warm, runs tasks, meters energy."""

    def __init__(
        self,
        name: str,
        cpu_quota: float,
        dilate: bool,
        meter: str,
        idle_w: float,
        max_w: float,
    ) -> None:
        import ray

        steady_allocator()
        import torch

        torch.set_num_threads(1)
        self.name = name
        self.cpu_quota = cpu_quota
        self.dilate = dilate and cpu_quota < 1.0
        self.ray_node_id: str = ray.get_runtime_context().get_node_id()
        self._run_lock = threading.Lock()
        self._runners: dict[str, Runtime] = {}
        self._meter = make_meter(meter, idle_w, max_w, cpu_quota)
        self._meter.start()

    def info(self) -> dict[str, Any]:
        """Where the actor runs: Ray node id, pid, host name, RSS and peak RSS (MiB)."""
        current_mb, peak_mb = rss_mb()
        return {
            "ray_node_id": self.ray_node_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "rss_mb": current_mb,
            "peak_rss_mb": peak_mb,
            "models": tuple(self._runners),
        }

    def deploy(self, key: str, payload: Any, runtime: str, budget_bytes: int) -> tuple[str, Any]:
        """Build and keep ``payload``: ``("ok", footprint_bytes)`` or ``("err", message)``."""
        try:
            runner, footprint = build_runtime_for_payload(payload, runtime, budget_bytes)
        except Exception as exc:
            return ("err", f"{type(exc).__name__}: {exc}")
        with self._run_lock:
            self._runners[key] = runner
        return ("ok", footprint)

    def run(self, key: str, batch: Any) -> tuple[Any, StageMeta]:
        """Run model ``key`` on ``batch`` (an array, or resolved from an upstream ObjectRef)."""
        arrived = time.perf_counter()
        with self._run_lock:
            runner = self._runners.get(key)
            if runner is None:
                raise KeyError(f"model {key!r} is not deployed on node {self.name!r}")
            started = time.time()
            w0, c0 = time.perf_counter(), time.thread_time()
            queued_ms = (w0 - arrived) * 1000.0
            # Ray hands arrays over zero-copy and read-only; both runtimes take those as they are
            # (TorchRuntime copies a read-only float batch itself; crops are normalised anew).
            out = runner.run(batch)
            cpu_s = time.thread_time() - c0
            if self.dilate:
                time.sleep(dilation_sleep_s(self.cpu_quota, cpu_s))
            exec_ms = (time.perf_counter() - w0) * 1000.0
        return out, StageMeta(started, time.time(), exec_ms, cpu_s, self.ray_node_id, queued_ms)

    def read_energy(self) -> EnergyReading:
        """The energy of this node since the last read (or the start), then start a new window."""
        try:
            return self._meter.stop()
        finally:  # a failed read still leaves a running meter for the next window
            self._meter.start()

    def probe(self, duration_s: float) -> tuple[float, float]:
        """Busy loop for ``duration_s`` s (dilated like tasks); returns (cpu_s, wall_s)."""
        with self._run_lock:
            return busy_probe(duration_s, self.cpu_quota, self.dilate, time.thread_time)
