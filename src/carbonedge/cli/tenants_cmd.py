"""``carbonedge tenants add|list|revoke|rotate|budget``: who may use ``carbonedge serve``.

The tenants file (SQLite) holds each tenant's name, the SHA-256 of its API key, its carbon
budget (gCO2 per UTC day or month) and latency SLO (docs/serving.md). ``add`` and ``rotate``
print the key once; it is not stored and cannot be shown again. A running server applies
changes from its next request.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``tenants`` to the ``carbonedge`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--tenants",
        type=Path,
        default=None,
        help="tenants file (default: tenants.sqlite beside the default ledger, "
        "e.g. ~/.local/share/carbonedge/tenants.sqlite)",
    )
    p = subparsers.add_parser(
        "tenants",
        help="API keys and carbon budgets of the server's tenants",
        description="Manage who may call 'carbonedge serve': API keys (only their SHA-256 is "
        "kept), carbon budgets per day or month and latency SLOs. Without any tenant the "
        "server needs no key and listens on 127.0.0.1 only.",
    )
    sub = p.add_subparsers(dest="tenants_command", metavar="ACTION", required=True)

    a = sub.add_parser("add", parents=[common], help="add a tenant and print its API key once")
    a.add_argument("name", help="1-64 characters of A-Z a-z 0-9 . _ -")
    _budget_options(a)
    a.add_argument("--key-only", action="store_true", help="print the key and nothing else")
    a.set_defaults(handler=_add)

    ls = sub.add_parser("list", parents=[common], help="tenants, their budgets and state")
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(handler=_list)

    r = sub.add_parser("revoke", parents=[common], help="refuse a tenant's key from now on")
    r.add_argument("name")
    r.set_defaults(handler=_revoke)

    ro = sub.add_parser(
        "rotate", parents=[common], help="give a tenant a new key (the old one stops working)"
    )
    ro.add_argument("name")
    ro.add_argument("--key-only", action="store_true", help="print the key and nothing else")
    ro.set_defaults(handler=_rotate)

    b = sub.add_parser("budget", parents=[common], help="set or remove a tenant's carbon budget")
    b.add_argument("name")
    _budget_options(b)
    b.add_argument("--none", action="store_true", help="remove the budget and the SLO")
    b.set_defaults(handler=_budget)


def _budget_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gco2", type=float, default=None, help="carbon budget in gCO2 per period")
    p.add_argument(
        "--per",
        choices=("day", "month"),
        default=None,
        help="budget period, UTC (add: default day; budget: default unchanged)",
    )
    p.add_argument("--slo-ms", type=float, default=None, help="latency SLO in ms")


def _path(args: argparse.Namespace) -> Path:
    from carbonedge.serve.tenants import default_tenants_path

    return Path(args.tenants) if args.tenants is not None else default_tenants_path()


def _print_key(key: str, key_only: bool, what: str) -> None:
    if key_only:
        print(key)
        return
    print(what)
    print("API key (shown once: only its SHA-256 is stored; send it as 'Authorization: Bearer'):")
    print(key)


def _add(args: argparse.Namespace) -> int:
    from carbonedge.serve.tenants import TenantStore

    path = _path(args)
    store = TenantStore(path)
    try:
        tenant, key = store.add(
            args.name, budget_gco2=args.gco2, period=args.per or "day", slo_ms=args.slo_ms
        )
    finally:
        store.close()
    _print_key(key, args.key_only, f"tenant {tenant.name!r} added to {path} ({_limits(tenant)})")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from carbonedge.serve.tenants import TenantStore

    path = _path(args)
    store = TenantStore(path, create=False)
    try:
        key = store.rotate(args.name)
    finally:
        store.close()
    _print_key(key, args.key_only, f"tenant {args.name!r} in {path} has a new key")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from carbonedge.serve.tenants import TenantStore

    path = _path(args)
    store = TenantStore(path, create=False)
    try:
        tenant = store.revoke(args.name)
    finally:
        store.close()
    print(f"tenant {tenant.name!r} revoked at {tenant.revoked_at} ({path})")
    return 0


def _budget(args: argparse.Namespace) -> int:
    from carbonedge.errors import ConfigError
    from carbonedge.serve.tenants import TenantStore

    if args.none and (args.gco2 is not None or args.slo_ms is not None):
        raise ConfigError("--none removes the budget and the SLO: give it without --gco2, --slo-ms")
    if not args.none and args.gco2 is None and args.slo_ms is None and args.per is None:
        raise ConfigError("give --gco2 G, --per day|month and/or --slo-ms X, or --none")
    path = _path(args)
    store = TenantStore(path, create=False)
    try:
        current = store.get(args.name)
        if args.none:
            tenant = store.set_budget(args.name, None, current.period, None)
        else:  # what is not given stays as it was
            tenant = store.set_budget(
                args.name,
                args.gco2 if args.gco2 is not None else current.budget_gco2,
                args.per or current.period,
                args.slo_ms if args.slo_ms is not None else current.slo_ms,
            )
    finally:
        store.close()
    print(f"tenant {tenant.name!r}: {_limits(tenant)} ({path})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from carbonedge.serve.tenants import TenantStore

    path = _path(args)
    if not path.exists():
        print(f"no tenants ({path} does not exist): 'carbonedge serve' needs no API key")
        return 0
    store = TenantStore(path, create=False)
    try:
        tenants = store.tenants()
    finally:
        store.close()
    if args.json:
        print(json.dumps([t.public() for t in tenants], indent=2))
        return 0
    if not tenants:
        print(f"no tenants in {path}: 'carbonedge serve' needs no API key")
        return 0
    head = ["name", "state", "budget", "slo", "created"]
    lines = [
        [t.name, "active" if t.active else f"revoked {t.revoked_at}", _budget_text(t),
         f"{t.slo_ms:g} ms" if t.slo_ms is not None else "-", t.created_at]
        for t in tenants
    ]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    for line in (head, *lines):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    print(f"({path})")
    return 0


def _budget_text(tenant: Any) -> str:
    if tenant.budget_gco2 is None:
        return "-"
    return f"{tenant.budget_gco2:g} gCO2/{tenant.period}"


def _limits(tenant: Any) -> str:
    slo = f"SLO {tenant.slo_ms:g} ms" if tenant.slo_ms is not None else "no SLO"
    budget = _budget_text(tenant)
    return f"budget {budget if budget != '-' else 'none'}, {slo}"
