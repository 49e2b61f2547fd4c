"""Intel/AMD RAPL energy counters through the Linux powercap framework (method ``rapl``).

Source: Linux kernel, Documentation/power/powercap/powercap.rst ("Power Capping Framework").
Each power zone of the ``intel-rapl`` control type is a directory (``intel-rapl:0`` for CPU
package 0, subzones ``intel-rapl:0:0``, ``intel-rapl:0:1`` inside it, all also linked from
``/sys/class/powercap``) with

- ``name`` (ro): the zone's name, e.g. ``package-0``, ``core``, ``uncore``, ``dram``, ``psys``;
- ``energy_uj`` (rw): current energy counter in micro joules;
- ``max_energy_range_uj`` (ro): range of that counter in micro joules (it wraps to 0 there).

AMD processors expose their RAPL counters through the same ``intel-rapl`` zones. What is summed:
``package-N`` into ``cpu`` and ``dram`` into ``ram``; ``core`` and ``uncore`` (subzones of a
package) and ``psys`` (the whole platform, overlapping the packages) are reported, not summed.
``intel-rapl-mmio:*`` zones mirror the package counters and are skipped. Since Linux 5.10
``energy_uj`` is readable by root only (CVE-2020-8694, "Platypus"): that is the usual
"permission denied".

This reader is used directly where CodeCarbon would otherwise fall back to its CPU-load model
(no need for CodeCarbon's hardware detection, and each counter keeps its zone name).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from carbonedge.carbon.sensors.base import Counter, Rail, RailValue, SensorError, SensorSample
from carbonedge.carbon.sensors.sysfs import Opener, read_file, read_label, read_number

POWERCAP_DIR = "sys/class/powercap"
PERMISSION_HINT = (
    "energy_uj is root-only since Linux 5.10 (CVE-2020-8694): run the node as root or give its "
    "user read access to the RAPL files (e.g. with a udev rule)"
)


def _component(zone_name: str) -> str:
    if zone_name.startswith("package-"):
        return "cpu"
    return "ram" if zone_name == "dram" else ""


class RaplSensor:
    """A :class:`~carbonedge.carbon.sensors.base.PowerSensor` over every RAPL zone under
    ``root/sys/class/powercap`` (``root="/"`` on a real host, a fixture tree in tests)."""

    method = "rapl"

    def __init__(
        self,
        root: str | Path = "/",
        *,
        opener: Opener = read_file,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = Path(root) / POWERCAP_DIR
        if not base.is_dir():
            raise SensorError(f"{base}: no powercap directory (kernel without RAPL support?)")
        zones = sorted(p for p in base.iterdir() if p.name.startswith("intel-rapl:"))
        if not zones:
            raise SensorError(f"{base}: no intel-rapl zones (RAPL driver not loaded?)")
        self._opener = opener
        self._clock = clock
        self._rails: list[tuple[Rail, Path, Counter]] = []
        seen: set[str] = set()
        for zone in zones:
            name = read_label(zone / "name", opener)
            # Subzones of different sockets share names (two "dram"): qualify the later ones.
            rail_name = name if name not in seen else f"{name}@{zone.name}"
            seen.add(name)
            range_uj = read_number(zone / "max_energy_range_uj", opener)
            if range_uj <= 0:
                raise SensorError(f"{zone / 'max_energy_range_uj'}: must be > 0, got {range_uj}")
            energy_file = zone / "energy_uj"
            rail = Rail(rail_name, _component(name), "energy", str(energy_file))
            self._rails.append((rail, energy_file, Counter(str(energy_file), range_uj / 1e6)))
        self._closed = False

    def rails(self) -> tuple[Rail, ...]:
        return tuple(r for r, _, _ in self._rails)

    def read(self) -> SensorSample:
        """Every zone's energy (J) since the first read, wrap-around corrected."""
        if self._closed:
            raise SensorError("RAPL sensor read after close()")
        values = {}
        for rail, path, counter in self._rails:
            raw_j = read_number(path, self._opener, PERMISSION_HINT) / 1e6
            values[rail.name] = RailValue(energy_j=counter.update(raw_j))
        return SensorSample(self._clock(), values)

    def close(self) -> None:
        self._closed = True
