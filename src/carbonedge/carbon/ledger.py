"""The emissions ledger: one row per inference task, in SQLite (WAL), exportable to CSV.

Each row carries energy per component (kWh), the intensity used (gCO2/kWh), its source, the
time it applies to and whether it was a fallback, the PUE and the resulting gCO2 (Eq. 2), plus
how the energy was obtained and attributed. Rows are committed in WAL mode with
``synchronous=NORMAL``: a committed row survives a ``kill -9`` of the writing process (a power
cut could lose the last commits; that is the price of microsecond inserts).

The file carries its schema version in SQLite's ``user_version`` (:data:`SCHEMA_VERSION`). A
file of the first schema (version 0, fewer columns) is upgraded in place by adding the new
columns; a file whose ``tasks`` table has other columns, or a newer version, is refused with a
:class:`LedgerError` that names the file: a ledger is never silently rewritten or dropped.

Where the ledger lives by default: :func:`default_ledger_path` (``$CARBONEDGE_LEDGER``, else
``$CARBONEDGE_DATA_DIR/ledger.sqlite``, else ``$XDG_DATA_HOME/carbonedge/ledger.sqlite``, else
``~/.local/share/carbonedge/ledger.sqlite``).
"""

from __future__ import annotations

import csv
import operator
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from carbonedge.accounting import ComponentEnergy, carbon_g
from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.intensity import IntensityReading

if TYPE_CHECKING:  # emissions_csv imports this module (through sci): imported where used
    pass


@dataclass(frozen=True)
class LedgerRow:
    """One inference task. Times are ISO 8601 UTC; energy in kWh; intensity in gCO2/kWh.

    ``intensity_at``: the time the intensity applies to (ISO 8601 UTC; a replayed trace's
    time, not the wall clock). ``intensity_fallback``: 1 when the node's source failed and a
    last-known or static value was used. ``tenant``: who sent the task ("" for none).
    ``attempts``: 1 + re-dispatches after node faults. ``decision_margin``: the scheduler's
    score of the chosen node minus the runner-up's (None when the node was not scheduled, or
    was the only eligible one).
    """

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
    intensity_at: str = ""
    intensity_fallback: int = 0
    tenant: str = ""
    attempts: int = 1
    decision_margin: float | None = None

    @property
    def energy_kwh(self) -> float:
        """CPU + GPU + RAM energy of the task, kWh."""
        return self.cpu_energy_kwh + self.gpu_energy_kwh + self.ram_energy_kwh


COLUMNS = tuple(f.name for f in fields(LedgerRow))
_ROW_VALUES = operator.attrgetter(*COLUMNS)
_TYPES = {
    "latency_ms": "REAL",
    "cpu_s": "REAL",
    "pue": "REAL",
    "gco2": "REAL",
    "intensity_fallback": "INTEGER",
    "attempts": "INTEGER",
    "decision_margin": "REAL",
}
#: Version of the ledger's table layout, kept in SQLite's ``user_version``.
SCHEMA_VERSION = 2
#: Columns of schema version 0 (the first release); later columns are added on open.
_V0_COLUMNS = COLUMNS[: COLUMNS.index("attribution_method") + 1]
_ADDED = {
    "intensity_at": "TEXT DEFAULT ''",
    "intensity_fallback": "INTEGER DEFAULT 0",
    "tenant": "TEXT DEFAULT ''",
    "attempts": "INTEGER DEFAULT 1",
    "decision_margin": "REAL",
}


def _sql_type(column: str) -> str:
    return _TYPES.get(column, "REAL" if column.endswith(("_kwh", "_per_kwh")) else "TEXT")


def default_ledger_path() -> Path:
    """Where the ledger is kept unless told otherwise (see the module docstring)."""
    if os.environ.get("CARBONEDGE_LEDGER"):
        return Path(os.environ["CARBONEDGE_LEDGER"]).expanduser()
    data = os.environ.get("CARBONEDGE_DATA_DIR")
    if data:
        return Path(data).expanduser() / "ledger.sqlite"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "carbonedge" / "ledger.sqlite"


