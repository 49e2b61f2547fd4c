"""Tenants of ``carbonedge serve``: API keys, carbon budgets and latency SLOs per tenant.

**Keys** are random and stored as SHA-256 hashes (:mod:`carbonedge.serve.tenant_store` says
why a fast hash is right for them). A presented key is hashed and compared with every tenant's
hash by :func:`hmac.compare_digest`, without stopping at a match, so the time taken does not
tell which stored hash matched or where they differ. Keys appear in no log line, no error
message and no answer; a refusal is a 401 with a JSON body.

**Open mode.** With no tenant in the file (or no file), requests need no key and the ledger's
``tenant`` column stays empty. That is allowed on a loopback address only; binding another
address without tenants needs ``allow_open`` (``--allow-open``). Tenants added, revoked or
re-budgeted while the server runs apply from the next request (SQLite's ``data_version`` is
checked per request, a few microseconds); once a tenant exists, every request needs a key.

**Budgets** (gCO2 per UTC day or calendar month, optional latency SLO). Usage is the sum of
the tenant's ledger rows in the period, read once at start (so it survives restarts), plus the
carbon of every task answered since. Placement, per request:

- a tenant with an SLO is placed by ``Scheduler("constrained", slo_ms=...)`` (least predicted
  carbon among nodes that meet it); one without uses the server's default scheduler;
- once this request (its predicted carbon, with the use and the reservations in flight) would
  pass :data:`APPROACH_FRACTION` of the budget, it is placed by the constrained policy
  (the SLO if any, else none: the least-carbon node) with ``carbon_budget_g`` = the per-task
  allowance: the remaining budget spread over the tasks expected until the reset at the
  tenant's pace so far in the period (``tasks x time left / time elapsed``, at least 1). The
  constrained policy always prefers the least-carbon node that meets the SLO; the allowance
  marks decisions that exceed it (a tenant's SLO wins over its budget);
- **reservations**: admission reserves the request's predicted carbon (:meth:`TenantGate.
  placement`): the largest charge among the server's last :data:`RECENT_CHARGES` answered
  tasks, or, before any task has been charged, the whole remaining budget (so a tenant's first
  request runs alone). A request whose prediction does not fit ``budget - used - reserved`` is
  refused with a 429 at once. The answer settles the reservation with the measured charge; a
  failed or refused request releases it. So ``used`` can pass the budget only by the amount
  in-flight tasks cost above their prediction, ``sum(max(0, charge - prediction))``: nothing
  while tasks cost what recent ones did, about one request's carbon when one costs more than
  any recent one (docs/security.md), whatever the concurrency;
- once usage reaches the budget: 429 with the budget, its use, its reset time and
  ``Retry-After`` (seconds to the reset; 1 s when only in-flight reservations fill it).

Periods follow the wall clock in UTC, as the ledger's ``finished_at`` does.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Security
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from carbonedge.carbon.ledger_writer import LedgerWriter
from carbonedge.engine import Outcome
from carbonedge.errors import ConfigError
from carbonedge.scheduling import Scheduler
from carbonedge.serve.errors import ServeError
from carbonedge.serve.tenant_store import (
    KEY_PREFIX,
    PERIODS,
    Tenant,
    TenantStore,
    default_tenants_path,
    hash_api_key,
    new_api_key,
)

__all__ = [
    "APPROACH_FRACTION",
    "BEARER",
    "KEY_PREFIX",
    "PERIODS",
    "RECENT_CHARGES",
    "Admission",
    "BudgetExhausted",
    "Tenant",
    "TenantGate",
    "TenantStore",
    "default_tenants_path",
    "hash_api_key",
    "is_loopback",
    "new_api_key",
    "open_gate",
    "per_task_allowance_g",
    "period_bounds",
    "tenants_router",
]

log = logging.getLogger(__name__)

#: Fraction of the budget used from which a tenant's tasks go to the greenest nodes.
APPROACH_FRACTION = 0.5
#: Answered tasks whose largest charge is the prediction a budgeted request reserves.
RECENT_CHARGES = 256

#: The ``Authorization: Bearer <key>`` scheme, as the OpenAPI schema shows it (checked by
#: :class:`TenantGate`, not here: a missing key must be a JSON 401, not FastAPI's 403).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="A tenant's API key (`carbonedge tenants add NAME` prints it). Not needed while "
    "no tenant is configured.",
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """(start, reset) of the UTC day or calendar month holding ``now``."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start, start.replace(year=year, month=month)
    raise ConfigError(f"period: must be one of {PERIODS}, got {period!r}")


