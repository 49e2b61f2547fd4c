"""The engine's command-line options, shared by ``serve`` and ``reproduce`` (one definition)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from carbonedge.engine import BACKENDS, METER_KINDS, EngineConfig, EngineSettings
from carbonedge.errors import ConfigError
from carbonedge.fleet.telemetry import MAX_IN_FLIGHT
from carbonedge.grid.forecast import DEFAULT_FORECASTER, FORECASTERS, ORACLE
from carbonedge.scheduling.scheduler import POLICIES

_MODES = ("performance", "balanced", "green")


def add_engine_arguments(
    p: argparse.ArgumentParser, *, run_prefix: str, window_s: float, scheduler: bool = True
) -> None:
    """Fleet, backend, scheduler, meter, ledger, clock and admission options."""
    g = p.add_argument_group("fleet and engine")
    g.add_argument("--fleet", type=Path, default=None, help="fleet TOML (default: the paper's)")
    g.add_argument("--backend", choices=BACKENDS, default="local", help="local processes or Ray")
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (--backend ray; default: start a local Ray)",
    )
    if scheduler:
        g.add_argument("--mode", choices=_MODES, default="balanced", help="Table I weights")
        g.add_argument("--policy", choices=POLICIES, default="normalized", help="scheduler policy")
        g.add_argument(
            "--slo-ms", type=float, default=None, help="latency SLO (constrained policy)"
        )
    g.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="SQLite emissions ledger (default: $CARBONEDGE_LEDGER, else "
        "$CARBONEDGE_DATA_DIR/ledger.sqlite, else ~/.local/share/carbonedge/ledger.sqlite)",
    )
    g.add_argument("--meter", choices=METER_KINDS, default="codecarbon", help="energy meter")
    g.add_argument(
        "--window-s",
        type=float,
        default=window_s,
        help=f"rolling meter window whose rates charge tasks, s (default {window_s:g})",
    )
    g.add_argument("--country", default=None, help="ISO code recorded with CodeCarbon readings")
    g.add_argument(
        "--clock-start",
        default=None,
        help="grid time at start, ISO 8601 (replays intensity traces from there; default now)",
    )
    g.add_argument(
        "--clock-speedup",
        type=float,
        default=1.0,
        help="grid seconds per real second when replaying traces (default 1)",
    )
    g.add_argument(
        "--forecaster",
        choices=(*FORECASTERS, ORACLE),
        default=DEFAULT_FORECASTER,
        help=f"intensity forecast that deferrable jobs plan on, fitted on the past only "
        f"(default {DEFAULT_FORECASTER}; {ORACLE}: perfect foresight, a bound for experiments)",
    )
    g.add_argument(
        "--max-queue",
        type=int,
        default=EngineConfig.max_queue,
        help=f"tasks that may wait for a node; more are refused at once (default "
        f"{EngineConfig.max_queue})",
    )
    g.add_argument(
        "--max-wait-s",
        type=float,
        default=EngineConfig.max_wait_s,
        help=f"longest wait for an eligible node before a refusal, s (default "
        f"{EngineConfig.max_wait_s:g})",
    )
    g.add_argument(
        "--max-in-flight",
        type=int,
        default=1,
        help=f"tasks a node may hold at once, 1-{MAX_IN_FLIGHT} (default 1; 2: a node is given "
        "its next task while it runs one, and never waits for the dispatch)",
    )
    g.add_argument(
        "--max-batch",
        type=int,
        default=EngineConfig.max_batch,
        help="dynamic batching: run up to this many waiting requests of the model as one "
        "batch (default 1: off)",
    )
    g.add_argument(
        "--batch-wait-ms",
        type=float,
        default=EngineConfig.batch_wait_ms,
        help="how long a request may wait for others to fill a batch, ms (default 0)",
    )
    p.set_defaults(run_prefix=run_prefix)


def engine_settings(
    args: argparse.Namespace, *, run_prefix: str, **overrides: object
) -> EngineSettings:
    """The :class:`EngineSettings` the parsed options describe."""
    start = None
    if args.clock_start is not None:
        try:
            start = datetime.fromisoformat(args.clock_start)
        except ValueError:
            raise ConfigError(f"--clock-start must be ISO 8601, got {args.clock_start!r}") from None
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    values: dict[str, object] = {
        "fleet_file": args.fleet,
        "backend": args.backend,
        "address": args.address,
        "meter": args.meter,
        "window_s": args.window_s,
        "ledger": args.ledger,
        "country_iso_code": args.country,
        "clock_start": start,
        "clock_speedup": args.clock_speedup,
        "forecaster": args.forecaster,
        "run_prefix": run_prefix,
        "max_in_flight": args.max_in_flight,
        "engine": EngineConfig(
            max_queue=args.max_queue,
            max_wait_s=args.max_wait_s,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
        ),
    }
    if hasattr(args, "policy"):
        values.update(policy=args.policy, mode=args.mode, slo_ms=args.slo_ms)
    values.update(overrides)
    return EngineSettings(**values)  # type: ignore[arg-type]
