"""Errors of the accounting package."""

from __future__ import annotations

from carbonedge.errors import CarbonEdgeError


class AttributionError(CarbonEdgeError):
    """Attribution inputs are inconsistent (negative CPU time, unknown node, no quota)."""
