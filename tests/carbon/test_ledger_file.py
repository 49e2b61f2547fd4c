"""Reading ledger rows back from ledger.sqlite or ledger.csv, of this schema or the first."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonedge.accounting import ComponentEnergy
from carbonedge.carbon import EmissionsLedger, IntensityReading, LedgerError, task_row
from carbonedge.carbon.ledger_file import REQUIRED, read_ledger

T0 = datetime(2024, 5, 1, tzinfo=UTC)
ROWS = [
    task_row(
        task_id=f"t{i}",
        run_id="r",
        node="n",
        model="m",
        runtime="torch",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        latency_ms=1000.0,
        cpu_s=0.5,
        energy=ComponentEnergy(1e-6, 0.0, 2e-7),
        intensity=IntensityReading(380.0, "n", T0, "static"),
        pue=1.1,
        energy_method="cpu=rapl gpu=none ram=constant",
        attribution_method="cputime",
    )
    for i in range(3)
]


def test_sqlite_and_csv_give_the_same_rows_and_leave_no_files(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    with EmissionsLedger(db) as ledger:
        for r in ROWS[:2]:
            ledger.append(r)
        assert read_ledger(db) == ROWS[:2]  # a live ledger (its -wal file exists)
        ledger.append(ROWS[2])
        ledger.export_csv(tmp_path / "ledger.csv")
    assert read_ledger(db) == ROWS == read_ledger(tmp_path / "ledger.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv", "ledger.sqlite"]


def test_first_schema_files_get_the_later_columns_defaults(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUIRED)
        writer.writerow([getattr(ROWS[0], c) for c in REQUIRED])
    # A first-schema file has no intensity_at (and the other later columns): defaults.
    assert read_ledger(path) == [replace(ROWS[0], intensity_at="")]
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(f"CREATE TABLE tasks ({', '.join(REQUIRED)})")
        db.execute(f"INSERT INTO tasks VALUES ({', '.join('?' for _ in REQUIRED)})",
                   [getattr(ROWS[1], c) for c in REQUIRED])  # fmt: skip
    db.close()
    assert read_ledger(old) == [replace(ROWS[1], intensity_at="")]


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no such ledger file"):
        read_ledger(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(LedgerError, match=r"bad.csv: not a ledger CSV \(missing columns: task_id"):
        read_ledger(bad)
    text = ",".join(REQUIRED) + "\n" + ",".join("x" for _ in REQUIRED) + "\n"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(LedgerError, match=r"bad.csv:2: latency_ms is not a number: 'x'"):
        read_ledger(bad)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (a)")
    db.close()
    with pytest.raises(LedgerError, match=r"other\.sqlite: not an emissions ledger"):
        read_ledger(other)
