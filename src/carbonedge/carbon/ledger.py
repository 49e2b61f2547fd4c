"""The emissions ledger: one row per inference task, in SQLite (WAL), exportable to CSV.

Each row carries energy per component (kWh), the intensity used (gCO2/kWh) and its source,
the PUE and the resulting gCO2 (Eq. 2), plus how the energy was obtained and attributed.
Rows are committed one by one in WAL mode with ``synchronous=NORMAL``: a row is durable once
:meth:`EmissionsLedger.append` returns, even if the process is then killed (a power cut could
lose the last commits; that is the price of microsecond inserts).
"""

from __future__ import annotations

import csv
import operator
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from carbonedge.carbon.attribution import ComponentEnergy
from carbonedge.carbon.equations import carbon_g
from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.intensity import IntensityReading


@dataclass(frozen=True)
class LedgerRow:
    """One inference task. Times are ISO 8601 UTC; energy in kWh; intensity in gCO2/kWh."""

    task_id: str
    run_id: str
    node: str
    model: str
    runtime: str
    started_at: str
    finished_at: str
    latency_ms: float
    cpu_s: float
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    gco2: float
    energy_method: str
    attribution_method: str

    @property
    def energy_kwh(self) -> float:
        """CPU + GPU + RAM energy of the task, kWh."""
        return self.cpu_energy_kwh + self.gpu_energy_kwh + self.ram_energy_kwh


COLUMNS = tuple(f.name for f in fields(LedgerRow))
_ROW_VALUES = operator.attrgetter(*COLUMNS)
_TYPES = {"latency_ms": "REAL", "cpu_s": "REAL", "pue": "REAL", "gco2": "REAL"}


def task_row(
    *,
    task_id: str,
    run_id: str,
    node: str,
    model: str,
    runtime: str,
    started_at: datetime,
    finished_at: datetime,
    latency_ms: float,
    cpu_s: float,
    energy: ComponentEnergy,
    intensity: IntensityReading,
    pue: float,
    energy_method: str,
    attribution_method: str,
) -> LedgerRow:
    """Build a row, computing gCO2 with Eq. 2 from the task's energy, intensity and PUE.

    A fallback intensity is marked in ``intensity_source`` (``...+fallback``).
    """
    source = intensity.source + ("+fallback" if intensity.fallback else "")
    return LedgerRow(
        task_id,
        run_id,
        node,
        model,
        runtime,
        started_at.isoformat(),
        finished_at.isoformat(),
        latency_ms,
        cpu_s,
        energy.cpu_energy_kwh,
        energy.gpu_energy_kwh,
        energy.ram_energy_kwh,
        intensity.g_per_kwh,
        source,
        pue,
        carbon_g(energy.energy_kwh, intensity.g_per_kwh, pue),
        energy_method,
        attribution_method,
    )


class EmissionsLedger:
    """SQLite ledger at ``path``; ``(run_id, task_id)`` is unique (a task is recorded once).

    ``batch_size`` rows are committed together (default 1: every row durable on return);
    :meth:`flush` and :meth:`close` commit a partial batch. Use one ledger per thread.
    """

    def __init__(self, path: str | Path, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise LedgerError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        self.batch_size = batch_size
        self._pending = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            cols = ", ".join(
                f"{c} {_TYPES.get(c, 'REAL' if c.endswith(('_kwh', '_per_kwh')) else 'TEXT')}"
                for c in COLUMNS
            )
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS tasks ({cols}, PRIMARY KEY (run_id, task_id))"
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot open the emissions ledger: {exc}") from exc
        marks = ", ".join("?" for _ in COLUMNS)
        self._insert = f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({marks})"

    def append(self, row: LedgerRow) -> None:
        """Insert one row (committed per ``batch_size``); a repeated ``(run_id, task_id)``
        raises LedgerError."""
        if self.batch_size > 1 and self._pending == 0:
            self._db.execute("BEGIN")
        try:
            self._db.execute(self._insert, _ROW_VALUES(row))
        except sqlite3.IntegrityError as exc:
            raise LedgerError(
                f"{self.path}: task {row.task_id!r} of run {row.run_id!r} is already recorded"
            ) from exc
        if self.batch_size > 1:
            self._pending += 1
            if self._pending >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        """Commit rows of a partial batch."""
        if self._pending:
            self._db.execute("COMMIT")
            self._pending = 0

    def rows(self, run_id: str | None = None) -> list[LedgerRow]:
        """All rows (of one run if given), in insertion order."""
        self.flush()
        sql = f"SELECT {', '.join(COLUMNS)} FROM tasks"
        args: tuple[str, ...] = ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        return [LedgerRow(*r) for r in self._db.execute(sql + " ORDER BY rowid", args)]

    def export_csv(self, path: str | Path, run_id: str | None = None) -> int:
        """Write the rows to a CSV file with a header; returns the number of rows."""
        rows = self.rows(run_id)
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(tuple(asdict(r).values()) for r in rows)
        return len(rows)

    def write_run_summary(
        self,
        path: str | Path,
        run_id: str,
        *,
        country_iso_code: str | None = None,
        region: str | None = None,
        project_name: str = "carbonedge",
    ) -> dict[str, object]:
        """Append a CodeCarbon-style ``emissions.csv`` line for ``run_id`` and return it.

        Units as CodeCarbon: duration s, emissions kg CO2, emissions_rate kg/s, power W,
        energy kWh. Energy and emissions are the sums of the run's task rows.
        """
        rows = self.rows(run_id)
        if not rows:
            raise LedgerError(f"{self.path}: no rows for run {run_id!r}")
        start = min(datetime.fromisoformat(r.started_at) for r in rows)
        end = max(datetime.fromisoformat(r.finished_at) for r in rows)
        duration_s = max((end - start).total_seconds(), 1e-9)
        energy = {
            c: sum(getattr(r, f"{c}_energy_kwh") for r in rows) for c in ("cpu", "gpu", "ram")
        }
        total_kwh = sum(energy.values())
        gco2 = sum(r.gco2 for r in rows)
        line: dict[str, object] = {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "project_name": project_name,
            "run_id": run_id,
            "duration": duration_s,
            "emissions": gco2 / 1000.0,
            "emissions_rate": gco2 / 1000.0 / duration_s,
            **{f"{c}_power": energy[c] * 3.6e6 / duration_s for c in ("cpu", "gpu", "ram")},
            **{f"{c}_energy": energy[c] for c in ("cpu", "gpu", "ram")},
            "energy_consumed": total_kwh,
            "country_iso_code": country_iso_code or "",
            "region": region or "",
            "pue": sorted({r.pue for r in rows})[-1],
            "tasks": len(rows),
            "intensity_g_per_kwh": (
                sum(r.intensity_g_per_kwh * r.energy_kwh for r in rows) / total_kwh
                if total_kwh > 0
                else 0.0
            ),
            "energy_method": ";".join(sorted({r.energy_method for r in rows})),
            "attribution_method": ";".join(sorted({r.attribution_method for r in rows})),
        }
        target = Path(path)
        new = not target.exists() or target.stat().st_size == 0
        with target.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(line))
            if new:
                writer.writeheader()
            writer.writerow(line)
        return line

    def close(self) -> None:
        """Commit pending rows and close the database connection."""
        self.flush()
        self._db.close()

    def __enter__(self) -> EmissionsLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
