"""One thread owns the emissions ledger: requests queue their rows, reads go through it too.

SQLite connections belong to the thread that opened them (``EmissionsLedger`` says: one ledger
per thread), and a commit on the request path would put a disk write there. So the service only
puts a :class:`~carbonedge.carbon.LedgerRow` on a queue (about a microsecond); this thread
appends and commits each row (WAL, ``synchronous=NORMAL``: tens of microseconds, off the request
path; batching is not used because a rejected duplicate would leave the ledger's batch
transaction open). A read (``/v1/ledger``) is queued behind the rows before it, so it sees
every request answered before it was asked.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from carbonedge.carbon import EmissionsLedger, LedgerError, LedgerRow
from carbonedge.carbon.ledger import COLUMNS

__all__ = ["LedgerWriter"]


class LedgerWriter:
    """Appends rows to the SQLite ledger at ``path`` from its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self.rows_written = 0
        self.renamed = 0
        self.errors = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="carbonedge-ledger", daemon=True)
        self._thread.start()
        self._ready.result(timeout=30.0)  # re-raises LedgerError (bad path) here

    def append(self, row: LedgerRow) -> None:
        """Queue one row (returns at once)."""
        self._queue.put(("row", row))

    def recent(self, limit: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The last ``limit`` rows, oldest first, as dictionaries (column -> value)."""
        future: Future[list[dict[str, Any]]] = Future()
        self._queue.put(("read", (limit, future)))
        return future.result(timeout=timeout_s)

    def close(self) -> None:
        """Write what is queued, commit, close the database; idempotent."""
        if self._thread.is_alive():
            self._queue.put(("close", None))
            self._thread.join(timeout=30.0)

    def _run(self) -> None:
        try:
            ledger = EmissionsLedger(self.path)
            reader = sqlite3.connect(self.path)
        except (LedgerError, sqlite3.Error) as exc:
            self._ready.set_exception(LedgerError(f"{self.path}: cannot open the ledger: {exc}"))
            return
        self._ready.set_result(None)
        try:
            while True:
                kind, item = self._queue.get()
                if kind == "row":
                    try:
                        self._append(ledger, item)
                    except sqlite3.Error as exc:  # disk full, file removed: count, go on
                        self.errors += 1
                        self.last_error = str(exc)
                elif kind == "read":
                    limit, future = item
                    try:
                        future.set_result(self._read(reader, limit))
                    except sqlite3.Error as exc:
                        future.set_exception(LedgerError(f"{self.path}: cannot read: {exc}"))
                else:
                    break
        finally:
            ledger.close()
            reader.close()

    def _append(self, ledger: EmissionsLedger, row: LedgerRow) -> None:
        # A client may reuse an X-Request-Id; the ledger keeps (run_id, task_id) unique, so a
        # repeated id is stored as "<id>#2", "#3", ... rather than lost.
        candidate, n = row, 1
        while True:
            try:
                ledger.append(candidate)
                break
            except LedgerError:
                n += 1
                candidate = replace(row, task_id=f"{row.task_id}#{n}")
        self.rows_written += 1
        self.renamed += n > 1

    @staticmethod
    def _read(reader: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
        cursor = reader.execute(
            f"SELECT {', '.join(COLUMNS)} FROM tasks ORDER BY rowid DESC LIMIT ?", (limit,)
        )
        rows = [LedgerRow(*r) for r in cursor.fetchall()]
        out = []
        for r in reversed(rows):
            d = asdict(r)
            d["energy_kwh"] = r.energy_kwh
            out.append(d)
        return out
