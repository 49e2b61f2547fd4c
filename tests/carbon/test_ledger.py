"""The emissions ledger: rows, duplicates, CSV, the CodeCarbon-compatible emissions.csv run
summary with its SCI, survival of a kill."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonedge.accounting import ComponentEnergy
from carbonedge.carbon import (
    EmbodiedProfile,
    EmissionsContext,
    EmissionsLedger,
    IntensityReading,
    LedgerError,
    task_row,
)
from carbonedge.carbon.emissions_csv import COLUMNS as EMISSIONS_COLUMNS
from carbonedge.carbon.emissions_csv import write_emissions_csv

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def row(task_id: str, run_id: str = "run-1", node: str = "Node-Green", fallback: bool = False):  # type: ignore[no-untyped-def]
    return task_row(
        task_id=task_id,
        run_id=run_id,
        node=node,
        model="mobilenet_v2",
        runtime="onnx",
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=20),
        latency_ms=20.0,
        cpu_s=0.018,
        energy=ComponentEnergy(2e-6, 0.0, 1e-6),
        intensity=IntensityReading(380.0, node, T0, "static", fallback=fallback),
        pue=1.0,
        energy_method="cpu=cpu-load-model gpu=none ram=constant",
        attribution_method="cputime",
    )


def test_row_applies_eq2_and_marks_fallback() -> None:
    r = row("t1", fallback=True)
    assert r.gco2 == pytest.approx(3e-6 * 380.0)
    assert r.intensity_source == "static+fallback"


def test_append_read_duplicate_and_export(tmp_path: Path) -> None:
    with EmissionsLedger(tmp_path / "ledger.sqlite") as ledger:
        ledger.append(row("t1"))
        ledger.append(row("t2"))
        ledger.append(row("t1", run_id="run-2"))
        with pytest.raises(LedgerError, match="'t1' of run 'run-1' is already recorded"):
            ledger.append(row("t1"))
        assert [r.task_id for r in ledger.rows("run-1")] == ["t1", "t2"]
        assert ledger.rows("run-1")[0] == row("t1")
        assert ledger.export_csv(tmp_path / "rows.csv", "run-1") == 2
        (summary,) = write_emissions_csv(
            tmp_path / "emissions.csv",
            ledger.rows("run-1"),
            EmissionsContext(country_iso_code="FRA"),
        )
        write_emissions_csv(tmp_path / "emissions.csv", ledger.rows("run-2"))
    exported = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert exported[1]["task_id"] == "t2" and float(exported[1]["gco2"]) == pytest.approx(1.14e-3)
    with (tmp_path / "emissions.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == EMISSIONS_COLUMNS  # CodeCarbon's, then ours
        lines = list(reader)
    assert [line["run_id"] for line in lines] == ["run-1", "run-2"]
    assert lines[0]["country_iso_code"] == "FRA" and lines[1]["country_iso_code"] == ""
    assert summary["energy_consumed"] == pytest.approx(6e-6)
    assert summary["emissions"] == pytest.approx(6e-6 * 380.0 / 1000.0)  # kg, as CodeCarbon
    assert summary["intensity_g_per_kwh"] == pytest.approx(380.0)
    assert summary["energy_method"] == "cpu=cpu-load-model gpu=none ram=constant"
    assert summary["attribution_method"] == "cputime"
    # SCI of the run: two inferences, no footprint for Node-Green (M missing, counts 0).
    assert summary["inferences"] == 2 and summary["embodied_label"] == "missing"
    assert summary["sci_g_per_inference"] == pytest.approx(6e-6 * 380.0 / 2)


def test_run_summary_sci_with_an_embodied_footprint(tmp_path: Path) -> None:
    profile = EmbodiedProfile(embodied_kgco2e=31.5576, lifetime_years=1.0, source="test")
    with EmissionsLedger(tmp_path / "ledger.sqlite") as ledger:
        ledger.append(row("t1"))
        (line,) = write_emissions_csv(
            tmp_path / "emissions.csv",
            ledger.rows("run-1"),
            EmissionsContext(embodied_by_node={"Node-Green": profile}),
        )
    # 31.5576 kg over a Julian year is 1 mg per second; the task held the node 20 ms.
    assert line["embodied_g"] == pytest.approx(1e-3 * 0.020)
    assert line["embodied_label"] == "sourced"
    assert line["sci_g_per_inference"] == pytest.approx(3e-6 * 380.0 + 2e-5)


WRITER = """
import sys, time
from datetime import UTC, datetime
from carbonedge.accounting import ComponentEnergy
from carbonedge.carbon import EmissionsLedger, IntensityReading, task_row
ledger = EmissionsLedger(sys.argv[1])
now = datetime.now(UTC)
i = 0
while True:
    ledger.append(task_row(task_id=f"t{i}", run_id="r", node="n", model="m", runtime="torch",
        started_at=now, finished_at=now, latency_ms=1.0, cpu_s=0.001,
        energy=ComponentEnergy(1e-9, 0.0, 0.0), intensity=IntensityReading(1.0, "n", now, "s"),
        pue=1.0, energy_method="fake", attribution_method="cputime"))
    print(i, flush=True)
    i += 1
    time.sleep(0.002)
"""


def test_rows_survive_sigkill_of_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 120  # a guard against a stuck writer, not a speed goal
    while acknowledged < 50 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert acknowledged >= 50
    with EmissionsLedger(db) as ledger:
        ids = {r.task_id for r in ledger.rows("r")}
    # every row the writer acknowledged (printed after append returned) is in the file
    assert {f"t{i}" for i in range(acknowledged + 1)} <= ids


def test_cli_export_writes_codecarbon_compatible_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from carbonedge.cli.main import main

    db = tmp_path / "ledger.sqlite"
    with EmissionsLedger(db) as ledger:
        for r in (row("t1"), row("t2"), row("t1", run_id="run-2")):
            ledger.append(r)
    out = tmp_path / "emissions.csv"
    assert main(["ledger", "export", str(out), "--format", "emissions", "--ledger", str(db)]) == 0
    assert "2 run line(s)" in capsys.readouterr().out
    with out.open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == EMISSIONS_COLUMNS
        lines = list(reader)
    assert [(line["run_id"], line["inferences"]) for line in lines] == [
        ("run-1", "2"),
        ("run-2", "1"),
    ]
