"""Read ledger rows back from a file: the SQLite ledger or its CSV export.

:class:`~carbonedge.carbon.ledger.EmissionsLedger` creates its database when opened, so a
reader must not open one that is not there; and a results folder shipped without the SQLite
file still has ``ledger.csv``. :func:`read_ledger` reads either and returns
:class:`~carbonedge.carbon.ledger.LedgerRow` values with the ledger's own column types.
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import MISSING, fields
from pathlib import Path

from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.ledger import COLUMNS, LedgerRow

_FIELDS = {f.name: f for f in fields(LedgerRow)}
#: Columns every ledger has; the later ones have defaults (a file of an older schema lacks
#: them and its rows get the defaults).
REQUIRED = tuple(n for n, f in _FIELDS.items() if f.default is MISSING)

SQLITE_MAGIC = b"SQLite format 3\x00"


def _convert(name: str, text: str, where: str) -> object:
    """``text`` of a CSV cell as the field's type (annotations are strings in ledger.py)."""
    kind = str(_FIELDS[name].type).replace(" ", "")
    if kind == "str":
        return text
    if kind.endswith("|None") and text in ("", "None"):
        return None
    try:
        return int(text) if kind.startswith("int") else float(text)
    except ValueError as exc:
        raise LedgerError(f"{where}: {name} is not a number: {text!r}") from exc


def _row(values: dict[str, object]) -> LedgerRow:
    return LedgerRow(**{k: v for k, v in values.items() if k in _FIELDS})  # type: ignore[arg-type]


def _read_csv(path: Path) -> list[LedgerRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        have = [c for c in COLUMNS if c in (reader.fieldnames or ())]
        missing = [c for c in REQUIRED if c not in have]
        if missing:
            raise LedgerError(f"{path}: not a ledger CSV (missing columns: {', '.join(missing)})")
        return [
            _row({c: _convert(c, row[c], f"{path}:{i + 2}") for c in have})
            for i, row in enumerate(reader)
        ]


def _read_sqlite(path: Path) -> list[LedgerRow]:
    # A cleanly closed ledger has no -wal file: open it immutable, so that reading leaves no
    # -wal/-shm files behind in a results folder. A live one is read through SQLite's locks.
    live = Path(f"{path}-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if live else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:  # pragma: no cover - connect in ro mode rarely fails here
        raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
    try:
        present = {r[1] for r in db.execute("PRAGMA table_info(tasks)")}
        have = [c for c in COLUMNS if c in present]
        missing = [c for c in REQUIRED if c not in have]
        if missing:
            raise LedgerError(
                f"{path}: not an emissions ledger (no tasks table with {', '.join(missing)})"
            )
        cursor = db.execute(f"SELECT {', '.join(have)} FROM tasks ORDER BY rowid")
        rows = [_row(dict(zip(have, r, strict=True))) for r in cursor]
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: not an emissions ledger ({exc})") from exc
    finally:
        db.close()
    return rows


def read_ledger(path: str | Path) -> list[LedgerRow]:
    """Rows of a ledger file in insertion order: SQLite (``ledger.sqlite``) or CSV
    (``ledger.csv``, :meth:`EmissionsLedger.export_csv`), told apart by content.

    Raises :class:`LedgerError` naming the file when it is missing or not a ledger.
    """
    target = Path(path)
    if not target.is_file():
        raise LedgerError(f"{target}: no such ledger file")
    with target.open("rb") as handle:
        magic = handle.read(len(SQLITE_MAGIC))
    return _read_sqlite(target) if magic == SQLITE_MAGIC else _read_csv(target)
