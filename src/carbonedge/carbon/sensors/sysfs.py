"""Reading sysfs attribute files with one error vocabulary (shared by RAPL and INA3221).

Every reader takes an ``opener`` (path -> text) so that tests can simulate what a fixture tree
cannot, such as ``PermissionError`` when the tests run as root. A missing file, a permission
error, another OS error and a non-number each become a :class:`SensorError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from carbonedge.carbon.sensors.base import SensorError, parse_number

Opener = Callable[[Path], str]
"""Reads one sysfs file and returns its text (default: :func:`read_file`)."""


def read_file(path: Path) -> str:
    """The text of ``path`` (sysfs attributes are small ASCII files)."""
    return path.read_text(encoding="ascii", errors="replace")


def read_text(path: Path, opener: Opener, permission_hint: str = "") -> str:
    """``opener(path)`` with OS errors turned into SensorErrors naming ``path``."""
    try:
        return opener(path)
    except FileNotFoundError:
        raise SensorError(f"{path}: missing (the rail or zone disappeared?)") from None
    except PermissionError:
        hint = f"; {permission_hint}" if permission_hint else ""
        raise SensorError(f"{path}: permission denied{hint}") from None
    except OSError as exc:
        raise SensorError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_number(
    path: Path, opener: Opener, permission_hint: str = "", *, allow_negative: bool = False
) -> float:
    """The finite number in ``path`` (non-negative unless ``allow_negative``); garbage is a
    SensorError naming the file."""
    text = read_text(path, opener, permission_hint)
    return parse_number(text, str(path), allow_negative=allow_negative)


def read_label(path: Path, opener: Opener) -> str:
    """A label file's stripped text (rail or zone name)."""
    return read_text(path, opener).strip()
