"""The CodeCarbon-compatible emissions.csv: CodeCarbon's own columns, order and types."""

from __future__ import annotations

import csv
import dataclasses
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonedge.accounting import ComponentEnergy, MeterInfo
from carbonedge.carbon import IntensityReading, LedgerError, LedgerRow, task_row
from carbonedge.carbon.emissions_csv import (
    CODECARBON_COLUMNS,
    COLUMNS,
    EXTRA_COLUMNS,
    EmissionsContext,
    host_context,
    meter_context,
    write_emissions_csv,
)

emissions_data = pytest.importorskip("codecarbon.output_methods.emissions_data")
EmissionsData = emissions_data.EmissionsData

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def row(task_id: str, run_id: str, node: str, start_s: float, kwh: float, pue: float) -> LedgerRow:
    return task_row(
        task_id=task_id,
        run_id=run_id,
        node=node,
        model="mobilenet_v2",
        runtime="torch",
        started_at=T0 + timedelta(seconds=start_s),
        finished_at=T0 + timedelta(seconds=start_s + 0.5),
        latency_ms=500.0,
        cpu_s=0.4,
        energy=ComponentEnergy(kwh, 0.0, kwh / 2),
        intensity=IntensityReading(400.0 if node == "A" else 200.0, node, T0, "static"),
        pue=pue,
        energy_method="cpu=cpu-load-model gpu=none ram=constant",
        attribution_method="cputime",
    )


ROWS = [
    row("0", "run-1", "A", 0.0, 2e-6, 1.0),
    row("1", "run-1", "B", 1.5, 4e-6, 1.5),  # run-1: 0 .. 2 s
    row("0", "run-2", "A", 10.0, 1e-6, 1.0),
]


def codecarbon_types() -> dict[str, Any]:
    hints = {"str": str, "float": float, "int": int}
    return {
        f.name: f.type if isinstance(f.type, type) else hints[str(f.type)]
        for f in dataclasses.fields(EmissionsData)
    }


def test_header_is_codecarbons_fields_in_order_then_ours() -> None:
    assert list(CODECARBON_COLUMNS) == [f.name for f in dataclasses.fields(EmissionsData)]
    assert COLUMNS == CODECARBON_COLUMNS + EXTRA_COLUMNS
    assert EXTRA_COLUMNS == (
        "tasks", "intensity_g_per_kwh", "energy_method", "attribution_method",
        "inferences", "embodied_g", "embodied_label", "sci_g_per_inference",
    )  # fmt: skip


def test_lines_read_back_as_codecarbon_emissions_data(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    ctx = EmissionsContext(experiment_id="7fe268bec141", country_iso_code="FRA", on_cloud="N")
    write_emissions_csv(path, ROWS[:2], ctx)
    write_emissions_csv(path, ROWS[2:], ctx)  # appends: one header, one line per run
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        lines = list(reader)
    assert [line["run_id"] for line in lines] == ["run-1", "run-2"]
    types = codecarbon_types()
    data = []
    for line in lines:
        typed = {
            name: kind(line[name]) if line[name] != "" else (math.nan if kind is float else "")
            for name, kind in types.items()
        }
        data.append(EmissionsData(**typed))
    first = data[0]
    # run-1: A 2e-6 + 1e-6 kWh at PUE 1; B (4e-6 + 2e-6) x 1.5 = 9e-6 kWh: 12e-6 kWh.
    assert first.cpu_energy == pytest.approx(2e-6 + 4e-6 * 1.5)
    assert first.ram_energy == pytest.approx(1e-6 + 2e-6 * 1.5)
    assert first.energy_consumed == pytest.approx(12e-6)
    # Carbon: 3e-6 x 400 + 6e-6 x 200 x 1.5 = 3.0e-3 g = 3.0e-6 kg, over 2 s.
    assert first.duration == pytest.approx(2.0)
    assert first.emissions == pytest.approx(3.0e-6)
    assert first.emissions_rate == pytest.approx(1.5e-6)
    assert first.cpu_power == pytest.approx(first.cpu_energy * 3.6e6 / 2.0)
    assert first.pue == pytest.approx(12e-6 / 9e-6)  # facility over IT energy
    assert first.timestamp == "2024-05-01T12:00:02"
    assert (first.project_name, first.experiment_id) == ("carbonedge", "7fe268bec141")
    assert (first.country_iso_code, first.on_cloud) == ("FRA", "N")
    # No true value: empty in the file, NaN / "" when typed.
    assert math.isnan(first.water_consumed) and math.isnan(first.cpu_utilization_percent)
    assert math.isnan(first.wue) and first.cloud_provider == ""
    assert lines[0]["tasks"] == "2"
    assert float(lines[0]["intensity_g_per_kwh"]) * first.energy_consumed == pytest.approx(
        first.emissions * 1000.0
    )
    assert data[1].pue == 1.0 and data[1].duration == pytest.approx(0.5)
    # The run's SCI: 3.0e-3 gCO2 over 2 inferences; no footprints given, so M is missing.
    assert lines[0]["inferences"] == "2" and lines[0]["embodied_label"] == "missing"
    assert float(lines[0]["sci_g_per_inference"]) == pytest.approx(3.0e-3 / 2)


def test_context_from_meter_and_host_fill_only_blanks() -> None:
    info = MeterInfo(
        meter="codecarbon",
        version="3.3.2",
        country_iso_code="CAN",
        region="quebec",
        details={"cpu_model": "Xeon", "cpu_count": "2", "gpu_model": "None", "ram_total_gb": "23.5",
                 "tracking_mode": "machine"},
    )  # fmt: skip
    ctx = meter_context(info, EmissionsContext(region="mine"))
    assert (ctx.codecarbon_version, ctx.country_iso_code, ctx.region) == ("3.3.2", "CAN", "mine")
    assert (ctx.cpu_model, ctx.cpu_count, ctx.gpu_model) == ("Xeon", 2.0, "")
    assert (ctx.ram_total_size_gb, ctx.tracking_mode) == (23.5, "machine")
    assert meter_context(MeterInfo(meter="fake", version="x")).codecarbon_version == ""
    host = host_context(ctx)
    assert host.cpu_model == "Xeon" and host.python_version and host.os
    assert host.ram_total_size_gb == 23.5


def test_water_from_a_given_wue(tmp_path: Path) -> None:
    (line,) = write_emissions_csv(tmp_path / "e.csv", ROWS[2:], EmissionsContext(wue_l_per_kwh=1.8))
    assert line["water_consumed"] == pytest.approx(1.5e-6 * 1.8) and line["wue"] == 1.8


def test_refuses_to_append_to_another_header(tmp_path: Path) -> None:
    path = tmp_path / "emissions.csv"
    path.write_text("timestamp,project_name,run_id,duration\nx,y,z,1\n", encoding="utf-8")
    with pytest.raises(LedgerError, match="has another header"):
        write_emissions_csv(path, ROWS)
    write_emissions_csv(path, ROWS, append=False)
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
