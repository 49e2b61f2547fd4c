"""Checks of numeric command-line options, and strict JSON output.

argparse's ``type=float`` accepts ``nan``, ``inf`` and ``1e999``; every handler checks its
numbers here so that a bad value is one line ``carbonedge: error: <command>: --option must be
..., got nan`` (exit 2) instead of a traceback, a hang or a NaN printed with exit 0.
``--json`` output goes through :func:`dumps`: strict JSON, where a non-finite number becomes
``null`` (JSON has no NaN or Infinity).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from carbonedge.errors import ConfigError

MAX_WAIT_S: Final = 86_400.0
"""Longest duration an option may ask a command to wait or measure (1 day), in seconds."""

MAX_PUE: Final = 10.0
"""Largest power usage effectiveness accepted (real facilities: 1.0-3.0)."""

MAX_SEED: Final = 2**63 - 1
"""Largest seed: numpy and torch both take any integer in 0..2**63-1."""


def number(
    command: str,
    option: str,
    value: float | None,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
) -> None:
    """Refuse ``value`` unless it is finite, >= ``minimum``, > ``above`` and <= ``maximum``
    (each bound optional); ``None`` (option not given) passes. ConfigError names the option."""
    if value is None:
        return
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (minimum is None or value >= minimum)
        and (above is None or value > above)
        and (maximum is None or value <= maximum)
    )
    if ok:
        return
    rules = [
        f"{op} {bound:g}"
        for op, bound in ((">=", minimum), (">", above), ("<=", maximum))
        if bound is not None
    ]
    rule = "a finite number " + " and ".join(rules) if rules else "a finite number"
    raise ConfigError(f"{command}: {option} must be {rule}, got {value!r}")


def integer(
    command: str, option: str, value: int | None, *, minimum: int, maximum: int | None = None
) -> None:
    """Refuse an integer option outside ``minimum..maximum``; ``None`` passes."""
    if value is None:
        return
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ConfigError(f"{command}: {option} must be at least {minimum}{upper}, got {value}")


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def dumps(payload: Any) -> str:
    """Strict JSON (indent 2): NaN and infinities become ``null``, never bare ``NaN``."""
    return json.dumps(finite_or_none(payload), indent=2, allow_nan=False)
