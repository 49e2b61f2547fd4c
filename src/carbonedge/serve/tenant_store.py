"""The tenants file of ``carbonedge serve``: names, API-key hashes, budgets and SLOs (SQLite).

**Keys.** ``carbonedge tenants add NAME`` makes a key of 32 random bytes (``secrets``; printed
once as ``ce_`` + URL-safe base64) and stores only its SHA-256. A fast hash is enough here:
slow password hashes (scrypt, argon2) protect *guessable* secrets against offline guessing,
and a 256-bit random key cannot be guessed, so a stolen file yields nothing a slow hash would
have protected, while every request pays for the hash. Checking a presented key is the
gate's (:mod:`carbonedge.serve.tenants`): constant-time comparisons, nothing logged.

The file is created owner-only (0600). Tenants are never deleted (their ledger rows name
them): ``revoke`` refuses a key from then on, ``rotate`` issues a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carbonedge.carbon.ledger import default_ledger_path
from carbonedge.errors import ConfigError

__all__ = [
    "KEY_PREFIX",
    "PERIODS",
    "Tenant",
    "TenantStore",
    "default_tenants_path",
    "hash_api_key",
    "new_api_key",
]

PERIODS = ("day", "month")
KEY_PREFIX = "ce_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SCHEMA_VERSION = 1
_COLUMNS = "name, key_sha256, created_at, revoked_at, budget_gco2, period, slo_ms"


def default_tenants_path() -> Path:
    """``tenants.sqlite`` beside the default emissions ledger."""
    return default_ledger_path().parent / "tenants.sqlite"


def new_api_key() -> str:
    """A new random key: ``ce_`` + 32 random bytes in URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 of the key, hex (see the module docstring for why a fast hash)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tenant:
    """One tenant. ``key_sha256``: hex SHA-256 of its key; ``created_at``/``revoked_at``: ISO
    8601 UTC (``revoked_at`` empty while active); ``budget_gco2``: gCO2 per ``period`` (``day``
    or ``month``, UTC) or None; ``slo_ms``: latency SLO in ms or None."""

    name: str
    key_sha256: str
    created_at: str
    revoked_at: str = ""
    budget_gco2: float | None = None
    period: str = "day"
    slo_ms: float | None = None

    @property
    def active(self) -> bool:
        return not self.revoked_at

    def public(self) -> dict[str, Any]:
        """Everything but the key's hash."""
        return {
            "name": self.name,
            "active": self.active,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at or None,
            "budget_gco2": self.budget_gco2,
            "period": self.period,
            "slo_ms": self.slo_ms,
        }


def _check_limits(budget_gco2: float | None, period: str, slo_ms: float | None) -> None:
    if budget_gco2 is not None and not 0 < budget_gco2 < math.inf:
        raise ConfigError(f"budget: must be a number of gCO2 > 0, got {budget_gco2!r}")
    if period not in PERIODS:
        raise ConfigError(f"period: must be one of {PERIODS}, got {period!r}")
    if slo_ms is not None and not 0 < slo_ms < math.inf:
        raise ConfigError(f"slo_ms: must be a number of ms > 0, got {slo_ms!r}")


class TenantStore:
    """The tenants file: SQLite, one row per tenant (the key's hash, never the key).

    ``create=False``: a missing file is a :class:`ConfigError`. Safe to share between threads.
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise ConfigError(
                    f"{self.path}: no tenants file (create one: carbonedge tenants add NAME "
                    f"--tenants {self.path})"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # owner-only: the hashes are not secrets, but nobody else needs to read them
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._migrate()
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the tenants file: {exc}") from exc

    def _migrate(self) -> None:
        have = [r[1] for r in self._db.execute("PRAGMA table_info(tenants)")]
        if not have:
            self._db.execute(
                "CREATE TABLE tenants (name TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL UNIQUE, "
                "created_at TEXT NOT NULL, revoked_at TEXT NOT NULL DEFAULT '', "
                "budget_gco2 REAL, period TEXT NOT NULL DEFAULT 'day', slo_ms REAL)"
            )
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        elif have != [f.name for f in fields(Tenant)]:
            raise ConfigError(
                f"{self.path}: has a 'tenants' table that is not CarbonEdge's (columns "
                f"{', '.join(have)}); choose another file with --tenants"
            )

    def tenants(self) -> list[Tenant]:
        """Every tenant, revoked ones included, by name."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM tenants ORDER BY name").fetchall()
        return [Tenant(*r) for r in rows]

    def get(self, name: str) -> Tenant:
        for t in self.tenants():
            if t.name == name:
                return t
        raise ConfigError(f"{self.path}: no tenant named {name!r}")

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite ``PRAGMA data_version``)."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def add(
        self,
        name: str,
        *,
        budget_gco2: float | None = None,
        period: str = "day",
        slo_ms: float | None = None,
    ) -> tuple[Tenant, str]:
        """Add a tenant; returns it and its key (shown once: only the hash is kept)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"tenant name: 1-64 characters of A-Z a-z 0-9 . _ - (not starting with . _ -), "
                f"got {name!r}"
            )
        _check_limits(budget_gco2, period, slo_ms)
        key = new_api_key()
        tenant = Tenant(name, hash_api_key(key), _now_iso(), "", budget_gco2, period, slo_ms)
        try:
            with self._lock:
                self._db.execute(
                    f"INSERT INTO tenants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    tuple(getattr(tenant, f.name) for f in fields(Tenant)),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"{self.path}: tenant {name!r} already exists (a new key: carbonedge tenants "
                f"rotate {name})"
            ) from None
        return tenant, key

    def rotate(self, name: str) -> str:
        """Give ``name`` a new key (the old one stops working; a revoked tenant is active
        again); returns the new key."""
        key = new_api_key()
        self._update(name, "key_sha256 = ?, revoked_at = ''", (hash_api_key(key),))
        return key

    def revoke(self, name: str) -> Tenant:
        """Refuse the tenant's key from now on (the tenant stays, its ledger rows too)."""
        self._update(name, "revoked_at = ?", (_now_iso(),))
        return self.get(name)

    def set_budget(
        self, name: str, budget_gco2: float | None, period: str = "day", slo_ms: float | None = None
    ) -> Tenant:
        """Set (None: remove) the tenant's carbon budget per period and latency SLO."""
        _check_limits(budget_gco2, period, slo_ms)
        self._update(name, "budget_gco2 = ?, period = ?, slo_ms = ?", (budget_gco2, period, slo_ms))
        return self.get(name)

    def _update(self, name: str, assignments: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            cur = self._db.execute(
                f"UPDATE tenants SET {assignments} WHERE name = ?", (*args, name)
            )
        if cur.rowcount == 0:
            raise ConfigError(f"{self.path}: no tenant named {name!r}")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
