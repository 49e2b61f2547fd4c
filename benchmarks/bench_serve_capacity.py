"""Serving against the fleet's capacity: throughput, latency, server overhead, batching's price.

Run: ``.venv/bin/python benchmarks/bench_serve_capacity.py [--clients 64] [--n 1200]
[--batches 1,2,4,8,16]``. Everything printed is measured in this one run.

``carbonedge serve --runtime onnx`` (the paper's three nodes, CodeCarbon meter) as a subprocess
on 127.0.0.1, one 640x480 JPEG photograph (scikit-image's astronaut) per request from
``--clients`` concurrent httpx clients. Printed:

- the fleet's capacity: sum of the nodes' CPU quotas / the measured CPU seconds per inference
  (from the answers' ``cpu_s``), in inferences/s, and the throughput as a fraction of it;
- p50/p99 client latency; the server's overhead per request (server-side latency minus the
  node's execution time: decoding, queueing for a free node, engine, dispatch), p50, and its
  decoding part alone;
- for each ``--max-batch B`` (the server restarted each time with ``--batch-wait-ms 5``): the
  throughput, the p50 latency and the energy per inference the answers were charged (the
  engine's per-task rule, labelled by its method).

On this 2-core host the nodes' quotas (2.0 cores) are the whole machine, so the server's own work
(decoding ~5 ms of CPU per image), the load generator and the meter compete with the nodes:
the capacity figure is what the nodes alone could do.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

QUOTA_CORES = 1.0 + 0.6 + 0.4  # the paper's fleet


def _jpeg() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((640, 480)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _start(port: int, ledger: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "carbonedge.cli.main", "serve", "--runtime", "onnx",
        "--port", str(port), "--ledger", str(ledger), "--max-wait-s", "30", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on" in line:
            return proc
    raise SystemExit(f"serve did not start: {proc.communicate()[0][-2000:]}")


async def _load(
    url: str, body: bytes, n: int, clients: int
) -> tuple[list[dict[str, Any]], list[float], float]:
    answers: list[dict[str, Any]] = []
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in todo:
            t0 = time.perf_counter()
            r = await client.post(url, content=body, headers={"Content-Type": "image/jpeg"})
            if r.status_code == 200:
                latencies.append((time.perf_counter() - t0) * 1000.0)
                answers.append(r.json())

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return answers, latencies, time.perf_counter() - t0


def _run(
    port: int, folder: Path, body: bytes, n: int, clients: int, *extra: str
) -> tuple[list[dict[str, Any]], list[float], float]:
    proc = _start(port, folder / f"ledger-{port}.sqlite", *extra)
    try:
        url = f"http://127.0.0.1:{port}/v1/infer"
        asyncio.run(
            _load(url, body, 3 * clients, clients)
        )  # warm-up: runtimes, telemetry, a meter window
        time.sleep(5.5)  # let a rolling meter window close so charges use measured rates
        return asyncio.run(_load(url, body, n, clients))
    finally:
        proc.terminate()
        proc.communicate(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    body = _jpeg()
    answers, lat, wall_s = _run(args.port, folder, body, args.n, args.clients)
    cpu_s = float(np.mean([a["cpu_s"] for a in answers]))
    capacity = QUOTA_CORES / cpu_s
    throughput = len(answers) / wall_s
    overhead = [a["latency_ms"] - a["exec_ms"] for a in answers]
    decode = [a["timings"]["decode_ms"] for a in answers]
    queue = [a["timings"]["queue_ms"] for a in answers]
    print(f"{len(answers)} answers from {args.clients} clients, mobilenet_v2 onnx, 640x480 JPEG")
    print(f"  CPU per inference (node, measured): {cpu_s * 1000:.2f} ms")
    print(
        f"  fleet capacity: {QUOTA_CORES:.1f} cores / {cpu_s * 1000:.2f} ms = {capacity:.0f} inf/s"
    )
    print(
        f"  throughput: {throughput:.1f} inf/s = {throughput / capacity:.2f} of capacity (goal 0.8)"
    )
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"  client latency: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(
        f"  server overhead (server latency - node exec): p50 {np.percentile(overhead, 50):.1f} ms"
        f" (goal 3 ms), of which decoding p50 {np.percentile(decode, 50):.1f} ms and waiting for"
        f" a free node p50 {np.percentile(queue, 50):.1f} ms"
    )
    print("\nbatching (server restarted with --max-batch B --batch-wait-ms 5):")
    print(f"{'B':>3} {'inf/s':>7} {'p50 ms':>7} {'CPU ms/inf':>10} {'mJ/inf':>8}  method")
    for i, b in enumerate(int(x) for x in args.batches.split(",")):
        answers, lat, wall_s = _run(
            args.port + 1 + i, folder, body, args.n // 2, args.clients,
            "--max-batch", str(b), "--batch-wait-ms", "5",
        )  # fmt: skip
        methods = sorted({a["energy_method"] for a in answers})
        print(
            f"{b:>3} {len(answers) / wall_s:>7.1f} {np.percentile(lat, 50):>7.0f} "
            f"{np.mean([a['cpu_s'] for a in answers]) * 1000:>10.2f} "
            f"{np.mean([a['energy_kwh'] for a in answers]) * 3.6e9:>8.3f}  {', '.join(methods)}"
        )


if __name__ == "__main__":
    main()
