"""The device power-profile model as a sensor (method ``power-profile``): the fallback where a
node has no power sensor but its fleet entry has a power profile (paper Eq. 4's ``P_node``).

``power_w = idle_w + (max_w - idle_w) x u`` with ``u`` the utilisation (0..1) since the previous
read, i.e. :meth:`carbonedge.fleet.spec.PowerProfile.power_w`. By default ``u`` is the host's CPU
utilisation (busy / total CPU time from ``psutil.cpu_times()``): on a real edge device the node
*is* the host. The shipped device profiles (``raspberry-pi-5``, ``jetson-orin-nano``, ...) cite
where their idle and maximum come from; this is a model, never a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psutil

from carbonedge.carbon.sensors.base import Rail, RailValue, SensorError, SensorSample


class HostCpuUtilisation:
    """Callable: the host's CPU utilisation (0..1) since the previous call (or construction)."""

    def __init__(self) -> None:
        self._last = psutil.cpu_times()

    def __call__(self) -> float:
        now = psutil.cpu_times()
        last, self._last = self._last, now
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (last.idle + getattr(last, "iowait", 0.0))
        total = sum(now) - sum(last)
        return min(1.0, max(0.0, 1.0 - idle / total)) if total > 0 else 0.0


class ProfileSensor:
    """A :class:`~carbonedge.carbon.sensors.base.PowerSensor` modelling the whole board from
    its power profile (W) and a utilisation source; one rail ``board`` feeding ``cpu``."""

    method = "power-profile"

    def __init__(
        self,
        idle_w: float,
        max_w: float,
        *,
        utilisation: Callable[[], float] | None = None,
        source: str = "power profile",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (0.0 <= idle_w <= max_w) or max_w <= 0.0:
            raise SensorError(
                f"{source}: needs 0 <= idle_w <= max_w and max_w > 0 (W), got {idle_w}, {max_w}"
            )
        self.idle_w, self.max_w, self.source = idle_w, max_w, source
        self._utilisation = utilisation or HostCpuUtilisation()
        self._clock = clock
        self._closed = False

    def rails(self) -> tuple[Rail, ...]:
        detail = f"{self.source}: {self.idle_w} W idle .. {self.max_w} W max x utilisation"
        return (Rail("board", "cpu", "power", detail, ("cpu", "gpu", "ram")),)

    def read(self) -> SensorSample:
        """The modelled board power (W) at the utilisation since the previous read."""
        if self._closed:
            raise SensorError("power-profile sensor read after close()")
        u = min(1.0, max(0.0, float(self._utilisation())))
        power_w = self.idle_w + (self.max_w - self.idle_w) * u
        return SensorSample(self._clock(), {"board": RailValue(power_w=power_w)})

    def close(self) -> None:
        self._closed = True
