"""Budgets hold under concurrency, over real HTTP: a burst of 200 concurrent requests and a
burst of jobs against budgets of a few requests' carbon never pass them (reservations at
admission, settled with the measured charge: carbonedge.serve.tenants)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .test_jobs import b64, get, submit
from .test_tenants import G_HIGH, infer, png, request, serve, tenants_file

pytestmark = pytest.mark.timeout(180)


def _used(app: object, key: str) -> float:
    _, _, me = request(app, "GET", "/v1/tenant", headers={"Authorization": f"Bearer {key}"})  # type: ignore[arg-type]
    return float(me["tenant"]["used_gco2"])


BUDGET = 4.5 * G_HIGH  # the carbon of four and a half requests on high


def test_a_burst_of_200_requests_never_passes_the_budget(tmp_path: Path) -> None:
    tenants, (key,) = tenants_file(tmp_path, tiny=BUDGET)
    budget = BUDGET
    with serve(tmp_path, tenants) as app:
        assert infer(app, key)[0] == 200  # one answered task: the prediction is known
        with ThreadPoolExecutor(max_workers=200) as pool:
            answers = list(pool.map(lambda _: infer(app, key), range(200)))
        statuses = [a[0] for a in answers]
        used = _used(app, key)
        refusals = [a[2] for a in answers if a[0] == 429]
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 429, 503}
    assert len(refusals) >= 150
    assert all("budget" in r and r["budget"]["tenant"] == "tiny" for r in refusals)
    assert used <= budget  # every charge was at most its reservation
    assert used > budget - G_HIGH  # and the budget was used up to less than one request


def test_jobs_reserve_per_image_and_stop_keeping_their_results(tmp_path: Path) -> None:
    tenants, (key,) = tenants_file(tmp_path, jobber=BUDGET)
    budget = BUDGET
    with serve(tmp_path, tenants) as app:  # static intensities: jobs run at once
        assert infer(app, key)[0] == 200  # the prediction is known
        deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        body = {"images": [b64(png())] * 16, "deadline": deadline}
        ids = []
        for _ in range(2):
            status, _, job = submit(app, body, key)
            assert status == 202, job
            ids.append(job["id"])
        views = []
        for job_id in ids:
            end = time.monotonic() + 30
            while time.monotonic() < end:
                view = get(app, job_id, key)[1]
                if view["state"] not in ("scheduled", "running"):
                    break
                time.sleep(0.05)
            views.append(view)
        used = _used(app, key)
    assert budget - G_HIGH < used <= budget  # used up to less than one image, never passed
    done = sum(v["images_done"] for v in views)
    assert 1 <= done < 32
    stopped = [v for v in views if v["state"] == "stopped"]
    assert stopped and all("carbon budget" in v["error"] for v in stopped)
    for v in stopped:
        assert len(v["results"]) == v["images_done"]  # results so far are kept
    assert json.dumps(views)  # every view is an answer a client can read
