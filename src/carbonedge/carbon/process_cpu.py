"""CPU seconds of processes and of the host, read with psutil: the inputs of ``cputime``
attribution (:mod:`carbonedge.accounting.attribution`)."""

from __future__ import annotations

from collections.abc import Iterable

from carbonedge.accounting import AttributionError


def cpu_seconds(pids: Iterable[int], *, include_children: bool = False) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids``, via psutil.

    ``include_children`` adds the CPU time of their terminated, waited-for children.
    Raises :class:`AttributionError` naming a pid that does not exist or cannot be read.
    """
    import psutil

    total_s = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            raise AttributionError(f"cannot read CPU time of pid {pid}: {exc}") from exc
        total_s += t.user + t.system
        if include_children:
            total_s += t.children_user + t.children_system
    return total_s


def host_busy_cpu_seconds() -> float:
    """Busy CPU seconds of the whole host since boot (all CPUs, excluding idle and iowait)."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)
