"""A fake ``pynvml`` module for the NVML reader: no GPU is needed (nor used) by these tests.

It mirrors the names and units of nvidia-ml-py's ``pynvml`` that the reader calls (NVIDIA NVML
API Reference, Device Queries): ``nvmlDeviceGetTotalEnergyConsumption`` in millijoules since
the driver was loaded (Volta and newer; older GPUs raise ``NVMLError_NotSupported``) and
``nvmlDeviceGetPowerUsage`` in milliwatts.
"""

from __future__ import annotations

from dataclasses import dataclass


class NVMLError(Exception):
    """pynvml's base error class."""


class NVMLError_NotSupported(NVMLError):
    """NVML_ERROR_NOT_SUPPORTED."""


@dataclass
class FakeGpu:
    name: str
    energy_mj: int | None  # None: the counter is not supported (pre-Volta)
    power_mw: int = 0


class FakeNvml:
    """Stands in for the ``pynvml`` module; tests move ``gpus[i].energy_mj`` / ``power_mw``."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], init_error: str | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle].name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        energy = self.gpus[handle].energy_mj
        if energy is None:
            raise NVMLError_NotSupported("Not Supported")
        return energy

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self.gpus[handle].power_mw
