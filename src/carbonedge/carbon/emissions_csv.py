"""A CodeCarbon-compatible ``emissions.csv``: one line per run, from ledger rows.

The columns are every field of CodeCarbon's ``EmissionsData``
(``codecarbon.output_methods.emissions_data``, v3.3) in CodeCarbon's order, so the file
opens in CodeCarbon's dashboard and in any tool written for its output, then ours:
``tasks``, ``intensity_g_per_kwh``, ``energy_method``, ``attribution_method`` and the run's
Software Carbon Intensity (:mod:`carbonedge.carbon.sci`): ``inferences`` (R), ``embodied_g``
(M, gCO2e) with ``embodied_label`` (``sourced``, or ``missing`` when a node that ran tasks has
no footprint in :attr:`EmissionsContext.embodied_by_node`) and ``sci_g_per_inference``.

Units as CodeCarbon: ``duration`` s, ``emissions`` kg CO2eq, ``emissions_rate`` kg/s,
``*_power`` W (mean over the run), ``*_energy`` and ``energy_consumed`` kWh,
``water_consumed`` L, ``ram_total_size`` GB. As in CodeCarbon, energy and power include the
PUE (CodeCarbon multiplies both by it), so ``emissions x 1000 = energy_consumed x
intensity_g_per_kwh``; ``pue`` is the run's effective PUE (facility over IT energy).

Where the ledger (and the :class:`EmissionsContext` the caller passes) has no true value the
cell is empty, never a guess: ``water_consumed`` and ``wue`` without a WUE, CodeCarbon's
utilisation columns (``cpu_utilization_percent``, ``gpu_utilization_percent``,
``ram_utilization_percent``, ``ram_used_gb``: host-wide samples we do not keep per run),
location and cloud fields nobody gave. CodeCarbon's own types apply when read back (empty
float -> NaN, as pandas reads CodeCarbon's files). ``run_id`` is the ledger's run id (a string
such as ``mobilenet_v2/ce-green/r0``), not a UUID.
"""

from __future__ import annotations

import csv
import math
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonedge.accounting import COMPONENTS, MeterInfo, totals
from carbonedge.accounting.units import watts
from carbonedge.carbon.embodied import EmbodiedProfile
from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.sci import sci_score

if TYPE_CHECKING:  # ledger.py may import this module: no import cycle at run time
    from carbonedge.carbon.ledger import LedgerRow

#: ``dataclasses.fields(codecarbon.output_methods.emissions_data.EmissionsData)`` of
#: CodeCarbon 3.3, in order (a test compares it with the installed CodeCarbon).
CODECARBON_COLUMNS = (
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
)
EXTRA_COLUMNS = (
    "tasks",
    "intensity_g_per_kwh",
    "energy_method",
    "attribution_method",
    "inferences",
    "embodied_g",
    "embodied_label",
    "sci_g_per_inference",
)
COLUMNS = CODECARBON_COLUMNS + EXTRA_COLUMNS

Cell = str | float | int | None


@dataclass(frozen=True)
class EmissionsContext:
    """What the ledger rows do not say: project, location, host, meter. Empty string or None
    means unknown and is written as an empty cell. ``ram_total_size_gb`` in GB,
    ``wue_l_per_kwh`` in L/kWh (water usage effectiveness), ``on_cloud`` ``"Y"``/``"N"``.
    ``embodied_by_node``: each node's device footprint (``NodeSpec.embodied``) for the SCI's
    M term; a node absent or None has M = 0, labelled ``missing``."""

    project_name: str = "carbonedge"
    experiment_id: str = ""
    country_name: str = ""
    country_iso_code: str = ""
    region: str = ""
    cloud_provider: str = ""
    cloud_region: str = ""
    on_cloud: str = ""
    os: str = ""
    python_version: str = ""
    codecarbon_version: str = ""
    cpu_count: float | None = None
    cpu_model: str = ""
    gpu_count: float | None = None
    gpu_model: str = ""
    longitude: float | None = None
    latitude: float | None = None
    ram_total_size_gb: float | None = None
    tracking_mode: str = ""
    wue_l_per_kwh: float | None = None
    embodied_by_node: Mapping[str, EmbodiedProfile | None] = field(default_factory=dict)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def meter_context(info: MeterInfo, base: EmissionsContext | None = None) -> EmissionsContext:
    """``base`` with the blanks filled from the meter that measured the rows (CodeCarbon's
    version, location, CPU/GPU model and count, RAM size, tracking mode)."""
    ctx = base or EmissionsContext()
    details = info.details
    found: dict[str, Any] = {
        "codecarbon_version": info.version if info.meter == "codecarbon" else "",
        "country_iso_code": info.country_iso_code or "",
        "region": info.region or "",
        "cpu_model": details.get("cpu_model", ""),
        "cpu_count": _number(details.get("cpu_count")),
        "gpu_model": details.get("gpu_model", "") if details.get("gpu_model") != "None" else "",
        "ram_total_size_gb": _number(details.get("ram_total_gb")),
        "tracking_mode": details.get("tracking_mode", ""),
    }
    return replace(ctx, **{k: v for k, v in found.items() if getattr(ctx, k) in ("", None)})


