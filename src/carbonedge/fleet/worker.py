"""The node process: one per edge node, one inference thread (paper III.F, Docker-node analogue).

Started by ``LocalFleet`` with the multiprocessing *spawn* context (never fork after torch is
imported). It exits on its own when the parent dies (its parent pid changes) or the pipe to the
parent closes, so no node outlives its fleet. Messages are tuples on one duplex pipe:

parent -> node: ``("deploy", key, payload, runtime, budget_bytes)``, ``("run", seq, key, batch)``,
``("probe", seq, duration_s)``, ``("stop",)``.
node -> parent: ``("ready", pid)``, ``("hb", rss_mb, peak_rss_mb)``,
``("deployed", key, footprint_bytes)`` / ``("deploy_err", key, message)``,
``("result", seq, output, started_at, finished_at, exec_ms, cpu_s, queued_ms)`` /
``("task_err", seq, msg)``,
``("probe", seq, cpu_s, wall_s)``.

Time dilation (when no cgroup quota can be set): after each task the node sleeps
``(1/q - 1) x cpu_s`` so that it uses at most ``q`` of a core on average (DESIGN.md).

The loader (:func:`build_runtime_for_payload`), the dilation rule, the probe, the RSS reading and
the allocator settings (:func:`steady_allocator`) are also used by the Ray backend's actor
(``carbonedge.fleet.ray_actor``): one implementation of each for both backends.
"""

from __future__ import annotations

import io
import os
import queue
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonedge.fleet.base import ModelPayload, ModelRef

if TYPE_CHECKING:
    from carbonedge.models.runtime import Runtime

