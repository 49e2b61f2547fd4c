"""examples/grafana: every metric the dashboard queries is one ``carbonedge serve`` exports.

The exported names come from the real ``/metrics`` of a running endpoint: a :class:`ServeApp`
over an engine on the in-process fleet (fake meter, one closed meter window), scraped over
HTTP after one answered request and one refused one, so every labelled family has a sample.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[1] / "examples" / "grafana"
METRIC = re.compile(r"\bcarbonedge_[a-zA-Z0-9_:]*")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "carbonedge-dashboard.json").read_text())
    return data


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    out: list[dict[str, Any]] = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panels(panel) if "panels" in panel else [])
    return out


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", []) if t.get("expr")]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["definition"])
    return exprs


def _get(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "image/png"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``GET /metrics`` of a running endpoint after one 200 and one 400."""
    from PIL import Image

    from carbonedge.engine import EngineSettings, open_engine
    from carbonedge.fleet import ModelRef
    from carbonedge.fleet.fakes import InProcessFleet
    from carbonedge.fleet.spec import parse_fleet
    from carbonedge.serve import ServeApp, ServeConfig

    spec = parse_fleet(
        {"nodes": [{"name": "node-green", "cpu_quota": 0.5, "memory_mb": 512,
                    "intensity_g_per_kwh": 380, "idle_w": 1.0, "max_w": 4.0}]},
        "grafana-test",
    )  # fmt: skip
    settings = EngineSettings(
        meter="fake", window_s=0.2, ledger=tmp_path_factory.mktemp("grafana") / "l.sqlite"
    )
    engine = open_engine(settings, fleet=InProcessFleet(spec), models=[ModelRef("m")])
    config = ServeConfig(model="m", port=0, engine=settings)
    with ServeApp(config, engine, engine.model_keys[0], own_engine=True).start() as app:
        png = io.BytesIO()
        Image.new("RGB", (32, 32), (0, 120, 60)).save(png, format="PNG")
        assert _get(app.port, "POST", "/v1/infer", png.getvalue())[0] == 200
        assert _get(app.port, "POST", "/v1/infer", b"not an image")[0] == 400
        deadline = time.monotonic() + 30.0  # a closed meter window: host energy series
        while engine.rates.totals.windows < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, body = _get(app.port, "GET", "/metrics")
    assert status == 200
    return body.decode("utf-8")


def exported_names(text: str) -> set[str]:
    """Sample names of a /metrics text (``prometheus_client``'s own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_queried_metric_is_exported(metrics_text: str) -> None:
    exported = exported_names(metrics_text)
    queried = {name for expr in expressions(dashboard()) for name in METRIC.findall(expr)}
    assert queried, "the dashboard queries no carbonedge metric"
    assert queried <= exported, f"not exported: {sorted(queried - exported)}"
    # The panels the dashboard promises.
    for name in (
        "carbonedge_node_intensity_g_per_kwh",
        "carbonedge_requests_total",
        "carbonedge_request_energy_kwh_total",
        "carbonedge_request_gco2_total",
        "carbonedge_request_latency_ms_bucket",
        "carbonedge_node_up",
    ):
        assert name in queried, name


def test_dashboard_is_importable_grafana_json() -> None:
    board = dashboard()
    assert board["uid"] == "carbonedge" and board["title"] == "CarbonEdge"
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)) >= 6
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "node"} <= variables
    for panel in panels(board):
        assert panel["type"] in {"timeseries", "stat", "bargauge", "table", "row"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
    titles = " ".join(p["title"] for p in panels(board)).lower()
    for word in ("intensity", "tasks per node", "energy", "carbon", "latency", "node up"):
        assert word in titles


def test_prometheus_scrapes_the_serve_endpoint() -> None:
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert config["global"]["scrape_interval"].endswith("s")


@pytest.mark.parametrize("name", ["carbonedge_requests_total", "carbonedge_node_up"])
def test_metric_regex_finds_names_in_promql(name: str) -> None:
    expr = f'sum by (node) (rate({name}{{code="200"}}[$__rate_interval]))'
    assert METRIC.findall(expr) == [name]
