"""One thread owns the emissions ledger and commits rows in groups, off the request path.

SQLite connections belong to the thread that opened them, and a commit per row on the request
path would put a disk write there. So callers put a :class:`~carbonedge.carbon.LedgerRow` on a
queue (about a microsecond) and get a future; this thread takes every row queued so far, writes
them in one transaction (a *group commit*: one fsync-free WAL commit for many rows) and then
resolves their futures with the row as stored. A caller that answers a client only after its
row's future is done (the engine does) guarantees that every answered task is in the file, even
after a ``kill -9`` of the process.

A write that fails (disk full, file removed) resolves the futures with :class:`LedgerError`,
counts the error and keeps going; :attr:`healthy` turns false so that health checks show it.
Reads (:meth:`recent`, :meth:`query`) are queued behind the rows before them, so they see every
task recorded before they were asked.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from carbonedge.carbon.errors import LedgerError
from carbonedge.carbon.ledger import EmissionsLedger, LedgerRow

__all__ = ["LedgerWriter"]

_Item = tuple[str, Any, "Future[Any]"]


class LedgerWriter:
    """Appends rows to the SQLite ledger at ``path`` from its own thread (group commits).

    Opening fails at once with :class:`LedgerError` (bad path, foreign schema). ``max_group``:
    most rows per transaction.
    """

    def __init__(self, path: Path, *, max_group: int = 512) -> None:
        self.path = path
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self.rows_written = 0
        self.commits = 0
        self.renamed = 0
        self.errors = 0
        self.last_error = ""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="carbonedge-ledger", daemon=True)
        self._thread.start()
        self._ready.result(timeout=60.0)  # re-raises LedgerError (bad path, foreign schema)

    @property
    def healthy(self) -> bool:
        """False once a write has failed (the reason is in :attr:`last_error`)."""
        return self.errors == 0 and self._thread.is_alive()

    def append(self, row: LedgerRow) -> Future[LedgerRow]:
        """Queue one row; the future gives the row as stored once it is committed."""
        future: Future[LedgerRow] = Future()
        if self._closed:
            future.set_exception(LedgerError(f"{self.path}: the ledger is closed"))
            return future
        self._queue.put(("row", row, future))
        return future

    def recent(self, limit: int, timeout_s: float = 10.0) -> list[LedgerRow]:
        """The last ``limit`` rows, oldest first."""
        rows: list[LedgerRow] = self.call(lambda ledger: ledger.query(limit=limit), timeout_s)
        return rows

    def call(self, fn: Callable[[EmissionsLedger], Any], timeout_s: float = 30.0) -> Any:
        """Run ``fn(ledger)`` on the writer's thread, after the rows queued before it."""
        future: Future[Any] = Future()
        self._queue.put(("call", fn, future))
        return future.result(timeout=timeout_s)

    def close(self) -> None:
        """Commit what is queued and close the database; idempotent."""
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60.0)

    def _run(self) -> None:
        try:
            ledger = EmissionsLedger(self.path)
        except LedgerError as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                if item[0] == "call":
                    self._call(ledger, item)
                    continue
                group = [item]
                stop = False
                while len(group) < self.max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    if nxt[0] == "call":
                        self._commit(ledger, group)
                        group = []
                        self._call(ledger, nxt)
                        continue
                    group.append(nxt)
                if group:
                    self._commit(ledger, group)
                if stop:
                    break
        finally:
            ledger.close()
            # Anything queued after close() was decided: fail it rather than leave it waiting.
            while True:
                try:
                    left = self._queue.get_nowait()
                except queue.Empty:
                    break
                if left is not None and not left[2].done():
                    left[2].set_exception(LedgerError(f"{self.path}: the ledger is closed"))

    def _commit(self, ledger: EmissionsLedger, group: list[_Item]) -> None:
        try:
            stored = ledger.append_many([row for _, row, _ in group])
        except (sqlite3.Error, LedgerError, OSError) as exc:
            self.errors += 1
            self.last_error = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {exc}"
            error = LedgerError(f"{self.path}: cannot write {len(group)} row(s): {exc}")
            for _, _, future in group:
                future.set_exception(error)
            return
        self.commits += 1
        self.rows_written += len(stored)
        for (_, row, future), kept in zip(group, stored, strict=True):
            self.renamed += kept.task_id != row.task_id
            future.set_result(kept)

    @staticmethod
    def _call(ledger: EmissionsLedger, item: _Item) -> None:
        _, fn, future = item
        try:
            future.set_result(fn(ledger))
        except Exception as exc:
            future.set_exception(exc)
