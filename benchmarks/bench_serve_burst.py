"""A burst against ``carbonedge serve`` with its defaults: does it stay up and answer clearly?

Run: ``.venv/bin/python benchmarks/bench_serve_burst.py [--n 1000] [--clients 200]
[--backend local|ray] [-- extra serve options]``. Everything printed is measured in this run.

Starts ``carbonedge serve`` (the paper's three nodes, default options, a ledger in a temporary
folder) as a subprocess on 127.0.0.1; with ``--backend ray`` it first starts a local 3-node
``ray.cluster_utils.Cluster`` (head + 2 workers, each advertising one edge node's resource) and
serves with ``--backend ray --address`` that cluster. Then ``--n`` requests from ``--clients``
concurrent connections (httpx, one 640x480 JPEG each), and one more request 1 s after the burst.
Printed: connection errors (must be 0), answers by status (200, or 429/503 with Retry-After),
throughput, p50/p99 latency, the status of the late request (must be 200), and the ledger's
row count (must equal the 200 answers). Exit status 1 if a "must" fails.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _jpeg() -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _ray_cluster(tmp: str) -> tuple[Any, str]:
    os.environ.update(RAY_TMPDIR=tmp, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    from ray.cluster_utils import Cluster

    from carbonedge.fleet.ray_placement import edge_resource

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {edge_resource("node-high"): 1},
            "include_dashboard": False,
            "object_store_memory": 128 * 2**20,
        },
    )
    for name in ("node-medium", "node-green"):
        cluster.add_node(
            num_cpus=1, resources={edge_resource(name): 1}, object_store_memory=128 * 2**20
        )
    cluster.wait_for_nodes()
    return cluster, cluster.address


async def _burst(
    url: str, body: bytes, n: int, clients: int
) -> tuple[collections.Counter[str], list[float], int, float]:
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    missing_retry_after = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal missing_retry_after
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                r = await client.post(
                    f"{url}/v1/infer", content=body, headers={"Content-Type": "image/jpeg"}
                )
            except httpx.HTTPError as exc:
                statuses[f"connection error ({type(exc).__name__})"] += 1
                continue
            statuses[str(r.status_code)] += 1
            if r.status_code == 200:
                latencies.append((time.perf_counter() - t0) * 1000.0)
            elif r.status_code in (429, 503) and "retry-after" not in r.headers:
                missing_retry_after += 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return statuses, latencies, missing_retry_after, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("serve_args", nargs="*", help="more `carbonedge serve` options")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="ce-burst-")
    ledger = Path(tmp) / "ledger.sqlite"
    cluster = None
    cmd = [
        sys.executable, "-m", "carbonedge.cli.main", "serve",
        "--port", str(args.port), "--ledger", str(ledger), *args.serve_args,
    ]  # fmt: skip
    if args.backend == "ray":
        cluster, address = _ray_cluster(tmp)
        cmd += ["--backend", "ray", "--address", address]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        assert server.stdout is not None
        for line in server.stdout:
            print("serve>", line.rstrip())
            if "listening on" in line:
                break
        else:
            print("the server did not start")
            return 1
        body = _jpeg()
        statuses, lat, missing_ra, wall_s = asyncio.run(_burst(url, body, args.n, args.clients))
        time.sleep(1.0)
        late = httpx.post(
            f"{url}/v1/infer", content=body, headers={"Content-Type": "image/jpeg"}, timeout=60
        )
        health = httpx.get(f"{url}/v1/health", timeout=30).json()
    finally:
        server.terminate()
        try:
            out, _ = server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
        for line in (out or "").splitlines()[-3:]:
            print("serve>", line)
        if cluster is not None:
            cluster.shutdown()
    rows = sqlite3.connect(ledger).execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    errors = sum(v for k, v in statuses.items() if k.startswith("connection"))
    ok = statuses.get("200", 0)
    print(f"\nbackend {args.backend}: {args.n} requests from {args.clients} concurrent clients")
    print(f"  answers by status: {dict(sorted(statuses.items()))}")
    print(f"  connection errors: {errors} (must be 0)")
    print(f"  refusals without Retry-After: {missing_ra} (must be 0)")
    print(f"  throughput: {ok / wall_s:.1f} answered inferences/s over {wall_s:.1f} s")
    if lat:
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"  latency of 200s: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"  request 1 s after the burst: HTTP {late.status_code} (must be 200)")
    print(f"  engine: {health.get('engine')}")
    print(f"  ledger rows: {rows} (200 answers: {ok + (late.status_code == 200)})")
    failed = errors or missing_ra or late.status_code != 200 or rows != ok + 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