def per_task_allowance_g(
    budget_g: float, used_g: float, tasks: int, elapsed_s: float, left_s: float
) -> float:
    """The remaining budget over the tasks expected until the reset at the pace so far, gCO2.

    Expected tasks = ``ceil(tasks x left_s / elapsed_s)``, at least 1 (elapsed at least 1 s).
    """
    expected = max(1, math.ceil(tasks * left_s / max(elapsed_s, 1.0)))
    return max(0.0, budget_g - used_g) / expected


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetExhausted(ServeError):
    """The tenant's carbon budget for the period is spent (HTTP 429 with Retry-After)."""

    status = 429

    def __init__(self, message: str, details: dict[str, Any], retry_after_s: float) -> None:
        super().__init__(message)
        self.details = details
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Admission:
    """Who sent a request and how to place it. ``tenant``: the name ("" in open mode);
    ``scheduler``: None for the server's default; ``allowance_g``: the per-task carbon
    allowance passed to the constrained policy (None: no budget pressure); ``reserved_g``:
    the carbon reserved against the tenant's budget until the request is settled or
    released (0: none)."""

    tenant: str
    scheduler: Scheduler | None = None
    allowance_g: float | None = None
    reserved_g: float = 0.0


@dataclass
class _Usage:
    day_g: float = 0.0
    month_g: float = 0.0
    day_tasks: int = 0
    month_tasks: int = 0
    reserved_g: float = 0.0  # predicted carbon of the tenant's requests in flight

    def of(self, period: str) -> tuple[float, int]:
        return (self.day_g, self.day_tasks) if period == "day" else (self.month_g, self.month_tasks)


@dataclass
class _Periods:
    day: datetime
    month: datetime
    usage: dict[str, _Usage] = field(default_factory=dict)


