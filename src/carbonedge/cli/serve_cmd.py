"""``carbonedge serve``: a carbon-aware HTTP inference endpoint on the fleet (docs/serving.md).

Module-level imports stay light: the fleet, the meter and the server are built in the handler.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from carbonedge.serve.config import DEFAULT_MAX_BODY_BYTES, METER_KINDS

_POLICIES = ("paper", "normalized", "constrained")
_MODES = ("performance", "balanced", "green")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``serve`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="serve inference over HTTP with carbon-aware node selection",
        description="Start the fleet, deploy the model on every node and answer POST /v1/infer "
        '(image bytes or {"image_b64": ...}) with top-5, node, latency, energy and carbon. '
        "Also GET /v1/health, /v1/nodes, /v1/ledger?limit=N, /metrics. Ctrl-C stops cleanly.",
    )
    p.add_argument("--fleet", type=Path, default=None, help="fleet TOML (default: paper's)")
    p.add_argument("--model", default="mobilenet_v2", help="model name (default mobilenet_v2)")
    p.add_argument("--weights", default=None, help="state_dict checkpoint (default: random)")
    p.add_argument("--model-seed", type=int, default=0, help="seed of random weights")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    p.add_argument("--mode", choices=_MODES, default="balanced", help="Table I weights")
    p.add_argument("--policy", choices=_POLICIES, default="normalized", help="scheduler policy")
    p.add_argument("--slo-ms", type=float, default=None, help="latency SLO (constrained policy)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    p.add_argument("--ledger", type=Path, default=None, help="SQLite ledger (default: temporary)")
    p.add_argument("--meter", choices=METER_KINDS, default="codecarbon", help="energy meter")
    p.add_argument("--window-s", type=float, default=5.0, help="meter window length (s)")
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=DEFAULT_MAX_BODY_BYTES / 2**20,
        help="largest request body in MiB (default 10)",
    )
    p.add_argument("--country", default=None, help="ISO code recorded with CodeCarbon readings")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from carbonedge.errors import ConfigError
    from carbonedge.serve import ServeConfig, launch

    if not args.max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be > 0, got {args.max_body_mb}")
    config = ServeConfig(
        model=args.model,
        weights=args.weights,
        seed=args.model_seed,
        runtime=args.runtime,
        mode=args.mode,
        policy=args.policy,
        slo_ms=args.slo_ms,
        host=args.host,
        port=args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        ledger=args.ledger,
        meter=args.meter,
        window_s=args.window_s,
        country_iso_code=args.country,
    )
    stop = threading.Event()

    def _on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    print(f"starting the fleet and deploying {config.model} ({config.runtime}) ...", flush=True)
    app = launch(config, args.fleet)
    previous: dict[signal.Signals, Any] = {}
    try:
        # SIGINT too, explicitly: a process started in the background by a non-interactive
        # shell inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_term)
        nodes = ", ".join(app.fleet.spec.names)
        print(f"carbonedge serve: listening on {app.url} (nodes: {nodes})", flush=True)
        print(f"policy {config.policy}, mode {config.mode}; {config.weights_note}", flush=True)
        print("Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        print("stopping: server, meter window, ledger, fleet ...", file=sys.stderr, flush=True)
        app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ledger = app.ledger
    where = (
        f"in {ledger.path}"
        if args.ledger is not None
        else "in a temporary ledger, now removed (--ledger FILE keeps them)"
    )
    print(f"stopped; {ledger.rows_written} ledger rows {where}", flush=True)
    return 0
