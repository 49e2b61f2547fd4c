"""``carbonedge serve`` as a user runs it: a real process, Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import psutil
import pytest

from carbonedge.cli.main import main

FLEET_TOML = """
[[nodes]]
name = "edge-1"
cpu_quota = 0.5
memory_mb = 512
intensity_g_per_kwh = 300
idle_w = 1.0
max_w = 4.0

[[nodes]]
name = "edge-2"
cpu_quota = 0.5
memory_mb = 512
intensity_g_per_kwh = 600
idle_w = 1.0
max_w = 4.0
"""


def test_bad_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "--slo-ms", "100", "--policy", "paper"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carbonedge: error: slo_ms") and "\n" not in err
    assert main(["serve", "--fleet", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert main(["serve", "--window-s", "0"]) == 2
    assert "window_s" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_serve_answers_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET_TOML)
    ledger = tmp_path / "ledger.sqlite"
    cmd = [
        sys.executable, "-m", "carbonedge.cli.main", "serve", "--fleet", str(fleet),
        "--model", "mobilenetv4_conv_small", "--port", "0", "--meter", "fake",
        "--ledger", str(ledger), "--window-s", "0.5", "--mode", "green",
    ]  # fmt: skip
    # faulthandler: if the server does not stop, SIGABRT makes it print every thread's stack.
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url is not None, proc.stderr.read() if proc.stderr else ""
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the two node processes
        png = Path(__file__).with_name("fakes.py").read_bytes()  # not an image: a 400
        req = urllib.request.Request(f"{url}/v1/infer", data=png, method="POST")
        with pytest.raises(urllib.request.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 400
        info.value.close()
        from PIL import Image

        image = tmp_path / "x.jpg"
        Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
        req = urllib.request.Request(
            f"{url}/v1/infer", data=image.read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            out = json.loads(resp.read())
        assert out["node"] in ("edge-1", "edge-2") and len(out["top5"]) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            stdout, stderr = proc.communicate(timeout=30)
            pytest.fail(f"serve did not stop 90 s after Ctrl-C; its threads:\n{stderr[-6000:]}")
    assert proc.returncode == 0, stderr
    assert "stopped; 1 ledger rows" in stdout
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphans left: {alive}"
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT task_id, node, gco2 FROM tasks").fetchall()
    assert len(rows) == 1 and rows[0][0] == out["request_id"] and rows[0][2] > 0