class TenantGate:
    """Authenticates requests and enforces budgets: see the module docstring.

    ``store``: the tenants file (None: open, no tenants). ``ledger``: where usage is re-read at
    start (:meth:`load_usage`). ``now``: wall-clock time in UTC (tests pass their own).
    Use :meth:`authenticate` and :meth:`admit` as FastAPI dependencies and call :meth:`charge`
    with every answered task.
    """

    def __init__(
        self,
        store: TenantStore | None,
        *,
        ledger: LedgerWriter | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.now = now
        self._lock = threading.Lock()
        self._version = -1
        self._tenants: tuple[Tenant, ...] = ()
        self._schedulers: dict[float, Scheduler] = {}
        self._recent: deque[float] = deque(maxlen=RECENT_CHARGES)
        t = now()
        self._periods = _Periods(period_bounds("day", t)[0], period_bounds("month", t)[0])
        self._refresh()

    @property
    def required(self) -> bool:
        """Whether requests need a key: some tenant exists (revoked ones count: revoking the
        last tenant must not open the server)."""
        self._refresh()
        return bool(self._tenants)

    def describe(self) -> str:
        """One line for the start-up banner."""
        active = sum(t.active for t in self._tenants)
        if not self._tenants:
            return "none: open, requests need no API key"
        return f"{active} active tenant(s): requests need 'Authorization: Bearer <key>'"

    def close(self) -> None:
        """Close the tenants file."""
        if self.store is not None:
            self.store.close()

    # -- dependencies ----------------------------------------------------------------------------

    async def authenticate(
        self, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)
    ) -> Admission:
        """The request's tenant (401 without a valid key while tenants exist)."""
        tenant = self._identify(credentials)
        return Admission(tenant.name if tenant else "")

    async def admit(
        self, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)
    ) -> Admission:
        """:meth:`authenticate`, then the tenant's budget: 429 when spent, else how to place."""
        tenant = self._identify(credentials)
        if tenant is None:
            return Admission("")
        return self.placement(tenant)

    # -- budgets ---------------------------------------------------------------------------------

    def placement(self, tenant: Tenant) -> Admission:
        """How to place the tenant's next task now, with its carbon reserved against the
        tenant's budget (see the module docstring; raises :class:`BudgetExhausted`). Every
        admission must end in :meth:`settle` or :meth:`release`."""
        slo = tenant.slo_ms
        if tenant.budget_gco2 is None:
            return Admission(tenant.name, self._slo_scheduler(slo))
        now = self.now()
        start, reset = period_bounds(tenant.period, now)
        budget = tenant.budget_gco2
        with self._lock:
            self._roll(now)
            usage = self._periods.usage.setdefault(tenant.name, _Usage())
            used, tasks = usage.of(tenant.period)
            reserved = usage.reserved_g
            predicted = max(self._recent) if self._recent else None
            need = max(0.0, budget - used) if predicted is None else predicted
            fits = used < budget and used + reserved + need <= budget
            if fits:
                usage.reserved_g += need
        if not fits:
            spent = used >= budget
            wait_s = max(1.0, (reset - now).total_seconds()) if spent else 1.0
            details = {
                "budget": {
                    "tenant": tenant.name,
                    "period": tenant.period,
                    "limit_gco2": budget,
                    "used_gco2": used,
                    "reserved_gco2": reserved,
                    "request_gco2": need,
                    "resets_at": reset.isoformat(),
                }
            }
            why = (
                f"has spent its carbon budget for this {tenant.period}: {used:.6g} of "
                f"{budget:.6g} gCO2 used"
                if spent
                else f"has too little carbon budget left for this request: {used:.6g} of "
                f"{budget:.6g} gCO2 used, {reserved:.6g} reserved by requests in flight, this "
                f"one predicted {need:.6g}"
            )
            raise BudgetExhausted(
                f"tenant {tenant.name!r} {why}; it resets at {reset.isoformat()}", details, wait_s
            )
        # pressure: this request would take the period's use past the approach fraction
        if used + reserved + (predicted or 0.0) < APPROACH_FRACTION * budget:
            return Admission(tenant.name, self._slo_scheduler(slo), reserved_g=need)
        allowance = per_task_allowance_g(
            budget,
            used,
            tasks,
            (now - start).total_seconds(),
            (reset - now).total_seconds(),
        )
        scheduler = Scheduler("constrained", slo_ms=slo, carbon_budget_g=allowance)
        return Admission(tenant.name, scheduler, allowance, reserved_g=need)

    def release(self, admission: Admission) -> None:
        """Give back an admission's reservation (the request failed or was refused)."""
        if admission.reserved_g:
            with self._lock:
                usage = self._periods.usage.setdefault(admission.tenant, _Usage())
                usage.reserved_g = max(0.0, usage.reserved_g - admission.reserved_g)

    def settle(self, admission: Admission, outcome: Outcome) -> None:
        """Replace an admission's reservation with the answered task's measured charge."""
        self.release(admission)
        self.charge(admission.tenant, outcome)

    def _slo_scheduler(self, slo_ms: float | None) -> Scheduler | None:
        """One constrained scheduler per SLO value, reused: the engine batches together only
        tasks placed by the same scheduler object."""
        if slo_ms is None:
            return None
        with self._lock:
            found = self._schedulers.get(slo_ms)
            if found is None:
                found = self._schedulers[slo_ms] = Scheduler("constrained", slo_ms=slo_ms)
            return found

    def budget_table(self) -> list[dict[str, Any]]:
        """One dict per tenant: budget, use this period, state (for the dashboard)."""
        self._refresh()
        now = self.now()
        out = []
        for t in self._tenants:
            used, tasks = self.usage(t.name, t.period)
            out.append(
                {
                    "tenant": t.name,
                    "state": "active" if t.active else "revoked",
                    "budget_gco2": t.budget_gco2,
                    "period": t.period,
                    "used_gco2": used,
                    "used_pct": None if t.budget_gco2 is None else 100.0 * used / t.budget_gco2,
                    "tasks": tasks,
                    "slo_ms": t.slo_ms,
                    "resets_at": period_bounds(t.period, now)[1].isoformat(),
                }
            )
        return out

    def usage(self, tenant: str, period: str) -> tuple[float, int]:
        """(gCO2, tasks) of ``tenant`` in the current ``period`` ("day" or "month")."""
        with self._lock:
            self._roll(self.now())
            return self._periods.usage.get(tenant, _Usage()).of(period)

    def charge(self, tenant: str, outcome: Outcome) -> None:
        """Count an answered task's carbon (its ledger row's, by the row's finish time); it
        also becomes a recent charge, what budgeted requests reserve."""
        with self._lock:
            self._recent.append(outcome.charge.gco2)
        if not tenant:
            return
        finished = datetime.fromisoformat(outcome.row.finished_at)
        self.add_usage(tenant, outcome.charge.gco2, finished)

    def add_usage(self, tenant: str, gco2: float, finished: datetime) -> None:
        with self._lock:
            self._roll(self.now())
            p = self._periods
            u = p.usage.setdefault(tenant, _Usage())
            if finished >= p.month:
                u.month_g += gco2
                u.month_tasks += 1
                if finished >= p.day:
                    u.day_g += gco2
                    u.day_tasks += 1

    def load_usage(self, timeout_s: float = 60.0) -> int:
        """Re-read this month's usage of every tenant from the ledger (at start); returns the
        number of rows read."""
        if self.ledger is None:
            return 0
        with self._lock:
            self._roll(self.now())
            since = self._periods.month
            self._periods.usage.clear()
        rows = self.ledger.call(lambda ledger: ledger.query(since=since), timeout_s)
        n = 0
        for r in rows:
            if r.tenant:
                self.add_usage(r.tenant, r.gco2, datetime.fromisoformat(r.finished_at))
                n += 1
        return n

    def _roll(self, now: datetime) -> None:
        """Start new periods when ``now`` has passed their reset (under the lock)."""
        p = self._periods
        day, month = period_bounds("day", now)[0], period_bounds("month", now)[0]
        if day != p.day:
            p.day = day
            for u in p.usage.values():
                u.day_g, u.day_tasks = 0.0, 0
        if month != p.month:
            p.month = month
            for u in p.usage.values():
                u.month_g, u.month_tasks = 0.0, 0

    def tenant(self, name: str) -> Tenant:
        """The tenant named ``name`` as the file says now."""
        self._refresh()
        for t in self._tenants:
            if t.name == name:
                return t
        raise ConfigError(f"no tenant named {name!r}")

    # -- keys ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self.store is None:
            return
        version = self.store.data_version()
        if version != self._version:
            self._tenants = tuple(self.store.tenants())
            self._version = version

    def _identify(self, credentials: HTTPAuthorizationCredentials | None) -> Tenant | None:
        self._refresh()
        tenants = self._tenants
        if not tenants:
            return None
        if credentials is None or not credentials.credentials:
            log.warning("refused a request without an API key (401)")
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        presented = hash_api_key(credentials.credentials)
        found: Tenant | None = None
        for t in tenants:  # every hash is compared: no early exit
            if hmac.compare_digest(presented, t.key_sha256) and t.active:
                found = t
        if found is None:
            log.warning("refused a request with an invalid or revoked API key (401)")
            raise _unauthorized("invalid or revoked API key")
        return found


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def tenants_router(gate: TenantGate) -> APIRouter:
    """``GET /v1/tenant``: the caller's tenant, budget and usage this period."""
    router = APIRouter()

    @router.get(
        "/v1/tenant",
        summary="The caller's tenant, carbon budget and usage this period",
        responses={401: {"description": "missing, invalid or revoked API key"}},
    )
    async def whoami(admission: Admission = Depends(gate.authenticate)) -> Response:
        if not admission.tenant:
            return JSONResponse({"tenant": None, "open": True})
        tenant = gate.tenant(admission.tenant)
        start, reset = period_bounds(tenant.period, gate.now())
        used, tasks = gate.usage(tenant.name, tenant.period)
        body = tenant.public()
        body.update(
            open=False,
            used_gco2=used,
            tasks=tasks,
            period_start=start.isoformat(),
            resets_at=reset.isoformat(),
            remaining_gco2=None if tenant.budget_gco2 is None else tenant.budget_gco2 - used,
        )
        return JSONResponse({"tenant": body})

    return router


def open_gate(
    path: Path | None,
    host: str,
    *,
    allow_open: bool = False,
    ledger: LedgerWriter | None = None,
    now: Callable[[], datetime] = _utc_now,
) -> TenantGate:
    """The gate of a server on ``host`` with the tenants file ``path`` (None or missing: no
    tenants), its usage re-read from ``ledger``. Without tenants, an address other than
    loopback needs ``allow_open``."""
    store = TenantStore(path, create=False) if path is not None and path.exists() else None
    gate = TenantGate(store, ledger=ledger, now=now)
    if not gate.required and not is_loopback(host) and not allow_open:
        if store is not None:
            store.close()
        where = f"no tenants in {path}" if path is not None else "no tenants file"
        raise ConfigError(
            f"refusing to serve {host} without API keys ({where}): add a tenant "
            "with 'carbonedge tenants add NAME', listen on 127.0.0.1, or pass --allow-open"
        )
    gate.load_usage()
    return gate
