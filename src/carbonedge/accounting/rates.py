"""Energy rates: active energy per CPU-second, the multiplier of every per-task charge.

A rate comes from one of three places, and a :class:`RateSnapshot` says which:

- ``window``: a closed meter window, attributed by CPU time (``serve``'s rolling windows);
- ``calibration``: one rate for the whole fleet, pooled over the calibration windows that
  ``reproduce`` measures before its runs (:class:`PooledRate`);
- ``power-profile``: a node's power profile, ``(max_w - idle_w) / cpu_quota`` J per CPU-second
  (Eq. 4's ``P_node``), before anything was measured.

Why one pooled rate for a reproduction: on a simulated fleet every node is a slice of ONE
physical CPU and, without RAPL, the modelled power of a window depends on host-wide load
(CodeCarbon: ``TDP x (0.1 + 0.9 x load^3)``), not on the node. A per-window rate would make a
run on a small-quota node look cheaper per CPU-second, an artefact of the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carbonedge.accounting.energy import COMPONENTS, ComponentEnergy
from carbonedge.accounting.units import J_PER_KWH

__all__ = [
    "METHOD_CALIBRATED",
    "METHOD_PROFILE",
    "METHOD_WINDOW",
    "PooledRate",
    "Rate",
    "RateSnapshot",
    "profile_rate",
]

Rate = tuple[float, float, float]  # kWh per CPU-second: (cpu, gpu, ram)

#: Charge methods (a ledger row's ``attribution_method``), by the snapshot's ``source``.
METHOD_WINDOW = "window-cputime"
METHOD_CALIBRATED = "calibrated-cputime"
METHOD_PROFILE = "power-profile"
_METHOD = {"window": METHOD_WINDOW, "calibration": METHOD_CALIBRATED}


def profile_rate(idle_w: float, max_w: float, cpu_quota: float) -> Rate:
    """A linear power profile's active energy per CPU-second, kWh: the node draws
    ``max_w - idle_w`` W above idle when its whole quota is busy."""
    return ((max_w - idle_w) / cpu_quota / J_PER_KWH, 0.0, 0.0)


@dataclass(frozen=True)
class PooledRate:
    """One rate per component pooled over several windows: the energy attributed to the nodes
    (active energy: idle baseline and static RAM left out) over the CPU seconds of the tasks
    they ran, so the node processes' own overhead (heartbeats, pipes) is charged to the tasks.

    Attributes:
        cpu_kwh_per_s, gpu_kwh_per_s, ram_kwh_per_s: kWh per task CPU-second.
        energy_kwh: the pooled numerator, kWh. cpu_s: the pooled denominator, task CPU-s.
        windows: how many windows were pooled.
    """

    cpu_kwh_per_s: float
    gpu_kwh_per_s: float
    ram_kwh_per_s: float
    energy_kwh: float
    cpu_s: float
    windows: int

    @classmethod
    def pool(cls, windows: Iterable[tuple[ComponentEnergy, float]]) -> PooledRate:
        """From (energy attributed to the nodes, task CPU-s) per window; 0 when no CPU ran."""
        e = [0.0, 0.0, 0.0]
        seconds = 0.0
        count = 0
        for energy, cpu_s in windows:
            count += 1
            e[0] += energy.cpu_energy_kwh
            e[1] += energy.gpu_energy_kwh
            e[2] += energy.ram_energy_kwh
            seconds += cpu_s
        cpu, gpu, ram = (x / seconds if seconds > 0 else 0.0 for x in e)
        return cls(cpu, gpu, ram, math.fsum(e), seconds, count)

    @property
    def rate(self) -> Rate:
        return (self.cpu_kwh_per_s, self.gpu_kwh_per_s, self.ram_kwh_per_s)

    @property
    def kwh_per_s(self) -> float:
        return self.cpu_kwh_per_s + self.gpu_kwh_per_s + self.ram_kwh_per_s

    @property
    def power_w(self) -> float:
        """The rate as power per busy core, W."""
        return self.kwh_per_s * J_PER_KWH

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_kwh_per_s": self.cpu_kwh_per_s,
            "gpu_kwh_per_s": self.gpu_kwh_per_s,
            "ram_kwh_per_s": self.ram_kwh_per_s,
            "kwh_per_s": self.kwh_per_s,
            "power_w": self.power_w,
            "energy_kwh": self.energy_kwh,
            "cpu_s": self.cpu_s,
            "windows": self.windows,
        }


@dataclass(frozen=True)
class RateSnapshot:
    """Active energy per CPU-second of each node, from one closed window (or the prior).

    Attributes:
        rates: node -> (cpu, gpu, ram) kWh per CPU-second.
        basis: node -> ``"node"`` (its own CPU time in the window), ``"host"`` (the host's
            active energy per busy CPU-second: the node was nearly idle) or ``"power-profile"``.
        source: ``"window"`` (a measured window), ``"calibration"`` (a pooled calibration
            rate, basis ``"calibration"``) or ``"power-profile"`` (nothing measured yet).
        energy_method: how the window's host energy was obtained, per component (``cpu``,
            ``gpu``, ``ram`` -> ``rapl``, ``cpu-load-model``, ``constant``, ``fake``, ...).
        meter: the meter's name (``codecarbon``, ``fake``, ``none``).
        window_s: the window's length in s (0 for the prior).
        closed_mono_s: ``time.monotonic()`` when the window closed.
        index: 1 for the first window, 0 for the prior; for ``calibration`` the number of
            windows pooled.
    """

    rates: Mapping[str, Rate]
    basis: Mapping[str, str]
    source: str
    energy_method: Mapping[str, str]
    meter: str
    window_s: float
    closed_mono_s: float
    index: int = 0

    @property
    def method_label(self) -> str:
        """``cpu=cpu-load-model gpu=none ram=constant`` style label."""
        return " ".join(f"{c}={self.energy_method.get(c, 'none')}" for c in COMPONENTS)

    def describe(self, node: str, now_mono_s: float) -> str:
        """One sentence on how a request's energy on ``node`` is estimated."""
        if self.source == "calibration":
            return (
                f"estimate: this request's CPU-seconds x the fleet's active energy per task "
                f"CPU-second, pooled over the {self.index} calibration windows measured by "
                f"{self.meter} ({self.method_label}) before the runs; idle baseline and static "
                "RAM power not included"
            )
        if self.source != "window":
            return (
                "estimate: CPU-seconds x the node's power profile, (max_w - idle_w) / cpu_quota "
                "per CPU-second (Eq. 4's P_node); no meter window has closed yet"
            )
        age_s = max(0.0, now_mono_s - self.closed_mono_s)
        whose = (
            f"{node}'s active energy per CPU-second"
            if self.basis.get(node) == "node"
            else "the host's active energy per busy CPU-second (node nearly idle in the window)"
        )
        return (
            f"estimate: apportioned by CPU time from {self.meter}'s host measurement "
            f"({self.method_label}): {whose} in the meter window of {self.window_s:.1f} s "
            f"that closed {age_s:.1f} s ago, x this request's CPU-seconds; "
            "idle baseline and static RAM power not included"
        )

    @property
    def method(self) -> str:
        """The charge method of tasks charged at this snapshot."""
        return _METHOD.get(self.source, METHOD_PROFILE)

    @classmethod
    def calibrated(
        cls,
        nodes: Iterable[str],
        pooled: PooledRate,
        energy_method: Mapping[str, str],
        meter: str,
        *,
        closed_mono_s: float,
    ) -> RateSnapshot:
        """Every node at the pooled calibration rate."""
        names = list(nodes)
        return cls(
            rates=dict.fromkeys(names, pooled.rate),
            basis=dict.fromkeys(names, "calibration"),
            source="calibration",
            energy_method={c: energy_method.get(c, "none") for c in COMPONENTS},
            meter=meter,
            window_s=0.0,
            closed_mono_s=closed_mono_s,
            index=pooled.windows,
        )
