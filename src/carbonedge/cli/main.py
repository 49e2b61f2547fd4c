"""Entry point of the ``carbonedge`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from carbonedge import __version__
from carbonedge.errors import CarbonEdgeError

# Modules under carbonedge.cli that define ``register(subparsers)``. Their imports stay light:
# heavy libraries (torch, codecarbon, ray) are imported inside the command functions.
_COMMAND_MODULES = (
    "models_cmd",
    "carbon_cmd",
    "schedule_cmd",
    "fleet_cmd",
    "partition_cmd",
    "reproduce_cmd",
    "temporal_cmd",
    "simulate_cmd",
    "grid_cmd",
    "future_cmd",
    "serve_cmd",
    "tenants_cmd",
    "ledger_cmd",
    "report_cmd",
    "sensors_cmd",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonedge",
        description="Carbon-aware deep learning inference on heterogeneous edge nodes.",
    )
    parser.add_argument("--version", action="version", version=f"carbonedge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"carbonedge.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except CarbonEdgeError as exc:
        print(f"carbonedge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("carbonedge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
