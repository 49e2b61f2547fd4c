"""Peak memory of ``carbonedge serve`` while it answers the worst images the limits let through,
and every image bomb (docs/security.md, "Limits of the server").

Run: ``.venv/bin/python benchmarks/bench_serve_memory.py [--concurrent 4] [-- extra serve
options]``. Everything printed is measured in this run.

Starts ``carbonedge serve --meter fake`` (the paper's three nodes, a ledger in a temporary
folder) as a subprocess on 127.0.0.1 and reads the server process's RSS after start (baseline)
and its peak RSS (``VmHWM`` in ``/proc/<pid>/status``; the nodes are processes of their own)
after each phase: the image bombs (each must be a 400), the largest images inside the limits
(64 MP RGBA PNG, 64 MP JPEG, a 8000x250 strip: each must be a 200), then ``--concurrent`` of
the 64 MP PNG at once. Pass: every answer as expected, the server's peak RSS under its baseline
plus ``--margin-mib`` (default 1024: one decode at the pixel limit, ``max_decodes`` = 1), each
node's peak RSS under its ``memory_mb``, no traceback in the server's output, and a health
check ``ok`` at the end. Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _bombs() -> dict[str, bytes]:
    png = _encode(Image.new("RGB", (1, 1)), "PNG")
    ihdr = png[12:16] + struct.pack(">II", 100_000, 100_000) + png[24:29]
    huge = png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]
    jpeg = _encode(Image.effect_noise((640, 480), 64).convert("RGB"), "JPEG")
    return {
        "PNG declaring 100000x100000": huge,
        "PNG 20000x1": _encode(Image.new("L", (20_000, 1)), "PNG"),
        "PNG 6000x100 (aspect 60)": _encode(Image.new("RGB", (6_000, 100)), "PNG"),
        "PNG bomb 9000x9000 (81 MP)": _encode(Image.new("1", (9_000, 9_000)), "PNG"),
        "JPEG truncated": jpeg[: len(jpeg) // 2],
    }


def _worst() -> dict[str, bytes]:
    return {
        "PNG 8000x8000 RGBA (64 MP)": _encode(
            Image.new("RGBA", (8_000, 8_000), (9, 99, 9, 99)), "PNG"
        ),
        "JPEG 8000x8000 (64 MP)": _encode(Image.new("RGB", (8_000, 8_000), (200, 30, 30)), "JPEG"),
        "PNG 8000x250 (aspect 32)": _encode(Image.new("RGB", (8_000, 250), (1, 2, 3)), "PNG"),
    }


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--margin-mib", type=float, default=1024.0)
    parser.add_argument("serve_args", nargs="*", help="extra options for carbonedge serve")
    args = parser.parse_args()
    bombs, worst = _bombs(), _worst()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "carbonedge.cli.main", "serve", "--meter", "fake",
            "--port", str(args.port), "--ledger", str(Path(tmp) / "ledger.sqlite"),
            *args.serve_args,
        ]  # fmt: skip
        log = Path(tmp) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        url = f"http://127.0.0.1:{args.port}"
        try:
            deadline = time.monotonic() + 180
            while "listening on" not in log.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text())
                    return 1
                time.sleep(0.2)
            client = httpx.Client(base_url=url, timeout=120)
            time.sleep(1.0)
            base = _status_kib(server.pid, "VmRSS")
            print(f"server pid {server.pid}: RSS after start {base / 1024:.0f} MiB")
            print(f"{'phase':<34} {'status':>6} {'server peak RSS':>16}  answer")

            def post(body: bytes) -> httpx.Response:
                return client.post("/v1/infer", content=body, headers={"Content-Type": "image/png"})

            for phase, expected in ((bombs, 400), (worst, 200)):
                for name, body in phase.items():
                    r = post(body)
                    peak = _status_kib(server.pid, "VmHWM")
                    text = r.json().get("error") or f"node {r.json().get('node')}"
                    print(f"{name:<34} {r.status_code:>6} {peak / 1024:>12.0f} MiB  {text[:70]}")
                    ok &= r.status_code == expected
            body = worst["PNG 8000x8000 RGBA (64 MP)"]
            with ThreadPoolExecutor(args.concurrent) as pool:
                statuses = [r.status_code for r in pool.map(post, [body] * args.concurrent)]
            peak = _status_kib(server.pid, "VmHWM")
            name = f"{args.concurrent} x 64 MP PNG at once"
            print(f"{name:<34} {','.join(map(str, statuses)):>6} {peak / 1024:>12.0f} MiB")
            ok &= set(statuses) == {200}
            health = client.get("/v1/health").json()
            growth_mib = (peak - base) / 1024
            print(
                f"server peak RSS {peak / 1024:.0f} MiB = baseline {base / 1024:.0f} MiB "
                f"+ {growth_mib:.0f} MiB (margin {args.margin_mib:.0f} MiB): "
                f"{'ok' if growth_mib < args.margin_mib else 'OVER'}"
            )
            ok &= growth_mib < args.margin_mib
            for node in health["nodes"]:
                under = node["peak_rss_mb"] < node["memory_mb"]
                print(
                    f"node {node['name']}: peak RSS {node['peak_rss_mb']:.0f} MB of "
                    f"{node['memory_mb']} MB: {'ok' if under else 'OVER'}"
                )
                ok &= under
            print(f"health after: {health['status']}")
            ok &= health["status"] == "ok"
        finally:
            server.terminate()
            server.wait(timeout=60)
        text = log.read_text()
        tracebacks = text.count("Traceback")
        print(f"server output: {len(text.splitlines())} lines, {tracebacks} tracebacks")
        ok &= tracebacks == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