__all__ = [
    "build_runtime_for_payload",
    "busy_probe",
    "dilation_sleep_s",
    "node_main",
    "rss_mb",
    "steady_allocator",
]


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(0.2)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB (``/proc/self/statm``, ``ru_maxrss``)."""
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, peak_kb / 1024


def dilation_sleep_s(quota: float, cpu_s: float) -> float:
    """Time dilation: the sleep (s) after ``cpu_s`` CPU seconds of work that keeps a node at
    ``quota`` cores on average, ``(1/q - 1) x cpu_s`` (0 for a quota of one core or more)."""
    return (1.0 / quota - 1.0) * cpu_s if quota < 1.0 else 0.0


def build_runtime_for_payload(
    payload: ModelPayload, runtime: str, budget_bytes: int
) -> tuple[Runtime, int]:
    """Build ``payload`` on this node for ``runtime`` ("torch" or "onnx"): (runner, footprint).

    A :class:`ModelRef` is built with ``carbonedge.models.build_model``; a :class:`ModuleBlob`
    is loaded with ``torch.load``. The footprint (bytes: weights + buffers + activation peak for
    the payload's input shape, ``carbonedge.fleet.memory.estimate_footprint``) must fit
    ``budget_bytes``, else MemoryError naming MiB needed and free. The runner is
    ``carbonedge.models.runtime.make_runtime`` on one thread; ONNX exports are cached (by model
    and weights) in ``$CARBONEDGE_CACHE`` if set, else in the system temp folder, shared by the
    nodes and never in the home folder. Both backends' nodes use this.
    """
    import torch

    from carbonedge.fleet.memory import estimate_footprint

    if isinstance(payload, ModelRef):
        from carbonedge.models import build_model

        module = build_model(payload.name, payload.weights, seed=payload.seed)
        shape: tuple[int, ...] = (1, 3, 224, 224)
    else:
        module = torch.load(io.BytesIO(payload.data), weights_only=False)
        shape = payload.input_shape
    module.eval()
    foot = estimate_footprint(module, shape)
    if foot.total_bytes > budget_bytes:
        raise MemoryError(
            f"model needs about {foot.total_mb:.1f} MiB (weights {foot.weights_bytes / 2**20:.1f}"
            f" + activations {foot.activation_bytes / 2**20:.1f}) but only"
            f" {budget_bytes / 2**20:.1f} MiB of the node's memory_mb is free"
        )
    from carbonedge.models.runtime import make_runtime

    cache_dir = Path(os.environ.get("CARBONEDGE_CACHE") or tempfile.gettempdir()) / "carbonedge"
    runner = make_runtime(runtime, module, threads=1, cache_dir=cache_dir, input_shape=shape)
    return runner, foot.total_bytes


def busy_probe(
    duration_s: float,
    quota: float,
    dilate: bool,
    cpu_clock: Callable[[], float] = time.process_time,
) -> tuple[float, float]:
    """Busy loop for ``duration_s`` s in ~10 ms CPU chunks, each dilated like a task when
    ``dilate``; returns (cpu_s by ``cpu_clock``, wall_s). cpu_s / wall_s = effective cores."""
    w0, c0 = time.perf_counter(), cpu_clock()
    while time.perf_counter() - w0 < duration_s:
        t0 = cpu_clock()
        x = 0
        while cpu_clock() - t0 < 0.01:
            for i in range(2000):
                x += i * i
        if dilate:
            time.sleep(dilation_sleep_s(quota, cpu_clock() - t0))
    return cpu_clock() - c0, time.perf_counter() - w0


# glibc malloc settings of a node process (mallopt(3)): keep freed memory for the next
# inference instead of giving it back to the kernel and faulting it in again.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
STEADY_MALLOC: dict[int, int] = {
    _M_MMAP_THRESHOLD: 32 * 2**20,  # blocks up to 32 MiB (glibc's maximum) from the heap
    _M_TRIM_THRESHOLD: 2**30,  # do not shrink the heap under 1 GiB free at its top
    _M_TOP_PAD: 64 * 2**20,  # grow it 64 MiB at a time (fewer brk calls)
}


def steady_allocator() -> str:
    """Make a node's CPU time per inference a property of the model, not of the allocator.

    With glibc's default, dynamic thresholds, PyTorch's activation buffers are handed back to
    the kernel after each inference and faulted in again in the next: measured here (one thread,
    MobileNetV2), 2,300-2,600 minor page faults and 3-5 ms of system time per inference, ~20% of
    its CPU time, varying with the kernel's memory state, so that the same model cost 19-32 ms of
    CPU on different nodes and at different times of one reproduction. With :data:`STEADY_MALLOC`
    the buffers stay in the heap: no page faults, 15.0 ms per inference, within 3% over time
    (``docs/fleet.md``). A no-op (saying why) where the C library has no ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        return f"allocator left as it is (no mallopt: {exc})"
    failed = [k for k, v in STEADY_MALLOC.items() if mallopt(ctypes.c_int(k), ctypes.c_int(v)) != 1]
    return "allocator: steady" if not failed else f"allocator: mallopt refused {failed}"


def node_main(
    conn: Connection, name: str, quota: float, dilate: bool, parent_pid: int, heartbeat_s: float
) -> None:
    """Entry point of a node process (module-level so that spawn can import it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, also on Ctrl-C
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    steady_allocator()  # before torch allocates anything
    import torch

    torch.set_num_threads(1)
    dilate = dilate and quota < 1.0
    send_lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(msg)

    def heartbeat() -> None:
        try:
            while True:
                send(("hb", *rss_mb()))
                time.sleep(heartbeat_s)
        except OSError:
            os._exit(4)

    # A reader thread drains the pipe into a queue. A 224x224 input (~600 KB) is far larger than
    # a pipe's buffer: read only between tasks, the parent's send of the next input would block
    # until the current task ends, and a parent feeding several nodes would leave them idle.
    inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def reader() -> None:
        while True:
            try:
                inbox.put((*conn.recv(), time.perf_counter()))  # stamped: queue wait
            except (EOFError, OSError):
                inbox.put(("eof",))
                return

    send(("ready", os.getpid()))
    threading.Thread(target=heartbeat, daemon=True).start()
    threading.Thread(target=reader, daemon=True).start()
    runners: dict[str, Runtime] = {}
    while True:
        msg = inbox.get()
        kind = msg[0]
        if kind == "eof":
            os._exit(0)
        if kind == "run":
            _, seq, key, batch, received = msg
            try:
                runner = runners[key]
                started = time.time()
                w0, c0 = time.perf_counter(), time.process_time()
                queued_ms = (w0 - received) * 1000.0
                out = runner.run(batch)
                cpu_s = time.process_time() - c0
                if dilate:
                    time.sleep(dilation_sleep_s(quota, cpu_s))
                exec_ms = (time.perf_counter() - w0) * 1000.0
                send(("result", seq, out, started, time.time(), exec_ms, cpu_s, queued_ms))
            except Exception as exc:
                send(("task_err", seq, f"{type(exc).__name__}: {exc}"))
        elif kind == "deploy":
            _, key, payload, runtime, budget, _received = msg
            try:
                runners[key], footprint = build_runtime_for_payload(payload, runtime, budget)
                send(("deployed", key, footprint))
            except Exception as exc:
                send(("deploy_err", key, f"{type(exc).__name__}: {exc}"))
        elif kind == "probe":
            _, seq, duration_s, _received = msg
            send(("probe", seq, *busy_probe(duration_s, quota, dilate)))
        elif kind == "stop":
            break
    conn.close()
