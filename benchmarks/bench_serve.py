"""HTTP endpoint benchmark: latency, server overhead and requests/s of ``carbonedge serve``.

Run: ``.venv/bin/python benchmarks/bench_serve.py [--n 200] [--model mobilenet_v2]
[--runtime onnx] [--meter fake|codecarbon]``. Everything is measured in this one run; nothing
is hard-coded.

A client thread sends ``--n`` sequential ``POST /v1/infer`` requests (urllib, a new connection
per request, as curl would) with one real photograph (scikit-image's ``chelsea.png``, PNG,
451x300) to a server on 127.0.0.1 in front of the paper's three-node LocalFleet. Side by side,
after each HTTP request, the 8-bit crop the server sends is submitted straight to the same node
with ``fleet.submit`` (no HTTP, no decoding, no scheduler, no accounting). Printed:

- client latency (urllib call), server-side latency, node exec_ms, direct-submit latency;
- server overhead per request = client latency - exec_ms, and its parts from the response's
  ``timings`` (decode, engine queue, scheduler, fleet dispatch) plus HTTP/JSON/client
  (= client latency - server-side latency);
- requests/s over the whole run, and how the scheduler spread the requests over the nodes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from carbonedge.data import read_pixels, skimage_photographs
from carbonedge.engine import EngineSettings, open_engine
from carbonedge.fleet import LocalFleet, ModelRef, load_fleet
from carbonedge.serve import ServeApp, ServeConfig


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="sequential requests")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="onnx")
    parser.add_argument("--meter", choices=("fake", "codecarbon"), default="fake")
    parser.add_argument("--policy", default="normalized")
    parser.add_argument("--mode", default="balanced")
    args = parser.parse_args()

    photo = next(p for p in skimage_photographs() if p.name == "chelsea.png")
    body = photo.read_bytes()
    tensor = read_pixels(photo)[None]  # (1, 224, 224, 3) uint8: what the server sends a node
    settings = EngineSettings(
        meter=args.meter,
        policy=args.policy,
        mode=args.mode,
        window_s=2.0,
        ledger=Path(tempfile.mkdtemp(prefix="bench-serve-")) / "ledger.sqlite",
    )
    cfg = ServeConfig(model=args.model, runtime=args.runtime, port=0, engine=settings)
    load0 = os.getloadavg()[0]
    with LocalFleet(load_fleet(None)) as fleet:
        key = fleet.deploy(ModelRef(args.model), fleet.spec.names, runtime=args.runtime)
        engine = open_engine(settings, fleet=fleet)
        with ServeApp(cfg, engine, key, own_engine=True).start() as app:
            url = f"{app.url}/v1/infer"
            rows: list[dict[str, float]] = []
            nodes: collections.Counter[str] = collections.Counter()
            t_run = 0.0
            for i in range(args.warmup + args.n):
                req = urllib.request.Request(
                    url, data=body, headers={"Content-Type": "image/png"}, method="POST"
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as resp:
                    out = json.loads(resp.read())
                client_ms = (time.perf_counter() - t0) * 1000.0
                direct = fleet.submit(out["node"], key, tensor).result(timeout=60)
                if i < args.warmup:
                    continue
                t_run += client_ms / 1000.0
                nodes[out["node"]] += 1
                tm = out["timings"]
                rows.append(
                    {
                        "client_ms": client_ms,
                        "server_ms": out["latency_ms"],
                        "exec_ms": out["exec_ms"],
                        "direct_ms": direct.latency_ms,
                        "overhead_ms": client_ms - out["exec_ms"],
                        "server_overhead_ms": out["latency_ms"] - out["exec_ms"],
                        "decode_ms": tm["decode_ms"],
                        "schedule_us": tm["schedule_us"],
                        "dispatch_ms": tm["dispatch_ms"],
                        "queue_ms": tm["queue_ms"],
                        "http_ms": client_ms - out["latency_ms"],
                    }
                )
            energy_method = out["energy_method"]
    load1 = os.getloadavg()[0]

    def col(name: str) -> list[float]:
        return [r[name] for r in rows]

    print(
        f"{args.n} sequential requests, {args.model} on {args.runtime}, policy {args.policy}/"
        f"{args.mode}, meter {args.meter} (last energy method: {energy_method}); "
        f"load average {load0:.1f} at start, {load1:.1f} at end"
    )
    print(f"image {photo.name} ({len(body)} bytes PNG); paper fleet (3 nodes, 2.0 cores of quota)")
    print(f"{'figure':<44}{'p50':>10}{'p90':>10}  unit")
    table = [
        ("client latency (urllib, new connection)", "client_ms", "ms"),
        ("server-side latency (arrival -> answer)", "server_ms", "ms"),
        ("node exec_ms", "exec_ms", "ms"),
        ("direct fleet.submit, same node, no HTTP", "direct_ms", "ms"),
        ("overhead: client latency - exec_ms", "overhead_ms", "ms"),
        ("overhead: server-side latency - exec_ms", "server_overhead_ms", "ms"),
        ("  decode + preprocess", "decode_ms", "ms"),
        ("  fleet dispatch (pipes, queueing)", "dispatch_ms", "ms"),
        ("  waiting for a free node (engine queue)", "queue_ms", "ms"),
        ("  scheduler decision", "schedule_us", "us"),
        ("  HTTP + JSON + client", "http_ms", "ms"),
    ]
    for label, name, unit in table:
        print(f"{label:<44}{_pct(col(name), 50):>10.3f}{_pct(col(name), 90):>10.3f}  {unit}")
    print(f"requests/s (sequential, one client): {args.n / t_run:.1f}")
    print("requests per node: " + ", ".join(f"{n} {c}" for n, c in sorted(nodes.items())))


if __name__ == "__main__":  # nodes are spawned processes: the guard is required
    main()
