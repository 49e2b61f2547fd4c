"""``carbonedge reproduce``: the paper's experiments (Section IV) on the default fleet.

Module-level imports stay light; the experiment (torch, codecarbon, matplotlib) is imported in
the handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from carbonedge.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``reproduce`` to the ``carbonedge`` parser."""
    p = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's Tables II, IV, V, Fig. 2, Fig. 3 and overhead",
        description="Run Monolithic, AMP4EC, CarbonEdge Performance/Balanced/Green (paper "
        "and normalized policies) and CE-SLO (constrained policy, ours) on a local fleet, "
        "measure latency, throughput, energy and carbon, and write tables, figures, the "
        "ledger and report.md into OUT/<hash of the parameters>/. A finished folder is "
        "reused unless --overwrite.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 20 images, 2 repeats, 6 sweep points of 5 tasks, no minimum run time",
    )
    p.add_argument(
        "--min-run-s",
        type=float,
        metavar="S",
        help="each run lasts at least S seconds of meter window (default 4; quick 0)",
    )
    p.add_argument(
        "--calibration-windows",
        type=int,
        metavar="K",
        help="energy calibration windows per node x model (default 3; quick 2; 0 = none)",
    )
    p.add_argument("--models", help="comma-separated model names (default: the paper's three)")
    p.add_argument("--images", metavar="DIR", help="image folder (default: skimage photographs)")
    p.add_argument("--n", type=int, metavar="N", help="images per run (default 50; quick 20)")
    p.add_argument("--repeats", type=int, metavar="R", help="repeats (default 5; quick 2)")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    p.add_argument("--attribution", choices=("cputime", "quota"), default="cputime")
    p.add_argument("--fleet", metavar="FILE", help="fleet TOML (default: the paper's 3 nodes)")
    p.add_argument("--mono-node", metavar="NODE", help="Monolithic node (default node-medium)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep-points", type=int, metavar="K", help="wC points (default 11; quick 6)")
    p.add_argument("--out", metavar="DIR", default="results", help="parent folder (results)")
    p.add_argument("--overwrite", action="store_true", help="recompute a finished folder")
    p.add_argument("--meter", choices=("codecarbon", "fake"), default="codecarbon")
    p.add_argument("--ram-model", choices=("codecarbon", "paper"), default="codecarbon")
    p.add_argument(
        "--load-window",
        type=float,
        default=0.0,
        metavar="S",
        help="load signal of Algorithm 1: 0 = occupancy at decision time (default), "
        "S > 0 = quota utilisation over the last S seconds",
    )
    p.add_argument(
        "--slo-factor",
        type=float,
        default=None,
        metavar="F",
        help="CE-SLO's latency SLO = F x the fastest node's predicted latency (default 3.5)",
    )
    p.add_argument("--slo-ms", type=float, default=None, metavar="MS", help="CE-SLO's SLO in ms")
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local processes (default) or actors on a Ray cluster",
    )
    p.add_argument(
        "--address", default=None, help="Ray cluster address (--backend ray; default: local Ray)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_reproduce)


def params_from_args(args: argparse.Namespace) -> Any:
    """The :class:`ExperimentParams` the command line asks for."""
    from carbonedge.experiments import ExperimentParams
    from carbonedge.models import MODEL_NAMES

    fields: dict[str, Any] = {
        "runtime": args.runtime,
        "attribution": args.attribution,
        "meter": args.meter,
        "ram_model": args.ram_model,
        "seed": args.seed,
        "fleet_file": args.fleet,
        "images_dir": args.images,
        "mono_node": args.mono_node,
        "load_window_s": args.load_window,
        "slo_ms": args.slo_ms,
        "backend": args.backend,
    }
    if args.slo_factor is not None:
        fields["slo_factor"] = args.slo_factor
    if args.models:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        unknown = [m for m in models if m not in MODEL_NAMES]
        if unknown or not models:
            raise ConfigError(
                f"--models: unknown model {unknown[0] if unknown else args.models!r}; "
                f"choose from {', '.join(MODEL_NAMES)}"
            )
        fields["models"] = models
    for flag, name in (
        ("n", "n_images"),
        ("repeats", "repeats"),
        ("sweep_points", "sweep_points"),
        ("min_run_s", "min_run_s"),
        ("calibration_windows", "calibration_windows"),
    ):
        value = getattr(args, flag)
        if value is not None:
            fields[name] = value
    return ExperimentParams.quick(**fields) if args.quick else ExperimentParams(**fields)


def run_reproduce(args: argparse.Namespace) -> int:
    """Handler of ``carbonedge reproduce``."""
    import time

    from carbonedge.experiments import reproduce

    params = params_from_args(args)
    t0 = time.perf_counter()
    if args.address is not None and args.backend != "ray":
        raise ConfigError("--address applies to --backend ray only")
    outcome = reproduce(
        params,
        args.out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        address=args.address,
    )
    print(outcome.text)
    state = "reused (use --overwrite to recompute)" if outcome.reused else "written"
    print(f"\nresults {state}: {outcome.folder}  (report: {outcome.folder / 'report.md'})")
    print(f"wall time of this command: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
