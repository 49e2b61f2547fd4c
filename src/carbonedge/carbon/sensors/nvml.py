"""NVIDIA GPUs through NVML (method ``nvml``), via ``nvidia-ml-py`` (``pip install
'carbonedge[gpu]'``), imported only here and only when a sensor is built.

Source: NVIDIA NVML API Reference, "Device Queries":

- ``nvmlDeviceGetTotalEnergyConsumption(device)``: total energy consumption of the GPU in
  millijoules (mJ) since the driver was last reloaded; Volta or newer. Used where available, as
  a counter (a smaller value than before means the driver was reloaded: a SensorError).
- ``nvmlDeviceGetPowerUsage(device)``: power usage of the GPU and its associated circuitry
  (e.g. memory) in milliwatts; Fermi or newer (on Ampere and newer, except GA100, averaged over
  1 s). Used as power samples, integrated by the meter, where the counter is not supported.

Every GPU is one rail ``gpuN`` feeding the ``gpu`` component. NVML talks to the driver, not to
files, so tests inject a fake ``pynvml`` module (``nvml=``); no real GPU was used to test this.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from carbonedge.carbon.sensors.base import (
    Counter,
    Rail,
    RailKind,
    RailValue,
    SensorError,
    SensorSample,
    checked_number,
)


def import_pynvml() -> ModuleType:
    """The ``pynvml`` module of ``nvidia-ml-py``, or a SensorError saying how to install it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise SensorError(
            "NVML: nvidia-ml-py is not installed (pip install 'carbonedge[gpu]')"
        ) from None


class NvmlSensor:
    """A :class:`~carbonedge.carbon.sensors.base.PowerSensor` over every GPU NVML reports.

    ``nvml``: the ``pynvml`` module to use (default: nvidia-ml-py's, imported here); tests pass
    a fake with the same function names.
    """

    method = "nvml"

    def __init__(
        self,
        nvml: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nvml = nvml if nvml is not None else import_pynvml()
        self._clock = clock
        self._error: type[BaseException] = getattr(self._nvml, "NVMLError", Exception)
        try:
            self._nvml.nvmlInit()
        except self._error as exc:
            raise SensorError(f"NVML: nvmlInit failed ({exc}); no NVIDIA driver?") from None
        self._closed = False
        self._gpus: list[tuple[Rail, Any, Counter | None]] = []
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
            for i in range(count):
                handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                model = self._nvml.nvmlDeviceGetName(handle)
                model = model.decode() if isinstance(model, bytes) else str(model)
                counter: Counter | None = Counter(f"NVML gpu{i} total energy")
                try:
                    self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                    call = "nvmlDeviceGetTotalEnergyConsumption"
                except self._error:  # NVML_ERROR_NOT_SUPPORTED before Volta
                    counter, call = None, "nvmlDeviceGetPowerUsage"
                kind: RailKind = "energy" if counter is not None else "power"
                rail = Rail(f"gpu{i}", "gpu", kind, f"{call}({i}) [{model}]")
                self._gpus.append((rail, handle, counter))
        except self._error as exc:
            self.close()
            raise SensorError(f"NVML: cannot list GPUs ({exc})") from None
        if not self._gpus:
            self.close()
            raise SensorError("NVML: the driver reports no GPU")

    def rails(self) -> tuple[Rail, ...]:
        return tuple(r for r, _, _ in self._gpus)

    def read(self) -> SensorSample:
        """Each GPU's energy (J) since the first read, or its power (W)."""
        if self._closed:
            raise SensorError("NVML sensor read after close()")
        values = {}
        for rail, handle, counter in self._gpus:
            try:
                if counter is not None:
                    raw_mj = self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                    raw_j = checked_number(float(raw_mj), rail.source) / 1e3
                    values[rail.name] = RailValue(energy_j=counter.update(raw_j))
                else:
                    mw = checked_number(
                        float(self._nvml.nvmlDeviceGetPowerUsage(handle)), rail.source
                    )
                    values[rail.name] = RailValue(power_w=mw / 1e3)
            except self._error as exc:
                raise SensorError(f"NVML {rail.source}: {exc}") from None
            except (TypeError, ValueError):
                raise SensorError(f"NVML {rail.source}: not a number") from None
        return SensorSample(self._clock(), values)

    def close(self) -> None:
        """``nvmlShutdown`` once (errors while shutting down are ignored)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(self._error):
            self._nvml.nvmlShutdown()
