"""Sub-commands (not yet implemented)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this module's sub-commands to the ``carbonedge`` parser."""
