"""Joining or starting Ray for :class:`~carbonedge.fleet.ray_backend.RayFleet`, and leaving it.

Ray is imported only inside these functions (``carbonedge.fleet`` never imports it). When the
fleet starts Ray itself (``address=None``) it sets, unless already set, ``RAY_TMPDIR`` (a fresh
folder under the system temp dir, removed on stop), ``RAY_USAGE_STATS_ENABLED=0`` and
``RAY_AUTH_MODE=disabled`` (no ``~/.ray/auth_token``; the local cluster listens on this host
only), and starts no dashboard. Joining a cluster (``"auto"``, ``ray://``) changes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from carbonedge.fleet.base import FleetError
from carbonedge.fleet.spec import FleetSpec

__all__ = ["RaySession", "import_ray", "join_or_start_ray", "leave_ray", "ray_available"]


def ray_available() -> bool:
    """True if the ``ray`` extra is installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def import_ray() -> Any:
    """The ``ray`` module, or FleetError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FleetError("RayFleet needs Ray: pip install 'carbonedge[ray]'") from None
    return ray


@dataclass(frozen=True)
class RaySession:
    """What :func:`leave_ray` must undo: ``owns_ray`` (this fleet called ``ray.init``) and the
    temp folder it made for ``RAY_TMPDIR`` (None if it made none)."""

    owns_ray: bool = False
    tmp_dir: str | None = None


def join_or_start_ray(
    ray: Any, address: str | None, spec: FleetSpec, object_store_mb: int
) -> RaySession:
    """Use the Ray already initialised in this process, else join ``address`` or, for None,
    start a local Ray with ``max(host cores, sum of quotas)`` CPUs, ``object_store_mb`` MiB of
    object store and the custom resource ``edge:<node>`` of every node."""
    if ray.is_initialized():
        return RaySession()
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    tmp_dir = None
    if address is None:
        if "RAY_TMPDIR" not in os.environ:
            tmp_dir = tempfile.mkdtemp(prefix="carbonedge-ray-")
            os.environ["RAY_TMPDIR"] = tmp_dir
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        temp_dir = os.path.join(os.environ["RAY_TMPDIR"], "ray")
        os.makedirs(temp_dir, exist_ok=True)
        cpus = max(os.cpu_count() or 1, int(spec.total_quota + 0.999))
        kwargs.update(
            num_cpus=cpus,
            resources={f"edge:{n}": 1.0 for n in spec.names},
            object_store_memory=object_store_mb * 2**20,
            _temp_dir=temp_dir,
        )
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:
        leave_ray(None, RaySession(False, tmp_dir))
        raise FleetError(f"cannot start or join Ray at {address!r}: {exc}") from None
    return RaySession(True, tmp_dir)


def leave_ray(ray: Any, session: RaySession) -> None:
    """``ray.shutdown()`` if this fleet started or joined Ray; remove its temp folder."""
    if session.owns_ray and ray is not None:
        ray.shutdown()
    if session.tmp_dir is not None:
        if os.environ.get("RAY_TMPDIR") == session.tmp_dir:
            del os.environ["RAY_TMPDIR"]
        shutil.rmtree(session.tmp_dir, ignore_errors=True)
