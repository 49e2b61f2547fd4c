"""The live dashboard (``/dashboard``) of a real ServeApp over an engine on the in-process fleet:
its JSON, plotly.js from the installed package, and the page in a real headless Chromium.

Screenshots go to the test's ``tmp_path`` and, when set, ``$CARBONEDGE_TEST_ARTEFACTS``.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from carbonedge.engine import EngineConfig, EngineSettings, open_engine
from carbonedge.fleet import ModelRef
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.spec import FleetSpec, parse_fleet
from carbonedge.serve import ServeApp, ServeConfig
from carbonedge.serve.dashboard import DashboardHistory, histogram_quantile, plotly_js

pytestmark = pytest.mark.timeout(120)

NODES = ("edge-high", "edge-medium", "edge-green")


def spec3() -> FleetSpec:
    nodes = [
        {"name": "edge-high", "cpu_quota": 1.0, "memory_mb": 1024, "intensity_g_per_kwh": 620,
         "idle_w": 1.0, "max_w": 6.0, "embodied_kgco2e": 50.0, "lifetime_years": 4.0,
         "embodied_source": "test figure"},
        {"name": "edge-medium", "cpu_quota": 0.6, "memory_mb": 512, "intensity_g_per_kwh": 530,
         "idle_w": 1.0, "max_w": 4.0},
        {"name": "edge-green", "cpu_quota": 0.4, "memory_mb": 512, "intensity_g_per_kwh": 380,
         "idle_w": 1.0, "max_w": 3.0, "pue": 1.2},
    ]  # fmt: skip
    return parse_fleet({"nodes": nodes}, "dashboard-test")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeApp]:
    fleet = InProcessFleet(spec3(), exec_s=0.01, cpu_s=0.008)
    settings = EngineSettings(
        meter="fake",
        window_s=0.5,
        ledger=tmp_path_factory.mktemp("dashboard") / "ledger.sqlite",
        run_prefix="dashboard-test",
        engine=EngineConfig(max_wait_s=5.0, poll_s=0.01),
    )
    engine = open_engine(settings, fleet=fleet, models=[ModelRef("m")])
    config = ServeConfig(model="m", port=0, engine=settings)
    with ServeApp(config, engine, engine.model_keys[0], own_engine=True).start() as app:
        yield app


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _request(
    app: ServeApp, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        headers = {"Content-Type": "image/png"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _infer(app: ServeApp, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        status, _, body = _request(app, "POST", "/v1/infer", _png())
        assert status == 200, body
        out.append(json.loads(body))
    return out


def _data(app: ServeApp, since: int = -1) -> dict[str, Any]:
    status, headers, body = _request(app, "GET", f"/v1/dashboard/data?since={since}")
    assert status == 200 and headers["content-type"] == "application/json", body
    data: dict[str, Any] = json.loads(body)
    return data


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(10.0, 2.0), (20.0, 6.0), (50.0, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(17.5)  # rank 5: 3/4 into (10, 20]
    assert histogram_quantile(0.9, buckets) == pytest.approx(42.5)
    assert histogram_quantile(0.9, [(10.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(10.0, 1.0), (math.inf, 4.0)]) == 10.0  # in +Inf


def test_history_is_bounded_incremental_and_never_samples_twice_at_once(
    server: ServeApp,
) -> None:
    now = [1000.0]
    history = DashboardHistory(server.engine, sample_s=2.0, history_s=6.0, clock=lambda: now[0])
    metrics = server.app.state.metrics
    first = history.sample(metrics)
    assert first.rps is None and first.latency_mean_ms is None
    now[0] += 0.5
    assert history.sample(metrics) is first  # too soon: a rate over 0.5 s would be noise
    assert not history.due()
    for _ in range(5):
        now[0] += 2.0
        assert history.due()
        history.sample(metrics)
    assert [s.seq for s in history.since(-1)] == [3, 4, 5, 6]  # an hour's worth: here 6 s
    assert [s.seq for s in history.since(4)] == [5, 6] and history.since(6) == []
    assert [s.seq for s in history.since(1)] == [3, 4, 5, 6]  # older than kept: all
    assert all(s.rps == 0.0 and set(s.tasks) == set(NODES) for s in history.since(-1))


def test_plotly_is_served_from_the_installed_package(server: ServeApp) -> None:
    path = plotly_js()
    assert path is not None and path.parts[-3:] == ("plotly", "package_data", "plotly.min.js")
    status, headers, body = _request(server, "GET", "/dashboard/plotly.min.js")
    assert status == 200 and body == path.read_bytes()
    assert "javascript" in headers["content-type"] and "max-age" in headers["cache-control"]
    status, headers, body = _request(server, "GET", "/dashboard")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert '<script src="/dashboard/plotly.min.js">' in page and "/v1/dashboard/data" in page
    assert "https://" not in page.split("<script", 1)[1]  # nothing from a CDN


def test_data_counts_what_the_scheduler_sent_and_keeps_a_history(server: ServeApp) -> None:
    before = _data(server)
    assert [n["name"] for n in before["nodes"]] == list(NODES)
    assert before["tenants"] == [] and before["samples"] and before["sample_s"] == 2.0
    first = {n["name"]: n for n in before["nodes"]}
    assert first["edge-green"]["intensity_g_per_kwh"] == 380.0
    assert first["edge-green"]["intensity_source"] == "static (fleet spec)"
    assert first["edge-high"]["up"] and first["edge-high"]["restarts"] == 0
    assert first["edge-high"]["embodied"]["embodied_kgco2e"] == 50.0
    answers = _infer(server, 6)
    after = _data(server, since=before["seq"])
    sent: dict[str, int] = {}
    for a in answers:
        sent[a["node"]] = sent.get(a["node"], 0) + 1
    for node in after["nodes"]:
        gained = node["tasks"] - first[node["name"]]["tasks"]
        assert gained == sent.get(node["name"], 0), node["name"]
    totals = after["totals"]
    assert totals["requests"] == before["totals"]["requests"] + 6
    assert totals["gco2"] > before["totals"]["gco2"] and totals["latency_mean_ms"] > 0
    assert totals["gco2_per_inference"] == pytest.approx(totals["gco2"] / totals["requests"])
    methods = after["methods"]
    assert set(methods["charge"]) <= {"window-cputime", "power-profile"} and methods["charge"]
    assert methods["meter"] == ("fake" if methods["rate_source"] == "window" else "none")
    # Only samples newer than the one asked for; each holds every node.
    assert all(s["seq"] > before["seq"] for s in after["samples"])
    for s in after["samples"]:
        assert set(s["intensity_g_per_kwh"]) == set(s["tasks"]) == set(NODES)


def test_answers_carry_their_sci(server: ServeApp) -> None:
    by_node = {a["node"]: a for a in _infer(server, 12)}
    for node, answer in by_node.items():
        sci = answer["sci"]
        e, i, m, r = sci["E"], sci["I"], sci["M"], sci["R"]
        assert r == {"inferences": 1, "label": "measured"}
        assert e["label"] == "modelled" and e["methods"]  # the fake meter is a model
        assert i["label"] == "sourced" and i["intensity_g_per_kwh"] == answer["intensity_g_per_kwh"]
        # E includes the PUE, so E x I is the answer's gCO2 (Eq. 2).
        assert e["energy_kwh"] == pytest.approx(answer["energy_kwh"] * answer["pue"])
        assert sci["operational_g"] == pytest.approx(answer["gco2"])
        assert sci["sci_g_per_inference"] == pytest.approx(sci["operational_g"] + m["embodied_g"])
        if node == "edge-high":  # 50 kg over 4 years, for the task's time on the node
            assert m["label"] == "sourced" and m["source"] == "test figure"
            per_s = 50_000.0 / (4 * 365.25 * 86400)
            assert m["embodied_g"] == pytest.approx(per_s * m["busy_s"]) and m["busy_s"] > 0
        else:
            assert m["label"] == "missing" and m["embodied_g"] == 0.0


def _text(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.driver.find_element(By.CSS_SELECTOR, css).text)


def _wait(condition: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _full_page_png(driver: Any, path: Path) -> Path:
    """The whole page, below the fold too (Chromium's DevTools screenshot)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_dashboard_page_in_a_real_browser(server: ServeApp, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.open(f"{server.url}/dashboard")
    driver = browser.driver
    cards = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#nodes .node"))
    assert [c.get_attribute("data-node") for c in cards] == list(NODES)
    assert "380" in _text(browser, '#nodes .node[data-node="edge-green"] .big')
    assert _wait(lambda: "live" in _text(browser, "#status")), _text(browser, "#status")
    requests_before = _text(browser, "#kpi-requests")
    green_before = _text(browser, '#nodes .node[data-node="edge-green"] dd')

    # Traffic over a few poll intervals, so that the time series have points.
    for _ in range(4):
        _infer(server, 8)
        time.sleep(0.7)

    def served() -> int:
        return int(_text(browser, "#kpi-requests").replace(",", ""))

    expected = int(requests_before.replace(",", "")) + 32
    assert _wait(lambda: served() >= expected), f"#kpi-requests: {served()}, want {expected}"
    time.sleep(2.5)  # one more poll: rates and latency for the last interval
    cards_text = " ".join(_text(browser, f'#nodes .node[data-node="{n}"]') for n in NODES)
    assert "tasks sent" in cards_text and "UP" in cards_text
    assert _text(browser, '#nodes .node[data-node="edge-green"] dd') != green_before or (
        _text(browser, "#kpi-gco2") != "0"
    )
    # Every chart drew; the intensity chart has one line per node; health and tenants shown.
    plots = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
    assert len(plots) == 6
    lines = driver.find_elements(By.CSS_SELECTOR, "#chart-intensity .scatterlayer .trace")
    assert len(lines) == 3
    rows = driver.find_elements(By.CSS_SELECTOR, "#health tbody tr")
    assert [r.get_attribute("data-node") for r in rows] == list(NODES)
    assert "none" in _text(browser, "#health tbody tr")  # the in-process fleet's enforcement
    assert _text(browser, "#tenants") == "no tenants configured"
    assert _text(browser, "#kpi-latency") != "–"

    shot = _full_page_png(driver, tmp_path / "dashboard.png")
    assert shot.stat().st_size > 20_000
    artefacts = os.environ.get("CARBONEDGE_TEST_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / "dashboard.png")
    errors = browser.console_errors()
    browser.open("about:blank")  # stop polling before the server goes
    assert errors == [], errors


def test_tenants_budget_use_on_the_page(browser: Any, tmp_path: Path) -> None:
    """With tenants configured, the page lists each one's budget and use this period."""
    from selenium.webdriver.common.by import By

    from carbonedge.serve.tenants import TenantStore

    store = TenantStore(tmp_path / "tenants.sqlite")
    _, key = store.add("acme", budget_gco2=0.01, period="day")
    store.add("beta")
    store.close()
    settings = EngineSettings(meter="fake", window_s=0.5, ledger=tmp_path / "ledger.sqlite")
    engine = open_engine(settings, fleet=InProcessFleet(spec3()), models=[ModelRef("m")])
    config = ServeConfig(model="m", port=0, engine=settings, tenants=tmp_path / "tenants.sqlite")
    with ServeApp(config, engine, engine.model_keys[0], own_engine=True).start() as app:
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
            headers = {"Content-Type": "image/png", "Authorization": f"Bearer {key}"}
            conn.request("POST", "/v1/infer", body=_png(), headers=headers)
            assert conn.getresponse().status == 200
            conn.close()
        tenants = _data(app)["tenants"]
        assert [t["tenant"] for t in tenants] == ["acme", "beta"]
        assert tenants[0]["used_gco2"] > 0 and tenants[0]["tasks"] == 3
        browser.open(f"{app.url}/dashboard")
        driver = browser.driver
        rows = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#tenants tbody tr"))
        assert [r.text.split()[0] for r in rows] == ["acme", "beta"]
        bars = driver.find_elements(By.CSS_SELECTOR, "#tenants .bar > span")
        width = re.search(r"width:\s*([0-9.]+)%", bars[0].get_attribute("style") or "")
        assert len(bars) == 1 and width is not None and float(width.group(1)) > 0
        _full_page_png(driver, tmp_path / "dashboard-tenants.png")
        errors = browser.console_errors()
        browser.open("about:blank")
    assert errors == [], errors
