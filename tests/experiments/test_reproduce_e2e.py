"""A tiny reproduction end to end on the real local fleet (real processes, real models).

The meter is the FakeMeter (deterministic power, no CodeCarbon start-up); everything else is
real: the fleet's node processes with their CPU quotas, the models, the scheduler, the
partitioner's AMP4EC pipeline, the attribution and the ledger.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from carbonedge.carbon.emissions_csv import COLUMNS as EMISSIONS_COLUMNS
from carbonedge.experiments import ExperimentParams, config_labels, reproduce
from carbonedge.experiments.outputs import FIG2, FIG3, MARKER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentParams, Path, Path]:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("results")
    params = ExperimentParams(
        models=("mobilenetv4_conv_small",),
        n_images=3,
        repeats=1,
        sweep_points=2,
        sweep_tasks=2,
        warmup_tasks=1,
        meter="fake",
    )
    outcome = reproduce(params, out, progress=False)
    assert not outcome.reused
    return params, out, outcome.folder


def test_folder_has_every_output(tiny: tuple[ExperimentParams, Path, Path]) -> None:
    params, _, folder = tiny
    assert folder.name == params.digest()
    for name in (
        "params.json", "result.json", "report.md", "tables.txt", "ledger.sqlite", "ledger.csv",
        "emissions.csv", MARKER, FIG2, FIG3, "report.html",
        *(f"{t}.{ext}" for t in ("table2", "table4", "table5", "overhead", "sweep", "runs")
          for ext in ("csv", "json")),
    ):  # fmt: skip
        assert (folder / name).is_file(), name
    for fig in (FIG2, FIG3):
        data = (folder / fig).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert json.loads((folder / "params.json").read_text())["n_images"] == 3
    html = (folder / "report.html").read_text()
    assert 'badge">complete' in html and "SCI = (E·I + M) / R" in html


def test_emissions_csv_is_codecarbon_compatible_without_warmups(
    tiny: tuple[ExperimentParams, Path, Path],
) -> None:
    """One CodeCarbon-compatible line per measured run (warm-ups left out), with its SCI."""
    _, _, folder = tiny
    with (folder / "emissions.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == EMISSIONS_COLUMNS
        lines = list(reader)
    gco2: dict[str, float] = defaultdict(float)
    with (folder / "ledger.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            gco2[row["run_id"]] += float(row["gco2"])
    measured = {run_id for run_id in gco2 if not run_id.endswith("/warmup")}
    assert [line["run_id"] for line in lines] == [r for r in gco2 if r in measured]
    result = json.loads((folder / "result.json").read_text())
    tasks = {r["run_id"]: r["n_tasks"] for r in result["runs"]}
    assert set(tasks) < measured  # the sweep's points are runs of the ledger too
    for line in lines:
        assert line["experiment_id"] == folder.name and line["python_version"]
        assert line["energy_method"] and line["attribution_method"]
        assert float(line["emissions"]) * 1000.0 == pytest.approx(gco2[line["run_id"]], rel=1e-9)
        assert line["embodied_label"] == "missing"  # the paper's fleet has no footprints
        n = int(line["inferences"])
        assert n == tasks.get(line["run_id"], n)  # a pipelined inference counts once
        assert float(line["sci_g_per_inference"]) == pytest.approx(
            gco2[line["run_id"]] / n, rel=1e-9
        )


def test_runs_are_internally_consistent(tiny: tuple[ExperimentParams, Path, Path]) -> None:
    _, _, folder = tiny
    result = json.loads((folder / "result.json").read_text())
    runs = result["runs"]
    assert {r["config"] for r in runs} == set(config_labels())
    intensity = {n["name"]: n["intensity_g_per_kwh"] for n in result["environment"]["nodes"]}
    pue = {n["name"]: n["pue"] for n in result["environment"]["nodes"]}
    for r in runs:
        assert sum(r["usage_pct"].values()) == pytest.approx(100.0)
        # Eq. 2 per node, summed: carbon = sum E_node x I_node x PUE_node.
        expected = sum(e * intensity[n] * pue[n] for n, e in r["node_energy_kwh"].items())
        assert r["carbon_g"] == pytest.approx(expected, rel=1e-9)
        assert r["gco2_per_inf"] == pytest.approx(r["carbon_g"] / r["n_tasks"])
        assert r["latency_ms"] > 0 and r["throughput_rps"] > 0
        assert r["window_s"] > 0 and r["window_carbon_g"] > 0
        scheduled = r["config"].startswith("CE-")
        assert (len(r["overhead_us"]) >= r["n_tasks"]) == scheduled
    # One rate pooled over the calibration windows (3 nodes x 3 windows), charged to every
    # task; never more than the host measured.
    assert result["charge_method"] == "calibrated-cputime"
    assert result["rate"]["windows"] == 9 and result["rate"]["kwh_per_s"] > 0
    charged = sum(r["energy_kwh"] for r in runs) + sum(p["energy_kwh"] for p in result["sweep"])
    host = sum(r["host_energy_kwh"] for r in runs) + sum(
        p["host_energy_kwh"] for p in result["sweep"]
    )
    assert 0 < charged <= host
    slo = next(r for r in runs if r["config"] == "CE-SLO (ours)")
    assert slo["slo_ms"] > 0 and 0 <= slo["slo_met_pct"] <= 100
    mono = next(r for r in runs if r["config"] == "Monolithic")
    assert mono["usage_pct"]["node-medium"] == 100.0
    amp = next(r for r in runs if r["config"] == "AMP4EC")
    assert all(v == pytest.approx(100 / 3) for v in amp["usage_pct"].values())


def test_ledger_has_every_task_once_charged_by_the_engine(
    tiny: tuple[ExperimentParams, Path, Path],
) -> None:
    """The engine streamed one row per task (warm-ups too, under ``<run>/warmup``), each
    charged when it finished: Eq. 2 per row; the power-profile prior during the calibration,
    the rate pooled over the calibration windows after it, and the row says which."""
    _, _, folder = tiny
    db = sqlite3.connect(folder / "ledger.sqlite")
    rows = db.execute(
        "SELECT run_id, task_id, cpu_energy_kwh + gpu_energy_kwh + ram_energy_kwh, "
        "intensity_g_per_kwh, pue, gco2, energy_method, attribution_method FROM tasks"
    ).fetchall()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert rows and version == 2
    by_run: dict[str, int] = defaultdict(int)
    labels = set()
    for run_id, _task, e, i, p, g, method, att in rows:
        assert g == pytest.approx(e * i * p, rel=1e-9, abs=1e-18) and e > 0
        labels.add((method, att))
        by_run[run_id] += 1
    assert labels == {
        ("cpu=fake gpu=fake ram=fake", "calibrated-cputime"),
        ("cpu=power-profile gpu=none ram=none", "power-profile"),
    }
    result = json.loads((folder / "result.json").read_text())
    for r in result["runs"]:
        stages = 3 if r["config"] == "AMP4EC" else 1
        assert by_run[r["run_id"]] == r["n_tasks"] * stages
        assert by_run[r["run_id"] + "/warmup"] > 0
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    with (folder / "ledger.csv").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == len(rows)


def test_ledger_runs_emissions_and_table_ii_agree_to_the_last_digit(
    tiny: tuple[ExperimentParams, Path, Path],
) -> None:
    """A run's figures are the sums of its ledger rows, charged once: the ledger, runs.csv,
    result.json, emissions.csv and Table II give the same gCO2 for every run, bit for bit."""
    import math

    _, _, folder = tiny
    db = sqlite3.connect(folder / "ledger.sqlite")
    rows = db.execute("SELECT run_id, gco2 FROM tasks").fetchall()
    db.close()
    ledger: dict[str, list[float]] = defaultdict(list)
    for run_id, g in rows:
        ledger[run_id].append(g)
    result = json.loads((folder / "result.json").read_text())
    with (folder / "runs.csv").open(newline="") as f:
        runs_csv = {r["run_id"]: r for r in csv.DictReader(f)}
    with (folder / "emissions.csv").open(newline="") as f:
        emissions = {r["run_id"]: float(r["emissions"]) for r in csv.DictReader(f)}
    with (folder / "table2.csv").open(newline="") as f:
        table2 = {r["configuration"]: r for r in csv.DictReader(f)}
    records = [*result["runs"], *result["sweep"]]
    assert records
    for r in records:
        g = math.fsum(ledger[r["run_id"]])
        assert g > 0 and r["carbon_g"] == g, r["run_id"]
        assert emissions[r["run_id"]] == g / 1000.0, r["run_id"]
    for r in result["runs"]:
        assert float(runs_csv[r["run_id"]]["carbon_g"]) == r["carbon_g"]
        # one repeat: Table II's mean is that run's own gCO2 per inference
        assert float(table2[r["config"]]["gco2_per_inf"]) == r["carbon_g"] / r["n_tasks"]


def test_report_names_methods_and_paper_numbers(tiny: tuple[ExperimentParams, Path, Path]) -> None:
    _, _, folder = tiny
    text = (folder / "report.md").read_text()
    for needle in ("FAKE", "cputime", "cgroup", "random (seed 0)", "skimage", "22.9", "28.3",
                   "**Charge**", "Static energy", "CE-SLO (ours)"):  # fmt: skip
        assert needle in text, needle


def test_second_run_reuses_and_overwrite_recomputes(
    tiny: tuple[ExperimentParams, Path, Path],
) -> None:
    params, out, folder = tiny
    stamp = (folder / MARKER).read_text()

    def boom() -> object:
        raise AssertionError("a reused folder must not measure again")

    again = reproduce(params, out, meter_factory=boom, progress=False)  # type: ignore[arg-type]
    assert again.reused and again.folder == folder and "Table II" in again.text
    assert (folder / MARKER).read_text() == stamp
    fresh = reproduce(params, out, overwrite=True, progress=False)
    assert not fresh.reused and fresh.result is not None
    assert (folder / MARKER).read_text() != stamp