def host_context(base: EmissionsContext | None = None) -> EmissionsContext:
    """``base`` with the blanks filled from this machine (OS, Python, logical CPUs, CPU
    model from ``/proc/cpuinfo``, RAM). Only true when the rows ran on this machine (a local
    fleet), not on a Ray cluster's other hosts."""
    import psutil

    ctx = base or EmissionsContext()
    cpu_model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    found: dict[str, Any] = {
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "cpu_count": float(os.cpu_count() or 0) or None,
        "cpu_model": cpu_model,
        "ram_total_size_gb": psutil.virtual_memory().total / 2**30,
    }
    return replace(ctx, **{k: v for k, v in found.items() if getattr(ctx, k) in ("", None)})


def _run_line(run_id: str, rows: list[LedgerRow], ctx: EmissionsContext) -> dict[str, Cell]:
    start = min(datetime.fromisoformat(r.started_at) for r in rows)
    end = max(datetime.fromisoformat(r.finished_at) for r in rows)
    duration_s = (end - start).total_seconds()
    charged = totals(rows)  # the run's figures, as in runs.csv and the tables
    it_kwh = charged.energy_kwh
    kwh = {c: math.fsum(getattr(r, f"{c}_energy_kwh") * r.pue for r in rows) for c in COMPONENTS}
    total_kwh = math.fsum(kwh.values())
    gco2 = charged.gco2
    pues = {r.pue for r in rows}
    pue = next(iter(pues)) if len(pues) == 1 else (total_kwh / it_kwh if it_kwh > 0 else None)
    wue = ctx.wue_l_per_kwh
    stamp = end.astimezone(UTC) if end.tzinfo else end
    sci = sci_score(rows, embodied_by_node=ctx.embodied_by_node)
    line: dict[str, Cell] = {
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": ctx.project_name,
        "run_id": run_id,
        "experiment_id": ctx.experiment_id,
        "duration": duration_s,
        "emissions": gco2 / 1000.0,
        "emissions_rate": gco2 / 1000.0 / duration_s if duration_s > 0 else None,
        **{f"{c}_power": watts(kwh[c], duration_s) if duration_s > 0 else None for c in kwh},
        **{f"{c}_energy": kwh[c] for c in kwh},
        "energy_consumed": total_kwh,
        "water_consumed": total_kwh * wue if wue is not None else None,
        "country_name": ctx.country_name,
        "country_iso_code": ctx.country_iso_code,
        "region": ctx.region,
        "cloud_provider": ctx.cloud_provider,
        "cloud_region": ctx.cloud_region,
        "os": ctx.os,
        "python_version": ctx.python_version,
        "codecarbon_version": ctx.codecarbon_version,
        "cpu_count": ctx.cpu_count,
        "cpu_model": ctx.cpu_model,
        "gpu_count": ctx.gpu_count,
        "gpu_model": ctx.gpu_model,
        "longitude": ctx.longitude,
        "latitude": ctx.latitude,
        "ram_total_size": ctx.ram_total_size_gb,
        "tracking_mode": ctx.tracking_mode,
        "cpu_utilization_percent": None,
        "gpu_utilization_percent": None,
        "ram_utilization_percent": None,
        "ram_used_gb": None,
        "on_cloud": ctx.on_cloud,
        "pue": pue,
        "wue": wue,
        "tasks": len(rows),
        "intensity_g_per_kwh": gco2 / total_kwh if total_kwh > 0 else None,
        "energy_method": ";".join(sorted({r.energy_method for r in rows})),
        "attribution_method": ";".join(sorted({r.attribution_method for r in rows})),
        "inferences": sci.inferences,
        "embodied_g": sci.embodied_g,
        "embodied_label": sci.embodied_label,
        "sci_g_per_inference": sci.sci_g_per_inference,
    }
    return line


def emissions_lines(
    rows: Iterable[LedgerRow], context: EmissionsContext | None = None
) -> list[dict[str, Cell]]:
    """One line per ``run_id`` (in first-seen order), keyed by :data:`COLUMNS`; None = empty.

    Energy and emissions are the sums of the run's rows; ``duration`` is first task start to
    last task end.
    """
    ctx = context or EmissionsContext()
    runs: dict[str, list[LedgerRow]] = {}
    for row in rows:
        runs.setdefault(row.run_id, []).append(row)
    return [_run_line(run_id, run_rows, ctx) for run_id, run_rows in runs.items()]


def write_emissions_csv(
    path: str | Path,
    rows: Iterable[LedgerRow],
    context: EmissionsContext | None = None,
    *,
    append: bool = True,
) -> list[dict[str, Cell]]:
    """Write (``append``: add to) a CodeCarbon-compatible ``emissions.csv`` at ``path``: one
    line per run of ``rows``, header when the file is new or empty. Returns the lines.

    Appending to a file whose header is not :data:`COLUMNS` (an older CarbonEdge summary, a
    different CodeCarbon version) raises :class:`LedgerError` naming the file.
    """
    target = Path(path)
    lines = emissions_lines(rows, context)
    new = not append or not target.exists() or target.stat().st_size == 0
    if not new:
        with target.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
        if tuple(header) != COLUMNS:
            raise LedgerError(
                f"{target}: has another header ({len(header)} columns); "
                f"write the CodeCarbon-compatible lines to a new file"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w" if new else "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for line in lines:
            writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return lines
