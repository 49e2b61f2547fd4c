"""Tenants over real HTTP on 127.0.0.1: API keys, budgets (429), greener placement as a budget
runs low, usage kept across a restart, the key in no log line; the ``tenants`` command.

The servers run on an in-process fleet (no processes): high (1 CPU, 8 W, 620 gCO2/kWh) and
green (0.4 CPU, 3.2 W, 380 gCO2/kWh). Each task reports 0.02 CPU-s, charged by the power
profile (0.16 J on either node: 2.76e-5 gCO2 on high, 1.69e-5 gCO2 on green).
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from carbonedge.cli.main import main
from carbonedge.engine import EngineConfig, EngineSettings, open_engine
from carbonedge.errors import ConfigError
from carbonedge.fleet import ModelRef
from carbonedge.fleet.fakes import InProcessFleet
from carbonedge.fleet.spec import FleetSpec, parse_fleet
from carbonedge.models.labels import imagenet_classes
from carbonedge.serve import ServeApp, ServeConfig
from carbonedge.serve.tenants import (
    Tenant,
    TenantGate,
    TenantStore,
    hash_api_key,
    open_gate,
    per_task_allowance_g,
    period_bounds,
)

pytestmark = pytest.mark.timeout(120)

X = np.zeros((1, 3, 224, 224), np.float32)
G_HIGH = 8.0 * 0.02 / 3.6e6 * 620  # gCO2 of one task on high (power-profile prior)
G_GREEN = 3.2 / 0.4 * 0.02 / 3.6e6 * 380


def fleet_spec() -> FleetSpec:
    nodes = [
        {"name": "high", "cpu_quota": 1.0, "memory_mb": 1024, "intensity_g_per_kwh": 620,
         "idle_w": 0.0, "max_w": 8.0},
        {"name": "green", "cpu_quota": 0.4, "memory_mb": 512, "intensity_g_per_kwh": 380,
         "idle_w": 0.0, "max_w": 3.2},
    ]  # fmt: skip
    return parse_fleet({"nodes": nodes}, "tenants-test")


def serve(tmp_path: Path, tenants: Path | None, **kw: Any) -> ServeApp:
    """A started server on a fresh in-process fleet; the ledger is tmp_path/ledger.sqlite.
    Each node first runs one pinned task (so that Eq. 4's T_avg is known: no cold start), high
    in 5 ms and green in 12 ms: the default scheduler (Table I performance) prefers high, the
    least-carbon choice is green (620 x 8 W x 5 ms > 380 x 3.2 W x 12 ms)."""
    settings = EngineSettings(
        meter="fake",
        window_s=0.0,
        ledger=tmp_path / "ledger.sqlite",
        policy="paper",
        mode="performance",  # prefers the bigger node: high
        run_prefix="test",
        forecaster=kw.pop("forecaster", "ar"),
        engine=EngineConfig(max_wait_s=2.0, poll_s=0.01),
    )
    fleet = InProcessFleet(kw.pop("spec", None) or fleet_spec(), cpu_s=0.02)
    engine = open_engine(settings, fleet=fleet, models=[ModelRef("m")], clock=kw.pop("clock", None))
    for node, exec_ms in (("high", 5.0), ("green", 12.0)):
        fleet.exec_ms = exec_ms
        engine.run(X, engine.model_keys[0], task_id=f"warm-{node}", node=node)
    fleet.exec_ms = 10.0
    config = ServeConfig(port=0, tenants=tenants, **kw)  # its engine settings are unused here
    try:
        app = ServeApp(config, engine, engine.model_keys[0], own_engine=True)
    except BaseException:
        engine.close()
        raise
    return app.start()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def request(
    app: ServeApp,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(data)
    finally:
        conn.close()


def infer(app: ServeApp, key: str | None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "image/png"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return request(app, "POST", "/v1/infer", png(), headers)


def ledger_rows(tmp_path: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as db:
        return db.execute(
            "SELECT task_id, node, tenant FROM tasks WHERE task_id NOT LIKE 'warm-%' ORDER BY rowid"
        ).fetchall()


def test_a_spent_budget_is_429_while_another_tenant_is_served_and_it_survives_a_restart(
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.sqlite"
    store = TenantStore(tenants)
    _, tiny = store.add("tiny", budget_gco2=G_HIGH / 10, period="day")
    _, other = store.add("other")
    store.close()
    with serve(tmp_path, tenants) as app:
        status, _, out = infer(app, tiny)  # under budget: served
        assert status == 200, out
        status, headers, out = infer(app, tiny)
        assert status == 429, out
        budget = out["budget"]
        assert budget["tenant"] == "tiny" and budget["period"] == "day"
        assert budget["limit_gco2"] == pytest.approx(G_HIGH / 10)
        assert budget["used_gco2"] == pytest.approx(out["budget"]["used_gco2"])
        assert budget["used_gco2"] >= budget["limit_gco2"]
        reset = datetime.fromisoformat(budget["resets_at"])
        assert reset == period_bounds("day", datetime.now(UTC))[1]
        wait_s = int(headers["retry-after"])
        assert abs(wait_s - (reset - datetime.now(UTC)).total_seconds()) < 60
        assert "spent its carbon budget" in out["error"] and out["status"] == 429
        status, _, out = infer(app, other)  # another tenant is still served
        assert status == 200, out
        status, _, me = request(
            app, "GET", "/v1/tenant", headers={"Authorization": f"Bearer {tiny}"}
        )
        assert status == 200 and me["tenant"]["name"] == "tiny"
        assert me["tenant"]["used_gco2"] == pytest.approx(budget["used_gco2"])
    rows = ledger_rows(tmp_path)
    assert [r[2] for r in rows] == ["tiny", "other"]  # each row names its tenant; no 429 row
    # A restart re-reads the day's usage from the ledger: still spent; the other one is served.
    with serve(tmp_path, tenants) as app:
        status, headers, out = infer(app, tiny)
        assert status == 429 and "retry-after" in headers
        assert out["budget"]["used_gco2"] == pytest.approx(budget["used_gco2"])
        assert infer(app, other)[0] == 200


def test_as_a_budget_runs_low_work_moves_to_the_greener_node(tmp_path: Path) -> None:
    """Budget 2.5 high tasks: the first runs where the server's default (performance) puts it,
    high; the second, predicted at the largest recent charge (high's), would pass half the
    budget: under that pressure it goes to the least-carbon node, green; then what is left is
    less than a task's predicted carbon: 429, and the budget was never passed."""
    tenants = tmp_path / "tenants.sqlite"
    store = TenantStore(tenants)
    budget = 2.5 * G_HIGH
    _, key = store.add("eco", budget_gco2=budget)
    store.close()
    assert 0.5 * G_HIGH < G_GREEN < G_HIGH  # the premise of the test
    with serve(tmp_path, tenants) as app:
        first = infer(app, key)
        second = infer(app, key)
        third = infer(app, key)
    assert first[0] == 200 and first[2]["node"] == "high"
    assert second[0] == 200 and second[2]["node"] == "green"
    assert third[0] == 429 and "too little carbon budget left" in third[2]["error"]
    assert third[2]["budget"]["used_gco2"] == pytest.approx(
        first[2]["gco2"] + second[2]["gco2"], rel=1e-9
    )
    assert third[2]["budget"]["request_gco2"] == pytest.approx(first[2]["gco2"])
    assert third[2]["budget"]["used_gco2"] <= budget


def test_answers_name_classes_and_the_weights_source(tmp_path: Path) -> None:
    with serve(tmp_path, None) as app:
        status, _, out = infer(app, None)  # no tenants: open, no key needed
    assert status == 200, out
    labels = imagenet_classes().labels
    # the in-process fleet's logits rise with the class index: 999 is the most probable
    assert [t["class"] for t in out["top5"]] == [999, 998, 997, 996, 995]
    assert out["top5"][0]["label"] == labels[999] == "toilet tissue, toilet paper, bathroom tissue"
    assert out["weights_source"] == "random (seed 0)" and out["weights_sha256"] is None
    assert "timm" in out["labels_source"]
    assert ledger_rows(tmp_path)[0][2] == ""  # open mode: no tenant


def test_imagenet_classes_ship_with_the_package() -> None:
    classes = imagenet_classes()
    assert len(classes.labels) == len(set(classes.synsets)) == 1000
    assert classes.synsets[0] == "n01440764" and classes.labels[0] == "tench, Tinca tinca"
    assert classes.labels[281] == "tabby, tabby cat"


def test_wrong_or_missing_keys_are_401_and_no_key_is_ever_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    tenants = tmp_path / "tenants.sqlite"
    store = TenantStore(tenants)
    _, good = store.add("acme")
    _, revoked = store.add("gone")
    store.revoke("gone")
    store.close()
    wrong = "ce_" + "A" * 43
    with serve(tmp_path, tenants) as app:
        cases = [
            (None, "missing API key"),
            (wrong, "invalid or revoked API key"),
            (revoked, "invalid or revoked API key"),
            (good[:-1], "invalid or revoked API key"),
        ]
        for key, words in cases:
            status, headers, out = infer(app, key)
            assert status == 401, out
            assert out == {"error": out["error"], "status": 401} and words in out["error"]
            assert headers["www-authenticate"] == "Bearer"
        status, _, out = request(
            app, "POST", "/v1/infer", png(), {"Authorization": f"Basic {good}"}
        )
        assert status == 401 and "missing API key" in out["error"]
        status, _, out = request(
            app, "GET", "/v1/tenant", headers={"Authorization": f"Bearer {wrong}"}
        )
        assert status == 401
        status, _, out = infer(app, good)
        assert status == 200, out
        assert good not in json.dumps(out)
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "refused a request with an invalid or revoked API key (401)" in caplog.text
    for key in (good, wrong, revoked, good[:-1]):
        assert key not in logged
    # the file keeps hashes only
    raw = tenants.read_bytes()
    assert good.encode() not in raw and hash_api_key(good).encode() in raw


def test_no_tenants_is_loopback_only_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--allow-open"):
        open_gate(None, "0.0.0.0")
    with pytest.raises(ConfigError, match="--allow-open"):
        open_gate(tmp_path / "missing.sqlite", "192.0.2.1")
    for host in ("127.0.0.1", "localhost", "::1"):
        assert not open_gate(None, host).required
    assert not open_gate(None, "0.0.0.0", allow_open=True).required
    store = TenantStore(tmp_path / "t.sqlite")
    store.add("a")
    store.revoke("a")  # revoking the last tenant must not open the server
    store.close()
    gate = open_gate(tmp_path / "t.sqlite", "0.0.0.0")
    assert gate.required
    gate.close()


def test_placement_from_budget_use() -> None:
    """Below half the budget: the default scheduler (or the SLO's); from half: the constrained
    policy with the remaining budget spread over the tasks expected at the pace so far."""
    t0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)  # a quarter of the day elapsed
    gate = TenantGate(None, now=lambda: t0)
    eco = Tenant("eco", "x", "", budget_gco2=10.0, period="day", slo_ms=None)
    first = gate.placement(eco)
    assert first.scheduler is None
    gate.release(first)
    slo = Tenant("slo", "y", "", slo_ms=250.0)
    placed = gate.placement(slo).scheduler
    assert placed is not None and placed.policy == "constrained" and placed.slo_ms == 250.0
    assert gate.placement(slo).scheduler is placed  # reused: batching needs the same object
    for _ in range(4):
        gate.add_usage("eco", 1.5, t0 - timedelta(minutes=1))  # 6 g in 4 tasks over 6 h
    admission = gate.placement(eco)
    assert admission.scheduler is not None and admission.scheduler.policy == "constrained"
    # 4 g left over 4 x 18 h / 6 h = 12 expected tasks
    assert admission.allowance_g == pytest.approx(4.0 / 12)
    assert admission.scheduler.carbon_budget_g == pytest.approx(4.0 / 12)
    assert per_task_allowance_g(10.0, 4.0, 0, 10.0, 100.0) == 6.0  # no pace yet: all of it


def test_periods_reset_at_utc_midnight_and_month_start() -> None:
    now = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    assert period_bounds("day", now) == (
        datetime(2024, 12, 31, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", now) == (
        datetime(2024, 12, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    clock = [now]
    gate = TenantGate(None, now=lambda: clock[0])
    gate.add_usage("a", 2.0, now)
    assert gate.usage("a", "day") == (2.0, 1) and gate.usage("a", "month") == (2.0, 1)
    clock[0] = now + timedelta(hours=1)  # a new day and a new month
    assert gate.usage("a", "day") == (0.0, 0) and gate.usage("a", "month") == (0.0, 0)


def test_tenants_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(tmp_path / "t.sqlite")
    assert main(["tenants", "list", "--tenants", f]) == 0
    assert "does not exist" in capsys.readouterr().out
    assert main(["tenants", "add", "acme", "--gco2", "5", "--per", "month", "--tenants", f]) == 0
    out = capsys.readouterr().out
    key = out.strip().splitlines()[-1]
    assert key.startswith("ce_") and len(key) == 46 and "budget 5 gCO2/month" in out
    assert main(["tenants", "add", "bob", "--key-only", "--tenants", f]) == 0
    assert capsys.readouterr().out.strip().startswith("ce_")
    assert main(["tenants", "add", "acme", "--tenants", f]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["tenants", "budget", "acme", "--slo-ms", "200", "--tenants", f]) == 0
    assert "budget 5 gCO2/month, SLO 200 ms" in capsys.readouterr().out  # the rest unchanged
    assert main(["tenants", "revoke", "bob", "--tenants", f]) == 0
    assert "tenant 'bob' revoked" in capsys.readouterr().out
    assert main(["tenants", "list", "--json", "--tenants", f]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["acme"]["budget_gco2"] == 5.0 and listed["acme"]["slo_ms"] == 200.0
    assert listed["bob"]["active"] is False
    assert main(["tenants", "budget", "acme", "--none", "--tenants", f]) == 0
    assert main(["tenants", "rotate", "acme", "--key-only", "--tenants", f]) == 0
    new_key = capsys.readouterr().out.strip().splitlines()[-1]
    assert new_key != key
    store = TenantStore(Path(f), create=False)
    acme = store.get("acme")
    store.close()
    assert acme.key_sha256 == hash_api_key(new_key) and acme.budget_gco2 is None
    assert main(["tenants", "revoke", "nobody", "--tenants", f]) == 2
    assert main(["tenants", "add", "bad name", "--tenants", f]) == 2
    assert main(["tenants", "budget", "acme", "--gco2", "-1", "--tenants", f]) == 2


def tenants_file(tmp_path: Path, **budgets: float | None) -> tuple[Path, list[str]]:
    """A tenants file with one tenant per keyword (its daily budget in gCO2, or None) and
    their keys, in order."""
    path = tmp_path / "tenants.sqlite"
    store = TenantStore(path)
    keys = [store.add(name, budget_gco2=g, period="day")[1] for name, g in budgets.items()]
    store.close()
    return path, keys


def test_the_ledger_shows_each_tenant_its_own_rows_only(tmp_path: Path) -> None:
    tenants, (acme, other) = tenants_file(tmp_path, acme=None, other=None)
    with serve(tmp_path, tenants) as app:
        assert infer(app, acme)[0] == 200 and infer(app, other)[0] == 200
        status, _, refused = request(app, "GET", "/v1/ledger")
        assert status == 401 and "API key" in refused["error"]
        bad = {"Authorization": "Bearer ce_not-a-key"}
        assert request(app, "GET", "/v1/ledger", headers=bad)[0] == 401
        for name, key in (("acme", acme), ("other", other)):
            auth = {"Authorization": f"Bearer {key}"}
            status, _, body = request(app, "GET", "/v1/ledger?limit=100", headers=auth)
            assert status == 200
            assert [r["tenant"] for r in body["rows"]] == [name]  # not the other's, not warm-ups
