"""Per-task cost of the Carbon Monitor's accounting path, measured side by side in one run.

Per task the experiments runner reads the task's CPU time, turns it into energy with the
window's rate (accounting.charge_task: CPU-s x rate, Eq. 2) and appends a ledger row.
Goal: the whole per-task path under 0.1 ms (100 us). Prints microseconds per operation.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from carbonedge.accounting import (
    EnergyReading,
    PowerSample,
    RateSnapshot,
    attribute,
    carbon_g,
    charge_task,
)
from carbonedge.carbon import EmissionsLedger, IntensityReading, cpu_seconds, task_row

GOAL_US = 100.0


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Median over 5 batches of the mean time per call, in microseconds."""
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - start) / n * 1e6)
    return sorted(batches)[2]


def main() -> None:
    reading = EnergyReading(
        duration_s=60.0,
        cpu_energy_kwh=1.3e-4,
        gpu_energy_kwh=0.0,
        ram_energy_kwh=3.3e-4,
        method={"cpu": "cpu-load-model", "gpu": "none", "ram": "constant"},
        samples=tuple(PowerSample(float(t), 8.0, 0.0, 20.0) for t in range(61)),
    )
    quotas = {"Node-High": 1.0, "Node-Medium": 0.6, "Node-Green": 0.4}
    cpu_s = {"Node-High": 20.0, "Node-Medium": 12.0, "Node-Green": 8.0}
    attribution = attribute(reading, cpu_s)
    snapshot = RateSnapshot(
        rates=attribution.kwh_per_cpu_s,
        basis=dict.fromkeys(cpu_s, "node"),
        source="window",
        energy_method=reading.method,
        meter="bench",
        window_s=reading.duration_s,
        closed_mono_s=time.monotonic(),
    )
    intensity = IntensityReading(380.0, "Node-Green", datetime.now(UTC), "static")
    now = datetime.now(UTC)
    pid = os.getpid()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = EmissionsLedger(Path(tmp) / "ledger.sqlite")
        batched = EmissionsLedger(Path(tmp) / "batched.sqlite", batch_size=32)
        counter = iter(range(10**9))

        def charge() -> object:
            return charge_task("Node-Green", 0.012, snapshot, intensity, 1.0, now_mono_s=0.0)

        def make_row() -> object:
            energy = charge().energy  # type: ignore[attr-defined]
            return task_row(
                task_id=f"t{next(counter)}",
                run_id="bench",
                node="Node-Green",
                model="mobilenet_v2",
                runtime="onnx",
                started_at=now,
                finished_at=now,
                latency_ms=12.0,
                cpu_s=0.012,
                energy=energy,
                intensity=intensity,
                pue=1.0,
                energy_method="cpu=cpu-load-model gpu=none ram=constant",
                attribution_method="cputime",
            )

        def full_path() -> None:
            time.thread_time()  # the worker's own CPU-time read per task
            ledger.append(make_row())  # type: ignore[arg-type]

        results = {
            "thread_time() read (worker, per task)": per_call_us(time.thread_time, 20000),
            "psutil cpu_seconds(1 pid) (per window)": per_call_us(lambda: cpu_seconds([pid]), 2000),
            "charge_task (energy + Eq. 2 + note)": per_call_us(charge, 50000),
            "carbon_g (Eq. 2)": per_call_us(lambda: carbon_g(1e-6, 380.0, 1.0), 50000),
            "task_row (energy + Eq. 2 + row)": per_call_us(make_row, 20000),
            "ledger.append (SQLite WAL, commit/row)": per_call_us(
                lambda: ledger.append(make_row()),
                2000,  # type: ignore[arg-type]
            ),
            "ledger.append, batch_size=32": per_call_us(
                lambda: batched.append(make_row()),
                2000,  # type: ignore[arg-type]
            ),
            "full per-task path": per_call_us(full_path, 2000),
            "attribute() 3 nodes (per window)": per_call_us(
                lambda: attribute(reading, cpu_s, quotas, "cputime"), 20000
            ),
        }
        ledger.close()
        batched.close()
    width = max(len(k) for k in results)
    print(f"{'operation':<{width}}  us/call")
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.2f}")
    full = results["full per-task path"]
    verdict = "OK" if full < GOAL_US else "OVER GOAL"
    print(f"per-task path {full:.1f} us vs goal {GOAL_US:.0f} us: {verdict}")


if __name__ == "__main__":
    main()
