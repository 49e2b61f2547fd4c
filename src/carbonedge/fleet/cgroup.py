"""Real CPU quotas for node processes with Linux cgroups (the paper's Docker ``--cpus``).

cgroup v1: ``/sys/fs/cgroup/cpu/carbonedge-<pid>/<node>/`` with ``cpu.cfs_period_us = 10000``
(10 ms, short so that batch-1 inference is throttled smoothly) and
``cpu.cfs_quota_us = round(quota x 10000)``. cgroup v2: the same layout under the unified mount,
``cpu.max = "<quota_us> 10000"``. The fleet writes each node's pid to ``cgroup.procs`` and removes
the directories when it stops; directories left by a fleet whose process died are removed by the
next fleet that starts (``sweep_stale``).

A node's name becomes a directory name, so :class:`CpuQuotaGroup` checks it against
:data:`carbonedge.validation.NODE_NAME_PATTERN` (fleet files are checked on load too) and that
the path it builds stays inside the fleet's ``carbonedge-<pid>`` folder, before touching any path.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from carbonedge.errors import ConfigError
from carbonedge.validation import node_name_problem

PERIOD_US = 10_000
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")
_PREFIX = "carbonedge-"
MAX_QUOTA = 1e6
"""Largest CPU quota (cores) turned into ``cfs_quota_us``; keeps the microsecond count an int."""


class CgroupUnavailable(OSError):
    """No writable cgroup CPU controller (not root, read-only /sys/fs/cgroup, no cpu controller)."""


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _detect() -> tuple[Path, int]:
    if (_V1 / "cpu.cfs_quota_us").exists():
        return _V1, 1
    controllers = _V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return _V2, 2
    raise CgroupUnavailable("no cgroup CPU controller at /sys/fs/cgroup/cpu or /sys/fs/cgroup")


def sweep_stale() -> None:
    """Remove empty ``carbonedge-<pid>`` cgroups whose owning process no longer exists."""
    try:
        root, _ = _detect()
    except CgroupUnavailable:
        return
    for base in root.glob(f"{_PREFIX}*"):
        pid = base.name[len(_PREFIX) :]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for child in base.iterdir():
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()


class CpuQuotaGroup:
    """One node's cgroup; ``create`` raises CgroupUnavailable where cgroups are not writable."""

    def __init__(self, node: str, quota: float) -> None:
        # Checked before any path is built: a name such as "../x" or "/sys" must never become
        # a directory outside this fleet's carbonedge-<pid> folder.
        problem = node_name_problem(node)
        if problem is not None:
            raise ConfigError(f"node name {problem} (it names a cgroup directory)")
        if isinstance(quota, bool) or not (math.isfinite(quota) and 0 < quota <= MAX_QUOTA):
            raise ConfigError(
                f"node {node!r}: cpu_quota must be > 0 and <= {MAX_QUOTA}, got {quota!r}"
            )
        self.node = node
        self.quota = quota
        self.root, self.version = _detect()
        self.base = self.root / f"{_PREFIX}{os.getpid()}"
        self.path = self.base / node
        if self.path.parent != self.base or os.path.normpath(self.path) != str(self.path):
            raise ConfigError(f"node name {node!r} would leave {self.base}")

    def create(self) -> None:
        quota_us = max(1000, round(self.quota * PERIOD_US))
        try:
            if self.version == 2:
                _write(self.root / "cgroup.subtree_control", "+cpu")
            self.base.mkdir(exist_ok=True)
            if self.version == 2:
                _write(self.base / "cgroup.subtree_control", "+cpu")
            self.path.mkdir(exist_ok=True)
            if self.version == 1:
                _write(self.path / "cpu.cfs_period_us", str(PERIOD_US))
                _write(self.path / "cpu.cfs_quota_us", str(quota_us))
            else:
                _write(self.path / "cpu.max", f"{quota_us} {PERIOD_US}")
        except OSError as exc:
            self.remove()
            raise CgroupUnavailable(f"cannot create {self.path}: {exc}") from exc

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup."""
        _write(self.path / "cgroup.procs", str(pid))

    def remove(self) -> None:
        """Move any remaining processes out and remove the node's (and empty base) directory."""
        if self.path.exists():
            with contextlib.suppress(OSError):
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        _write(self.root / "cgroup.procs", pid)
            with contextlib.suppress(OSError):
                self.path.rmdir()
        with contextlib.suppress(OSError):
            self.base.rmdir()  # fails while other nodes' groups still exist
