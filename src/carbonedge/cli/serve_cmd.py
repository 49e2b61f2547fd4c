"""``carbonedge serve``: a carbon-aware HTTP inference endpoint on the fleet (docs/serving.md).

Module-level imports stay light: the engine, the fleet and the server are built in the handler.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from carbonedge.cli.engine_args import add_engine_arguments, engine_settings

_DEFAULT_MAX_BODY_MB = 10.0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``serve`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="serve inference over HTTP with carbon-aware node selection",
        description="Start the fleet, deploy the model on every node and answer POST /v1/infer "
        '(image bytes or {"image_b64": ...}) with top-5, node, latency, energy and carbon. '
        "Also GET /v1/health, /v1/nodes, /v1/ledger?limit=N, /metrics, /openapi.json. "
        "Every request is recorded in the ledger (kept after the server stops). "
        "Ctrl-C stops cleanly: requests in progress finish first.",
    )
    p.add_argument("--model", default="mobilenet_v2", help="model name (default mobilenet_v2)")
    p.add_argument("--weights", default=None, help="state_dict checkpoint (default: random)")
    p.add_argument("--model-seed", type=int, default=0, help="seed of random weights")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=_DEFAULT_MAX_BODY_MB,
        help="largest request body in MiB (default 10)",
    )
    p.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="seconds a client may take to send a request head (default 10; then 408)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=float,
        default=60.0,
        help="seconds a client may take to send a request body (default 60; then 408)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=512,
        help="open connections at once (default 512; one more: 503)",
    )
    p.add_argument(
        "--max-decodes",
        type=int,
        default=1,
        help="images decoded at once (default 1; ~0.8 GiB each at the pixel limit)",
    )
    p.add_argument(
        "--tenants",
        type=Path,
        default=None,
        help="tenants file with API keys and budgets ('carbonedge tenants'; default: "
        "tenants.sqlite beside the default ledger, if it exists)",
    )
    p.add_argument(
        "--allow-open",
        action="store_true",
        help="serve without API keys on an address other than 127.0.0.1 (no tenants)",
    )
    add_engine_arguments(p, run_prefix="serve", window_s=5.0)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from carbonedge.errors import ConfigError
    from carbonedge.serve import ServeConfig, launch

    if not args.max_body_mb > 0 or args.max_body_mb == float("inf"):
        raise ConfigError(f"--max-body-mb must be a number > 0, got {args.max_body_mb}")
    from carbonedge.cli.checks import integer, number
    from carbonedge.serve.limits import ServerLimits

    for option in ("--header-timeout-s", "--body-timeout-s"):
        value = getattr(args, option[2:].replace("-", "_"))
        number("serve", option, value, above=0.0, maximum=3600.0)
    integer("serve", "--max-connections", args.max_connections, minimum=1, maximum=1_000_000)
    integer("serve", "--max-decodes", args.max_decodes, minimum=1, maximum=1024)
    limits = ServerLimits(
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        max_connections=args.max_connections,
        max_decodes=args.max_decodes,
    )
    from carbonedge.serve.tenants import default_tenants_path, open_gate

    if args.tenants is not None and not args.tenants.is_file():
        raise ConfigError(
            f"--tenants {args.tenants}: no such file (create it: carbonedge tenants add NAME "
            f"--tenants {args.tenants})"
        )
    config = ServeConfig(
        model=args.model,
        weights=args.weights,
        seed=args.model_seed,
        runtime=args.runtime,
        host=args.host,
        port=args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        limits=limits,
        tenants=args.tenants if args.tenants is not None else default_tenants_path(),
        allow_open=args.allow_open,
        engine=engine_settings(args, run_prefix="serve"),
    )
    # refuse an open server on a public address now, not after the fleet has started
    open_gate(config.tenants, config.host, allow_open=config.allow_open).close()
    # and a ledger that cannot be opened (a foreign 'tasks' table, a path under a file)
    from carbonedge.carbon.ledger import open_ledger_db

    open_ledger_db(Path(config.engine.ledger_path)).close()
    stop = threading.Event()

    def _on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    backend = config.engine.backend
    print(
        f"starting the fleet ({backend}) and deploying {config.model} ({config.runtime}) ...",
        flush=True,
    )
    app = launch(config)
    previous: dict[signal.Signals, Any] = {}
    try:
        # SIGINT too, explicitly: a process started in the background by a non-interactive
        # shell inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_term)
        engine = app.engine
        nodes = ", ".join(engine.fleet.spec.names)
        print(f"carbonedge serve: listening on {app.url} (nodes: {nodes})", flush=True)
        print(
            f"policy {engine.scheduler.policy}, mode {config.engine.mode}; {config.weights_note}",
            flush=True,
        )
        print(f"ledger: {config.engine.ledger_path} (run {engine.run_id})", flush=True)
        print(f"tenants ({config.tenants}): {app.tenants.describe()}", flush=True)
        if not app.tenants.required:
            where = "allowed by --allow-open" if config.allow_open else "loopback only"
            print(
                f"  open on {config.host} ({where}); to require keys: carbonedge tenants add NAME",
                flush=True,
            )
        if app.jobs.path is not None:
            print(f"deferrable jobs: {app.jobs.path}", flush=True)
        print("Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        print(
            "stopping: server, engine, meter window, ledger, fleet ...", file=sys.stderr, flush=True
        )
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ledger = app.engine.ledger
    rows = ledger.rows_written if ledger is not None else 0
    print(f"stopped; {rows} ledger rows written to {Path(config.engine.ledger_path)}", flush=True)
    return 0
