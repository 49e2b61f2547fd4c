"""examples/grafana: every metric the dashboard queries is one ``carbonedge serve`` exports.

The exported names come from a rendered ``/metrics`` text: :class:`ServeMetrics` (the
endpoint's registry) over a duck-typed engine with one node, one request and one error, so
every labelled family has a sample. TODO(dashboard): once the live dashboard test starts the
real app, scrape its ``/metrics`` over HTTP here instead of rendering the registry directly.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
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


def exported_names() -> set[str]:
    """Sample names of a rendered /metrics text (``prometheus_client``'s own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    from carbonedge.carbon import IntensityReading
    from carbonedge.engine import WindowTotals
    from carbonedge.serve.metrics import ServeMetrics

    reading = IntensityReading(380.0, "FR", datetime.now(UTC), "static", fallback=True)
    engine = SimpleNamespace(
        stats=lambda: {"queued": 0, "in_flight": 1, "refused_overloaded": 0},
        rates=SimpleNamespace(
            totals=WindowTotals(
                windows=1,
                host_kwh={("cpu", "rapl"): 1e-6},
                node_kwh={"node-green": 5e-7},
                idle_kwh=1e-7,
                other_kwh=1e-8,
            )
        ),
        fleet=SimpleNamespace(
            health=lambda: [SimpleNamespace(name="node-green", up=True, restarts=0)]
        ),
        intensity=SimpleNamespace(readings=lambda: {"node-green": reading}),
        ledger=SimpleNamespace(rows_written=1, errors=0),
    )
    metrics = ServeMetrics(engine)  # type: ignore[arg-type]
    metrics.observe("node-green", 30.0, 25.0, 0.02, 1e-7, 4e-5, "window-cputime")
    metrics.error(503)
    text = metrics.render().decode("utf-8")
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_queried_metric_is_exported() -> None:
    exported = exported_names()
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
