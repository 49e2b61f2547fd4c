"""Checks shared by every reader of user input: files, node names, nested documents, numbers.

Fleet files (:mod:`carbonedge.fleet.spec`), node-state files
(:mod:`carbonedge.scheduling.fleet_file`) and intensity traces (:mod:`carbonedge.carbon.trace`)
read their bytes through :func:`read_text_file` and check what they parsed with
:func:`check_tree`, so that a file that is not UTF-8, is too large, nests too deeply or holds a
NaN fails with a :class:`~carbonedge.errors.CarbonEdgeError` naming the file and the field, never
with a traceback. Limits and the threat model are in docs/security.md. No heavy imports here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from carbonedge.errors import CarbonEdgeError, ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_FIELD_VALUE",
    "MAX_NESTING_DEPTH",
    "NODE_NAME_PATTERN",
    "Fields",
    "check_tree",
    "field_path",
    "node_name_problem",
    "read_text_file",
    "shown",
]

MAX_CONFIG_BYTES: Final = 8 * 1024 * 1024
"""Largest fleet or node-state file read, in bytes (8 MiB, about 30,000 node tables).

A larger file is refused before it is parsed, so that a stray multi-gigabyte file cannot use up
memory in the TOML or JSON parser."""

MAX_FIELD_VALUE: Final = 1e9
"""Largest number accepted in a numeric field of a user file (a typo guard, not a limit)."""

MAX_NESTING_DEPTH: Final = 32
"""Deepest nesting of tables and arrays accepted in a fleet or node-state document.

Valid documents nest 3 deep (top level -> ``nodes`` -> node table -> value); the limit stops a
document like ``[[[[...]]]]`` before any recursive code (parser, ``repr``) walks it."""

NODE_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
"""Node names: 1-63 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.

A node's name becomes part of a cgroup directory (:mod:`carbonedge.fleet.cgroup`), a process
name and log lines, so it may hold no ``/``, no whitespace and cannot be ``.`` or ``..``."""

_NODE_NAME: Final = re.compile(rf"\A{NODE_NAME_PATTERN}\Z")
_SHOWN_CHARS: Final = 60
_IDENTIFIER: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]*\Z")


def shown(value: object, limit: int = _SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages (one line)."""
    if isinstance(value, dict | list) and len(value) > 8:
        kind = "table" if isinstance(value, dict) else "array"
        return f"<{kind} of {len(value)} items>"
    try:
        text = repr(value)
    except RecursionError:  # pragma: no cover - check_tree runs first on parsed documents
        return f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def node_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid node name (see :data:`NODE_NAME_PATTERN`), or None."""
    if not isinstance(name, str) or not name:
        return f"must be a non-empty string, got {shown(name)}"
    if not _NODE_NAME.match(name):
        return (
            f"must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, "
            f"got {shown(name)}"
        )
    return None


def read_text_file(
    path: Path,
    what: str,
    *,
    max_bytes: int = MAX_CONFIG_BYTES,
    error: type[CarbonEdgeError] = ConfigError,
) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark is dropped).

    Raises ``error`` naming the file when it cannot be read, is larger than ``max_bytes`` (found
    without reading more than ``max_bytes + 1`` bytes) or is not UTF-8.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(
            f"{path}: {what} is larger than {max_bytes} bytes ({max_bytes // 1024 // 1024} MiB); "
            "refusing to read it"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def field_path(keys: tuple[str | int, ...]) -> str:
    """``nodes[0].cpu_quota`` for the keys ('nodes', 0, 'cpu_quota'); odd keys are quoted."""
    parts: list[str] = []
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENTIFIER.match(key) and len(key) <= _SHOWN_CHARS:
            parts.append(f".{key}" if parts else key)
        else:
            parts.append(f"[{shown(key)}]")
    return "".join(parts) or "top level"


def check_tree(
    data: Any,
    source: str,
    *,
    max_depth: int = MAX_NESTING_DEPTH,
    error: type[CarbonEdgeError] = ConfigError,
) -> None:
    """Refuse a parsed TOML/JSON document that nests deeper than ``max_depth`` or holds a
    non-finite number (NaN, inf) anywhere; the message names ``source`` and the field.

    Iterative (no recursion), so it is safe on any document the parsers return.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, keys = stack.pop()
        if isinstance(value, dict):
            children: list[tuple[str | int, Any]] = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            if isinstance(value, float) and not math.isfinite(value):
                raise error(f"{source}: {field_path(keys)} must be a finite number, got {value}")
            continue
        if len(keys) >= max_depth:
            raise error(f"{source}: {field_path(keys)} nests deeper than {max_depth} levels")
        stack.extend((child, (*keys, key)) for key, child in reversed(children))


class Fields:
    """Typed readers of one table's fields; every error names ``where`` and the field."""

    def __init__(self, where: str, table: Mapping[str, Any]) -> None:
        self.where = where
        self.table = table

    def err(self, key: str, msg: str) -> ConfigError:
        path = field_path((key,))  # a key such as "\n" is quoted, keeping the message one line
        return ConfigError(f"{self.where}{'' if path.startswith('[') else '.'}{path} {msg}")

    def str_(self, key: str, default: str | None = None) -> str | None:
        value = self.table.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.err(key, f"must be a string, got {shown(value)}")
        return value

    def num(
        self,
        key: str,
        default: float | None = None,
        *,
        positive: bool = False,
        maximum: float = MAX_FIELD_VALUE,
    ) -> float | None:
        """A finite number >= 0 (> 0 with ``positive``) and <= ``maximum``, or None if absent."""
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.err(key, f"must be a number, got {shown(value)}")
        if not math.isfinite(value):
            raise self.err(key, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.err(key, f"must be > 0, got {value!r}")
        if value < 0:
            raise self.err(key, f"must be >= 0, got {value!r}")
        if value > maximum:
            raise self.err(key, f"must be at most {maximum:g}, got {value!r}")
        return float(value)
