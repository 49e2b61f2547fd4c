"""Deferrable jobs over real HTTP on 127.0.0.1, on an in-process fleet whose intensities come
from a CSV trace replayed under a clock the test moves. With the trace's true future (the
``oracle`` forecaster, so that the greenest slot is known) the job is planned for the greenest
slot before its deadline, runs when the clock reaches it (not before), reports its carbon and
the carbon of running at submission, and survives a restart. With the default forecaster the
plan uses only the hours before submission. Also: the OpenAPI schema is valid.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from carbonedge.engine.forecast import forecast
from carbonedge.fleet.spec import FleetSpec, parse_fleet
from carbonedge.models.labels import imagenet_classes
from carbonedge.serve import ServeApp

from .test_tenants import png, request, serve, tenants_file

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
# hourly; green is cleanest at 03:00-04:00 (100), high is flat (500)
GREEN = [400, 350, 300, 100, 300, 400, 450, 50]
HIGH = 500


class Clock:
    """Grid time that moves only when the test says."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def trace_spec(tmp_path: Path) -> FleetSpec:
    lines = ["timestamp,zone,gco2_per_kwh"]
    for h, g in enumerate(GREEN):
        t = (T0 + timedelta(hours=h)).isoformat()
        lines += [f"{t},GREEN,{g}", f"{t},HIGH,{HIGH}"]
    (tmp_path / "day.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = {"source": "trace", "file": "day.csv"}
    nodes = [
        {"name": "high", "cpu_quota": 1.0, "memory_mb": 1024, "idle_w": 0.0, "max_w": 8.0,
         "intensity": {**source, "zone": "HIGH"}},
        {"name": "green", "cpu_quota": 0.4, "memory_mb": 512, "idle_w": 0.0, "max_w": 3.2,
         "intensity": {**source, "zone": "GREEN"}},
    ]  # fmt: skip
    spec = parse_fleet({"nodes": nodes}, "jobs-test")
    return type(spec)(spec.nodes, spec.source, base_dir=str(tmp_path))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def submit(app: ServeApp, body: dict[str, Any], key: str | None = None) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, headers_out, out = request(app, "POST", "/v1/jobs", json.dumps(body).encode(), headers)
    return status, headers_out, out


def get(app: ServeApp, job_id: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    status, _, out = request(app, "GET", f"/v1/jobs/{job_id}", headers=headers)
    return status, out


def wait_done(app: ServeApp, job_id: str, key: str | None = None) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, out = get(app, job_id, key)
        if out["state"] in ("done", "failed"):
            return out
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not done: {out}")


def ledger_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as db:
        return db.execute(
            "SELECT task_id, node, intensity_g_per_kwh, intensity_at, tenant, gco2 FROM tasks "
            "WHERE task_id LIKE 'job-%' ORDER BY rowid"
        ).fetchall()


def test_a_job_runs_in_the_greenest_slot_before_its_deadline(tmp_path: Path) -> None:
    clock = Clock(T0 + timedelta(minutes=10))
    with serve(tmp_path, None, spec=trace_spec(tmp_path), clock=clock, forecaster="oracle") as app:
        deadline = T0 + timedelta(hours=5, minutes=30)  # the 50 at 07:00 is past it
        status, headers, job = submit(
            app, {"images": [b64(png()), b64(png())], "deadline": deadline.isoformat()}
        )
        assert status == 202, job
        assert headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["state"] == "scheduled" and job["images"] == 2
        assert job["node"] == "green"
        assert datetime.fromisoformat(job["planned_start"]) == T0 + timedelta(hours=3)
        assert job["planned_intensity_g_per_kwh"] == pytest.approx(100.0)
        assert job["intensity_at_submission_g_per_kwh"] == pytest.approx(400.0)
        clock.now = T0 + timedelta(hours=2, minutes=59)
        time.sleep(0.8)  # four looks of the runner at the clock: not yet
        assert get(app, job["id"])[1]["state"] == "scheduled"
        clock.now = T0 + timedelta(hours=3, minutes=1)
        done = wait_done(app, job["id"])
    assert done["state"] == "done" and not done["late"], done
    assert datetime.fromisoformat(done["started_at"]) == clock.now
    results = done["results"]
    assert [r["index"] for r in results] == [0, 1]
    assert {r["node"] for r in results} == {"green"}
    assert all(r["intensity_g_per_kwh"] == 100.0 for r in results)
    labels = imagenet_classes().labels
    assert results[0]["top5"][0] == {
        "class": 999,
        "probability": results[0]["top5"][0]["probability"],
        "label": labels[999],
    }
    assert done["gco2"] == pytest.approx(sum(r["gco2"] for r in results))
    assert done["gco2"] == pytest.approx(done["energy_kwh"] * 100.0)
    # the same energy on the same node at submission time (400 g/kWh): four times as much
    assert done["gco2_if_run_at_submission"] == pytest.approx(4 * done["gco2"])
    assert done["saved_gco2"] == pytest.approx(3 * done["gco2"])
    assert done["weights_source"] == "random (seed 0)"
    rows = ledger_rows(tmp_path)
    assert [r[0] for r in rows] == [f"job-{job['id']}-0", f"job-{job['id']}-1"]
    assert all(r[1] == "green" and r[2] == 100.0 for r in rows)
    assert all(datetime.fromisoformat(r[3]) == clock.now for r in rows)
    assert sum(r[5] for r in rows) == pytest.approx(done["gco2"])


def test_jobs_survive_a_restart_and_belong_to_their_tenant(tmp_path: Path) -> None:
    tenants, (key, other) = tenants_file(tmp_path, acme=None, other=None)
    spec = trace_spec(tmp_path)
    clock = Clock(T0 + timedelta(minutes=10))
    with serve(tmp_path, tenants, spec=spec, clock=clock, forecaster="oracle") as app:
        body = {"images": [b64(png())], "deadline": (T0 + timedelta(hours=5)).isoformat()}
        assert submit(app, body)[0] == 401  # keys apply to jobs too
        status, _, job = submit(app, body, key)
        assert status == 202, job
        assert get(app, job["id"], other)[0] == 404  # another tenant's job is not there
    assert (tmp_path / "ledger.jobs.sqlite").is_file()  # beside the ledger
    clock.now = T0 + timedelta(hours=3, minutes=30)  # the server was down at the planned time
    with serve(tmp_path, tenants, spec=spec, clock=clock, forecaster="oracle") as app:
        done = wait_done(app, job["id"], key)
        _, _, me = request(app, "GET", "/v1/tenant", headers={"Authorization": f"Bearer {key}"})
    assert done["state"] == "done" and done["results"][0]["node"] == "green"
    assert ledger_rows(tmp_path)[0][4] == "acme"  # the job's rows name its tenant
    assert me["tenant"]["used_gco2"] == pytest.approx(done["gco2"])  # and count in its budget


def test_bad_jobs_are_400(tmp_path: Path) -> None:
    clock = Clock(T0 + timedelta(minutes=10))
    later = (T0 + timedelta(hours=1)).isoformat()
    with serve(tmp_path, None, spec=trace_spec(tmp_path), clock=clock, forecaster="oracle") as app:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"images": [b64(png())], "deadline": T0.isoformat()}, "not after now"),
            ({"images": [b64(png())], "deadline": "2024-05-01T01:00:00"}, "timezone"),
            ({"images": [], "deadline": later}, "images"),
            ({"images": ["@@@"], "deadline": later}, "images[0]: not valid base64"),
            ({"images": [b64(b"not an image")], "deadline": later}, "images[0]: cannot decode"),
            ({"images": [b64(png())], "deadline": (T0 + timedelta(days=9)).isoformat()}, "7 days"),
            ({"images": [b64(png())]}, "deadline"),
        ]
        for body, words in cases:
            status, _, out = submit(app, body)
            assert status == 400 and words in out["error"], (body, out)
        status, out = get(app, "nope")
        assert status == 404 and "no job 'nope'" in out["error"]


