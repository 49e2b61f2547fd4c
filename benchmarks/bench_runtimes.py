"""PyTorch eager vs ONNX Runtime: batch-1 latency on one CPU thread, side by side.

For each paper model both runtimes are made from the same module, warmed up, then timed in
alternating order (eager, ORT, ORT, eager, ...) on the same real photograph, so that both see
the same machine load. Prints median and p90 wall-clock latency (ms) per runtime, the median
thread CPU time (ms), and the ratios of medians eager / ORT for both.

Weights are random (seed 0); latency does not depend on their values (checked: same thread
CPU time for MobileNetV2 with and without the calibration below). BatchNorm statistics are
calibrated on the photographs, as training would leave them, so that logits are O(1) rather
than ~1e-9 and the printed agreement between the runtimes (max |logit difference|) means
something.

    .venv/bin/python benchmarks/bench_runtimes.py [--models mobilenet_v2,...] [--iterations 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from carbonedge.data import load_images
from carbonedge.models.registry import MODEL_NAMES, build_model
from carbonedge.models.runtime import Runtime, make_runtime


def calibrate_batchnorm(model: torch.nn.Module, batch: np.ndarray) -> torch.nn.Module:
    """Set BatchNorm running statistics from ``batch`` (one cumulative pass), back in eval mode."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(np.array(batch)))
    return model.eval()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_side_by_side(
    runtimes: list[Runtime], batch: np.ndarray, iterations: int, warmup: int
) -> tuple[list[list[float]], list[list[float]]]:
    """Wall-clock and thread-CPU latency (ms) of each runtime per iteration.

    The order alternates each iteration so that neither runtime always runs first. With one
    thread both runtimes compute on the calling thread, so ``time.thread_time_ns`` is their CPU
    time; it is less disturbed than wall time when other processes share the cores.
    """
    for _ in range(warmup):
        for runtime in runtimes:
            runtime.run(batch)
    wall_ms: list[list[float]] = [[] for _ in runtimes]
    cpu_ms: list[list[float]] = [[] for _ in runtimes]
    for i in range(iterations):
        order = range(len(runtimes)) if i % 2 == 0 else reversed(range(len(runtimes)))
        for index in order:
            cpu_start_ns = time.thread_time_ns()
            start_ns = time.perf_counter_ns()
            runtimes[index].run(batch)
            wall_ms[index].append((time.perf_counter_ns() - start_ns) / 1e6)
            cpu_ms[index].append((time.thread_time_ns() - cpu_start_ns) / 1e6)
    return wall_ms, cpu_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated")
    parser.add_argument("--iterations", type=int, default=200, help="timed runs per runtime")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per runtime")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX cache (default: temp)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or args.iterations < 1:
        parser.error(f"unknown models {unknown} (choose from {MODEL_NAMES}) or iterations < 1")

    torch.set_num_threads(1)
    import onnxruntime

    photos = load_images(None, 8, seed=0).tensors  # (8, 3, 224, 224): calibration batch
    batch = np.array(photos[:1])  # (1, 3, 224, 224): batch 1, as in the paper
    load_1m = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_1m:.2f} at start"
    )
    print(
        f"batch 1, 1 thread, {args.warmup} warm-up + {args.iterations} timed runs per runtime, "
        "alternating; weights: random (seed 0), BatchNorm statistics calibrated on 8 photographs"
    )
    header = (
        f"{'model':<24} {'runtime':<8} {'median ms':>10} {'p90 ms':>9} {'cpu med ms':>11} "
        f"{'eager/ORT':>10} {'(cpu)':>10}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="carbonedge-bench-") as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        for name in names:
            model = build_model(name, seed=0)
            model = calibrate_batchnorm(model, photos)
            runtimes = [
                make_runtime("torch", model, threads=1),
                make_runtime("onnx", model, threads=1, cache_dir=cache_dir),
            ]
            diff = float(np.abs(runtimes[0].run(photos) - runtimes[1].run(photos)).max())
            wall, cpu = time_side_by_side(runtimes, batch, args.iterations, args.warmup)
            ratio = statistics.median(wall[0]) / statistics.median(wall[1])
            cpu_ratio = statistics.median(cpu[0]) / statistics.median(cpu[1])
            for index, runtime in enumerate(runtimes):
                ratios = f"{ratio:>9.2f}x {cpu_ratio:>9.2f}x" if index == 1 else ""
                print(
                    f"{name:<24} {runtime.name:<8} {statistics.median(wall[index]):>10.2f} "
                    f"{percentile(wall[index], 90):>9.2f} {statistics.median(cpu[index]):>11.2f} "
                    f"{ratios:>21}"
                )
            print(f"{'':<24} max |logit difference| torch vs onnx on 8 photographs: {diff:.1e}")
    load_end = os.getloadavg()[0]
    print(f"load average {load_end:.2f} at end (other processes share the CPU: rerun if high)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
