"""Dispatch overhead per task on Ray beside the local process backend, measured in one run.

For each backend (LocalFleet: one OS process per node, pipes; RayFleet: one actor per node on a
local Ray started by the fleet) on the paper's default fleet:

- ``overhead_ms`` = submit-to-result latency minus the node's execution time, for tasks sent one
  at a time to node-high (quota 1.0, so no dilation), with a small CNN (a few ms of work);
- a 3-stage pipeline of MobileNetV2 segments (node-green -> node-medium -> node-high):
  ``handoff_ms`` = latency minus the stages' execution times (local: every activation through
  the parent's pipes; Ray: ObjectRefs actor to actor through the object store);
- ``node_states_us``: one ``node_states()`` call (the scheduler's telemetry read).

Usage: ``.venv/bin/python benchmarks/bench_ray.py [--tasks 200] [--pipeline-tasks 30]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from carbonedge.fleet import LocalFleet, deploy_pipeline, module_payload, submit_pipeline
from carbonedge.fleet.ray_backend import RayFleet


def _small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(fleet: Any, backend: str, n_tasks: int, n_pipe: int) -> dict[str, Any]:
    from carbonedge.models import build_model
    from carbonedge.partition.chain import find_chain
    from carbonedge.partition.segments import build_segments

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    key = fleet.deploy(module_payload(_small_cnn(), (1, 3, 224, 224), "cnn"), ["node-high"])
    for _ in range(20):  # warm-up
        fleet.submit("node-high", key, x).result(timeout=60)
    over, lat, exe = [], [], []
    for _ in range(n_tasks):
        r = fleet.submit("node-high", key, x).result(timeout=60)
        over.append(r.latency_ms - r.exec_ms)
        lat.append(r.latency_ms)
        exe.append(r.exec_ms)
    t0 = time.perf_counter()
    for _ in range(1000):
        fleet.node_states()
    states_us = (time.perf_counter() - t0) * 1e3

    model = build_model("mobilenet_v2", seed=0)
    n = len(find_chain(model))
    segments = build_segments(model, [n // 3, 2 * n // 3])
    pipe = deploy_pipeline(fleet, segments, ["node-green", "node-medium", "node-high"])
    run_pipe = fleet.submit_pipeline if backend == "ray" else None
    handoff, plat = [], []
    for i in range(n_pipe + 3):
        if run_pipe is not None:
            res = run_pipe(pipe, x).result(timeout=120)
        else:
            res = submit_pipeline(fleet, pipe, x).result(timeout=120)
        if i >= 3:  # the first ones warm up
            handoff.append(res.handoff_ms)
            plat.append(res.latency_ms)
    return {
        "backend": backend,
        "tasks": n_tasks,
        "latency_ms": statistics.median(lat),
        "exec_ms": statistics.median(exe),
        "overhead_ms": statistics.median(over),
        "overhead_p90_ms": _pct(over, 90),
        "node_states_us": states_us,
        "pipe_latency_ms": statistics.median(plat),
        "handoff_ms": statistics.median(handoff),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--pipeline-tasks", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    t0 = time.perf_counter()
    with LocalFleet(enforcement="dilation") as fleet:
        rows.append(measure(fleet, "local", args.tasks, args.pipeline_tasks))
    t1 = time.perf_counter()
    with RayFleet(enforcement="dilation") as ray_fleet:
        t2 = time.perf_counter()
        rows.append(measure(ray_fleet, "ray", args.tasks, args.pipeline_tasks))
    print(f"local fleet run {t1 - t0:.1f} s; Ray start {t2 - t1:.1f} s (incl. ray.init)")
    print("single tasks on node-high (medians over tasks, ms; node_states() in us per call)")
    cols = ["backend", "tasks", "latency_ms", "exec_ms", "overhead_ms", "overhead_p90_ms"]
    cols += ["node_states_us"]
    print(" | ".join(f"{c:>15}" for c in cols))
    for r in rows:
        print(
            " | ".join(f"{r[c]:>15.3f}" if isinstance(r[c], float) else f"{r[c]:>15}" for c in cols)
        )
    print("3-stage MobileNetV2 pipeline green -> medium -> high (medians, ms)")
    for r in rows:
        lat, hand = r["pipe_latency_ms"], r["handoff_ms"]
        print(f"{r['backend']:>8}: latency {lat:8.2f}  handoff {hand:7.2f}")


if __name__ == "__main__":
    main()