def test_the_openapi_schema_is_valid(tmp_path: Path) -> None:
    with serve(tmp_path, None) as app:
        status, _, schema = request(app, "GET", "/openapi.json")
    assert status == 200
    validate(schema)  # raises on an invalid OpenAPI document
    paths = schema["paths"]
    assert {"/v1/infer", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/tenant"} <= set(paths)
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    body = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"images", "deadline"}
    assert {"401", "429"} <= set(paths["/v1/infer"]["post"]["responses"])


def test_forecast_points_fall_on_step_boundaries(tmp_path: Path) -> None:
    from carbonedge.engine.intensity import IntensityFeed

    feed = IntensityFeed(trace_spec(tmp_path), Clock(T0))
    start = T0 + timedelta(minutes=7)
    end = T0 + timedelta(hours=4)
    points = forecast(feed, "green", start, end, timedelta(minutes=30), forecaster="oracle")
    assert [t for t, _ in points][:3] == [
        start,
        T0 + timedelta(minutes=30),
        T0 + timedelta(hours=1),
    ]
    assert points[-1][0] == T0 + timedelta(hours=3, minutes=30)
    assert dict(points)[T0 + timedelta(hours=3)] == 100.0


def test_the_default_plan_uses_only_the_past(tmp_path: Path) -> None:
    """Three days of a daily cycle (dip to 100 at 03:00): submitted on day 3 at 00:10, the
    default forecaster (``ar``, which answers as ``daily`` on three days of history) plans
    the 03:00 dip from the past days; the trace's own future is the same, so the plan agrees
    with the oracle. After changing only the future (the third day's dip moved to 04:00), the
    plan is unchanged: it never saw it."""
    day = [400, 350, 300, 100, 300, 400, 450, 420]
    for moved in (False, True):
        folder = tmp_path / str(moved)
        folder.mkdir()
        lines = ["timestamp,zone,gco2_per_kwh"]
        for d in range(3):
            values = [400, 350, 300, 300, 100, 400, 450, 420] if moved and d == 2 else day
            for h in range(24):
                t = (T0 + timedelta(days=d, hours=h)).isoformat()
                lines += [f"{t},GREEN,{values[h] if h < 8 else 420}", f"{t},HIGH,{HIGH}"]
        (folder / "day.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        spec = trace_spec(folder)
        (folder / "day.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        clock = Clock(T0 + timedelta(days=2, minutes=10))
        with serve(folder, None, spec=spec, clock=clock) as app:
            deadline = T0 + timedelta(days=2, hours=6)
            status, _, job = submit(app, {"images": [b64(png())], "deadline": deadline.isoformat()})
        assert status == 202, job
        assert job["planned_on"] == "ar"
        assert job["node"] == "green"
        assert datetime.fromisoformat(job["planned_start"]) == T0 + timedelta(days=2, hours=3)


def test_nodes_show_the_intensity_the_next_decision_sees(tmp_path: Path) -> None:
    """/v1/nodes gives each node's intensity at the engine's clock now, with its source, not
    the value pushed at the last decision (grid time moves on without requests)."""
    clock = Clock(T0 + timedelta(minutes=10))
    with serve(tmp_path, None, spec=trace_spec(tmp_path), clock=clock) as app:
        clock.now = T0 + timedelta(hours=3, minutes=10)  # green: 400 -> 100, no decision since
        status, _, body = request(app, "GET", "/v1/nodes")
    green = {n["name"]: n for n in body["nodes"]}["green"]
    assert status == 200 and green["intensity_g_per_kwh"] == 100.0
    assert datetime.fromisoformat(green["intensity_at"]) == clock.now
