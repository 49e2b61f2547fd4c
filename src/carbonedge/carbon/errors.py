"""Errors raised by the Carbon Monitor (paper Section III.B).

Each derives from :class:`carbonedge.errors.CarbonEdgeError`, so the CLI prints it on one line
and exits with code 2. Messages name the file, field, zone or URL at fault.
"""

from __future__ import annotations

from carbonedge.errors import CarbonEdgeError


class MeterError(CarbonEdgeError):
    """An energy meter cannot start, stop or report (e.g. stopped before it started)."""


class IntensityError(CarbonEdgeError):
    """A carbon-intensity source cannot give a value (HTTP 401/429, timeout, bad data)."""


class LedgerError(CarbonEdgeError):
    """The emissions ledger refuses a row (duplicate task id) or cannot be written."""


class CommandError(CarbonEdgeError):
    """A monitored command cannot be started (not found, not executable)."""