def open_ledger_db(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger database at ``path`` with the current schema.

    Upgrades a version-0 file in place; raises :class:`LedgerError` naming the file for a
    foreign ``tasks`` table, a newer schema, a path that is not a writable database file.
    """
    if path.exists() and not path.is_file():
        raise LedgerError(f"{path}: cannot open the emissions ledger: not a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"{path}: cannot open the emissions ledger: {exc}") from exc
    try:
        _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise LedgerError(f"{path}: cannot open the emissions ledger: {exc}") from exc
    except LedgerError:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"{path}: ledger schema version {version} is newer than this CarbonEdge's "
            f"({SCHEMA_VERSION}); upgrade CarbonEdge to read it"
        )
    have = [r[1] for r in db.execute("PRAGMA table_info(tasks)")]
    if not have:
        cols = ", ".join(f"{c} {_sql_type(c)}" for c in COLUMNS)
        db.execute(f"CREATE TABLE tasks ({cols}, PRIMARY KEY (run_id, task_id))")
    elif tuple(have) == _V0_COLUMNS and version == 0:
        for column, decl in _ADDED.items():
            db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {decl}")
    elif tuple(have) != COLUMNS:
        raise LedgerError(
            f"{path}: has a 'tasks' table that is not a CarbonEdge emissions ledger (columns "
            f"{', '.join(have)}); choose another file with --ledger"
        )
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


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
    tenant: str = "",
    attempts: int = 1,
    decision_margin: float | None = None,
) -> LedgerRow:
    """Build a row, computing gCO2 with Eq. 2 from the task's energy, intensity and PUE.

    A fallback intensity is marked in ``intensity_source`` (``...+fallback``) and in
    ``intensity_fallback``.
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
        intensity.at.isoformat(),
        int(intensity.fallback),
        tenant,
        attempts,
        decision_margin,
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
        self._db = open_ledger_db(self.path)
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

    def append_many(self, rows: Sequence[LedgerRow]) -> list[LedgerRow]:
        """Insert ``rows`` in one transaction (one commit: a group commit) and return them as
        stored: a repeated ``(run_id, task_id)`` (a client reusing a request id) is stored as
        ``<id>#2``, ``#3``, ... rather than lost."""
        self.flush()
        stored = []
        self._db.execute("BEGIN")
        try:
            for row in rows:
                candidate, n = row, 1
                while True:
                    try:
                        self._db.execute(self._insert, _ROW_VALUES(candidate))
                        break
                    except sqlite3.IntegrityError:
                        n += 1
                        candidate = replace(row, task_id=f"{row.task_id}#{n}")
                stored.append(candidate)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return stored

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        node: str | None = None,
        model: str | None = None,
        run_id: str | None = None,
        run_prefix: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        """Rows whose task finished in ``[since, until)`` (UTC) and that match every given
        field (``run_prefix``: run ids that start with it), in insertion order; ``limit``: the
        last ``limit`` of them."""
        self.flush()
        where, args = [], []
        if since is not None:
            where.append("finished_at >= ?")
            args.append(since.astimezone(UTC).isoformat())
        if until is not None:
            where.append("finished_at < ?")
            args.append(until.astimezone(UTC).isoformat())
        for column, value in (("node", node), ("model", model), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if run_prefix is not None:
            where.append("substr(run_id, 1, ?) = ?")
            args.extend([len(run_prefix), run_prefix])  # type: ignore[list-item]
        if tenant is not None:
            where.append("tenant = ?")
            args.append(tenant)
        sql = f"SELECT {', '.join(COLUMNS)} FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY rowid DESC LIMIT {int(limit)})"
            rows = [LedgerRow(*r) for r in self._db.execute(sql, args)]
            return rows[::-1]
        return [LedgerRow(*r) for r in self._db.execute(sql + " ORDER BY rowid", args)]

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
        return export_rows_csv(self.rows(run_id), path)

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


def export_rows_csv(rows: Sequence[LedgerRow], path: str | Path) -> int:
    """Write ``rows`` to a CSV file with a header of :data:`COLUMNS`; returns the count."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(tuple(asdict(r).values()) for r in rows)
    return len(rows)
