"""``carbonedge serve`` as a user runs it: a real process, Ctrl-C, nothing left behind."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
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


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``carbonedge serve`` on the two-node fleet, the default ledger under tmp_path/data."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(FLEET_TOML)
    cmd = [
        sys.executable, "-m", "carbonedge.cli.main", "serve", "--fleet", str(fleet),
        "--model", "mobilenetv4_conv_small", "--port", "0", "--meter", "fake",
        "--window-s", "0.5", "--mode", "green", *extra,
    ]  # fmt: skip
    # faulthandler: if the server does not stop, SIGABRT makes it print every thread's stack.
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", "CARBONEDGE_DATA_DIR": str(tmp_path / "data")}
    env.pop("CARBONEDGE_LEDGER", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = None
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        url = match.group(1) if match else None
    if url is None:
        proc.kill()
        pytest.fail(f"serve did not start: {proc.communicate(timeout=30)[1][-3000:]}")
    return proc, url


def _jpeg(tmp_path: Path) -> bytes:
    from PIL import Image

    image = tmp_path / "x.jpg"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    return image.read_bytes()


def _post(url: str, body: bytes, request_id: str) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(
        f"{url}/v1/infer",
        data=body,
        headers={"Content-Type": "image/jpeg", "X-Request-Id": request_id},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return exc.code, dict(exc.headers)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return -1, {}  # the server died before the whole answer came: not answered


def _ledger_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute("SELECT task_id FROM tasks")]


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_serve_answers_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    ledger = tmp_path / "data" / "ledger.sqlite"
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the two node processes
        junk = Path(__file__).read_bytes()  # not an image: a 400
        req = urllib.request.Request(f"{url}/v1/infer", data=junk, method="POST")
        with pytest.raises(urllib.request.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 400
        info.value.close()
        req = urllib.request.Request(
            f"{url}/v1/infer", data=_jpeg(tmp_path), headers={"Content-Type": "image/jpeg"}
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
    assert f"stopped; 1 ledger rows written to {ledger}" in stdout
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphans left: {alive}"
    assert ledger.is_file()  # the default ledger is kept after Ctrl-C
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT task_id, node, gco2 FROM tasks").fetchall()
    assert len(rows) == 1 and rows[0][0] == out["request_id"] and rows[0][2] > 0


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_sigkill_of_a_node_mid_burst_loses_nothing_records_nothing_twice(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    body = _jpeg(tmp_path)
    try:
        nodes = psutil.Process(proc.pid).children(recursive=True)
        answers: dict[str, int] = {}

        def client(k: int) -> None:
            for i in range(8):
                rid = f"c{k}-{i}"
                answers[rid] = _post(url, body, rid)[0]
                if len(answers) == 10:
                    nodes[0].kill()  # SIGKILL one node while the others' tasks run

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=90)
    assert len(answers) == 48 and set(answers.values()) <= {200, 503}, answers
    assert sum(1 for v in answers.values() if v == 200) >= 40
    ids = _ledger_ids(tmp_path / "data" / "ledger.sqlite")
    assert len(ids) == len(set(ids))  # nothing recorded twice
    assert sorted(ids) == sorted(r for r, v in answers.items() if v == 200)  # nothing lost


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_sigkill_of_the_server_keeps_every_answered_row_and_leaves_no_node(
    tmp_path: Path,
) -> None:
    proc, url = _start(tmp_path)
    body = _jpeg(tmp_path)
    nodes = psutil.Process(proc.pid).children(recursive=True)
    answered: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        i = 0
        while not stop.is_set() and i < 200:
            rid = f"k{k}-{i}"
            if _post(url, body, rid)[0] == 200:
                answered.append(rid)
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(answered) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL mid-burst: no clean-up runs
    stop.set()
    for t in threads:
        t.join()
    proc.communicate(timeout=30)
    assert len(answered) >= 20
    ids = set(_ledger_ids(tmp_path / "data" / "ledger.sqlite"))
    assert set(answered) <= ids  # every answered request has its row
    _gone, alive = psutil.wait_procs(nodes, timeout=15)  # nodes exit when their parent dies
    assert not alive, f"node processes left running: {alive}"
