"""The engine's own cost per task, measured beside the inference it serves, in one run.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--n 300] [--runtime onnx] [--ray]``.

1. Engine alone: ``--n`` sequential tasks through the engine on an in-process fleet whose nodes
   answer at once (:class:`carbonedge.fleet.fakes.InProcessFleet`). Each task's wall time is
   the engine's whole path: admission, intensity feed, telemetry, ``Scheduler.select``, dispatch,
   the per-task charge, the ledger row and its group commit (SQLite WAL) before the future
   resolves. Its median is the engine's cost per task.
2. The same engine on the paper's three-node ``LocalFleet`` running MobileNetV2: the median
   end-to-end time per task and the node's own execution time, so the engine's cost can be read
   as a fraction of the inference.
3. With ``--ray``: the same on a ``RayFleet`` (a local Ray): engine + Ray transport per task =
   end-to-end minus execution.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from carbonedge.engine import EngineConfig, EngineSettings, open_engine
from carbonedge.fleet import FleetBackend, ModelRef, load_fleet
from carbonedge.fleet.fakes import InProcessFleet

X = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)


def _settings(folder: Path, name: str) -> EngineSettings:
    return EngineSettings(
        meter="fake",
        window_s=1.0,
        ledger=folder / f"{name}.sqlite",
        policy="normalized",
        mode="balanced",
        engine=EngineConfig(max_wait_s=60.0),
    )


def _run(
    fleet: FleetBackend, folder: Path, name: str, n: int, runtime: str
) -> tuple[list[float], list[float], list[float]]:
    """(wall ms per task, exec ms per task, decision us per task) of n sequential tasks."""
    engine = open_engine(
        _settings(folder, name),
        fleet=fleet,
        models=[ModelRef("mobilenet_v2")],
        runtime=runtime,  # type: ignore[arg-type]
    )
    try:
        key = engine.model_keys[0]
        for i in range(10):  # warm-up: telemetry, caches, runtimes
            engine.run(X, key, task_id=f"warm-{i}")
        wall, exec_ms, decision = [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            out = engine.run(X, key, task_id=f"t{i}")
            wall.append((time.perf_counter() - t0) * 1000.0)
            exec_ms.append(out.result.exec_ms)
            decision.append(out.decision_us)
            assert out.recorded
    finally:
        engine.close()
    return wall, exec_ms, decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="onnx")
    parser.add_argument("--ray", action="store_true", help="also measure on a local Ray")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    spec = load_fleet(None)

    wall, _, decision = _run(InProcessFleet(spec, exec_ms=0.0), folder, "alone", args.n, "torch")
    engine_ms = statistics.median(wall)
    print(f"engine alone (in-process fleet, {args.n} sequential tasks):")
    print(f"  cost per task: median {engine_ms:.3f} ms, p90 {np.percentile(wall, 90):.3f} ms")
    print(f"  of which Scheduler.select: median {statistics.median(decision):.1f} us")

    from carbonedge.fleet import LocalFleet

    with LocalFleet(spec) as local:
        wall_l, exec_l, _ = _run(local, folder, "local", args.n, args.runtime)
    e2e, ex = statistics.median(wall_l), statistics.median(exec_l)
    print(f"\nlocal fleet (paper's 3 nodes, mobilenet_v2 {args.runtime}):")
    print(f"  end-to-end per task: median {e2e:.2f} ms; node execution median {ex:.2f} ms")
    print(f"  transport + engine (end-to-end - execution): median {e2e - ex:.2f} ms")
    print(
        f"  engine's own cost / inference: {engine_ms:.3f} / {ex:.2f} ms = "
        f"{engine_ms / ex:.1%} (goal: engine cost <= 0.5 ms: "
        f"{'met' if engine_ms <= 0.5 else 'NOT met'})"
    )
    if args.ray:
        from carbonedge.fleet.ray_backend import RayFleet

        with RayFleet(spec) as ray_fleet:
            wall_r, exec_r, _ = _run(ray_fleet, folder, "ray", args.n, args.runtime)
        e2e_r, ex_r = statistics.median(wall_r), statistics.median(exec_r)
        print(f"\nRay fleet (local Ray, 3 actors, mobilenet_v2 {args.runtime}):")
        print(f"  end-to-end per task: median {e2e_r:.2f} ms; execution median {ex_r:.2f} ms")
        print(f"  engine + Ray transport per task: median {e2e_r - ex_r:.2f} ms")


if __name__ == "__main__":
    main()
