"""Dynamic batching as a carbon lever: energy per inference and latency at batch 1, 2, 4, 8, 16.

Run: ``.venv/bin/python benchmarks/bench_batching.py [--runtime onnx] [--seconds 6]
[--meter codecarbon|fake]``. Everything printed is measured in this one run.

One node (1.0 core, 8 W at full load, 620 gCO2/kWh, a real process with a real quota) behind the
engine with ``max_batch = B`` and ``batch_wait_ms = 50``. For each B, waves of B requests are
submitted at once for ``--seconds`` seconds inside one named measurement window of the host meter
(CodeCarbon; without RAPL its CPU-load model); the engine forms batches, runs one task per batch
and charges each request its share. Printed per B: inferences, p50/p90 latency per request, CPU
milliseconds per inference (measured in the node), the window's active host energy apportioned
to the node by CPU time per inference (J), and the charge the engine's ledger rows sum to (J per
inference, same method). Batching spreads fixed per-call costs over B images: fewer CPU-seconds
per image, so less energy, at the price of the wait for the batch and a longer run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from carbonedge.accounting import attribute
from carbonedge.engine import EngineConfig, EngineSettings, open_engine
from carbonedge.fleet import LocalFleet, ModelRef
from carbonedge.fleet.spec import parse_fleet

X = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
SPEC = parse_fleet(
    {"nodes": [{"name": "solo", "cpu_quota": 1.0, "memory_mb": 2048,
                "intensity_g_per_kwh": 620, "idle_w": 0.0, "max_w": 8.0}]},
    "bench-batching",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="onnx")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--meter", choices=("codecarbon", "fake"), default="codecarbon")
    parser.add_argument("--batches", default="1,2,4,8,16")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    print(f"mobilenet_v2 ({args.runtime}) on one 1.0-core node; meter {args.meter}")
    print(
        f"{'B':>3} {'inferences':>10} {'p50 ms':>8} {'p90 ms':>8} {'CPU ms/inf':>10} "
        f"{'window J/inf':>12} {'ledger J/inf':>12} {'gCO2/inf':>10}"
    )
    with LocalFleet(SPEC) as fleet:
        for b in (int(x) for x in args.batches.split(",")):
            settings = EngineSettings(
                meter=args.meter,
                window_s=0.0,
                ledger=folder / f"b{b}.sqlite",
                policy="paper",
                mode="performance",
                engine=EngineConfig(max_batch=b, batch_wait_ms=50.0, max_wait_s=60.0),
            )
            engine = open_engine(
                settings,
                fleet=fleet,
                models=[ModelRef("mobilenet_v2")],
                runtime=args.runtime,  # type: ignore[arg-type]
            )
            try:
                key = engine.model_keys[0]
                for i in range(3):  # warm-up
                    engine.run(X, key, task_id=f"warm-{i}")
                idle_w = engine.windows.idle_cpu_power_w(2.0) if args.meter != "fake" else 0.0
                engine.windows.begin_window(f"b{b}")
                latencies, cpu_s, charged_kwh, n = [], 0.0, 0.0, 0
                t_end = time.monotonic() + args.seconds
                while time.monotonic() < t_end:
                    t0 = time.perf_counter()
                    futures = [engine.submit(X, key, task_id=f"t{n + i}") for i in range(b)]
                    for f in futures:
                        out = f.result(timeout=120)
                        latencies.append((time.perf_counter() - t0) * 1000.0)
                        cpu_s += out.result.cpu_s
                        charged_kwh += out.charge.energy_kwh
                    n += b
                window = engine.windows.end_window(f"b{b}")
            finally:
                engine.close()
            att = attribute(
                window.reading,
                window.node_cpu_s,
                None,
                "cputime",
                idle_cpu_power_w=idle_w,
                host_cpu_s=window.host_cpu_s,
            )
            node_j = att.by_node["solo"].energy_kwh * 3.6e6
            p50, p90 = np.percentile(latencies, [50, 90])
            print(
                f"{b:>3} {n:>10} {p50:>8.1f} {p90:>8.1f} {cpu_s / n * 1000:>10.2f} "
                f"{node_j / n:>12.4f} {charged_kwh * 3.6e6 / n:>12.4f} "
                f"{node_j / n / 3.6e6 * 620:>10.2e}"
            )
    print(
        "window J/inf: the node's active energy in the window (host meter, apportioned by CPU "
        "time, idle floor excluded) / inferences; ledger J/inf: what the engine charged per "
        "request (no rolling window here, so the power-profile rate: 8 J per CPU-second); "
        "gCO2/inf: window J/inf at 620 g/kWh."
    )


if __name__ == "__main__":
    main()
