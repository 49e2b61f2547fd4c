"""``carbonedge report``: one self-contained HTML file of a results folder.

The fast tests render a hand-made folder; the slow ones render the folder of a real (tiny)
``reproduce`` and open it in headless Chromium (the ``browser`` fixture, tests/conftest.py).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from carbonedge.accounting import ComponentEnergy
from carbonedge.carbon import EmissionsLedger, IntensityReading, task_row
from carbonedge.cli.main import main
from carbonedge.experiments import ExperimentParams, reproduce
from carbonedge.experiments.html_report import render_html_report, write_html_report
from carbonedge.experiments.outputs import FIG2, FIG3

IMG_SRC = re.compile(r'<img [^>]*src="([^"]*)"')


def small_folder(root: Path) -> Path:
    """A results-folder look-alike: report.md with two figures (one missing), a CSV, a PNG
    that report.md does not name, a ledger."""
    from datetime import UTC, datetime, timedelta

    folder = root / "abc123"
    folder.mkdir()
    Image.new("RGB", (40, 20), (46, 125, 50)).save(folder / "fig2_latency_vs_carbon.png")
    Image.new("RGB", (30, 30), (200, 60, 60)).save(folder / "extra.png")
    (folder / "report.md").write_text(
        "# CarbonEdge reproduction report\n\n"
        "Parameters: `{}`\n\n## Headline (measured)\n\n- **CE-Green**: +28% <script>x</script>\n\n"
        "## Table II — m\n\n| Configuration | Latency (ms) |\n|---|---|\n| Monolithic | 45.6 |\n\n"
        "![Fig. 2](fig2_latency_vs_carbon.png)\n\n![gone](fig9.png)\n\n![up](../outside.png)\n",
        encoding="utf-8",
    )
    (folder / "table2.csv").write_text("model,latency_ms\nm,45.6123456789\n", encoding="utf-8")
    (folder / "tables.txt").write_text("Table II\n<b>plain</b>\n", encoding="utf-8")
    (folder / "params.json").write_text('{"fleet_file": null}\n', encoding="utf-8")
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    with EmissionsLedger(folder / "ledger.sqlite") as ledger:
        for i, node in enumerate(("node-high", "node-green")):
            ledger.append(
                task_row(
                    task_id=f"t{i}",
                    run_id="r0",
                    node=node,
                    model="m",
                    runtime="torch",
                    started_at=t0,
                    finished_at=t0 + timedelta(seconds=1),
                    latency_ms=1000.0,
                    cpu_s=0.5,
                    energy=ComponentEnergy(1e-6),
                    intensity=IntensityReading(400.0, node, t0, "static (fleet spec)"),
                    pue=1.0,
                    energy_method="cpu=fake gpu=fake ram=fake",
                    attribution_method="cputime",
                )
            )
    return folder


def test_small_folder_renders_self_contained(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    (tmp_path / "outside.png").write_bytes((folder / "extra.png").read_bytes())
    text = render_html_report(folder)
    sources = IMG_SRC.findall(text)
    assert len(sources) == 2  # fig2 (named in report.md) and extra.png (not named)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # Missing figures and figures outside the folder are named, never linked.
    assert "[figure not in the results folder: fig9.png]" in text
    assert "[figure not in the results folder: ../outside.png]" in text
    assert "<script" not in text and "&lt;script&gt;" in text  # raw HTML in report.md escaped
    assert 'id="headline-measured"' in text and 'href="#table-ii-m"' in text
    assert "<code>table2.csv</code> (1 rows, 2 columns)" in text
    assert 'title="45.6123456789">45.6123<' in text
    assert "SCI = (E·I + M) / R" in text and "2 inferences" in text
    assert "missing" in text and "incomplete: no complete.json" in text
    assert "&lt;b&gt;plain&lt;/b&gt;" in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from a network


def test_cli_report_writes_the_file_and_refuses_a_bad_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = small_folder(tmp_path)
    assert main(["report", str(folder)]) == 0
    assert (folder / "report.html").is_file()
    assert "self-contained" in capsys.readouterr().out
    for bad, message in (
        (tmp_path / "nope", "no such results folder"),
        (tmp_path, "not a results folder of `carbonedge reproduce` (no report.md); give "
         "results/<digest>/"),
    ):  # fmt: skip
        assert main(["report", str(bad), "--out", str(tmp_path / "x.html")]) == 2
        assert capsys.readouterr().err == f"carbonedge: error: {bad}: {message}\n"
    assert not (tmp_path / "x.html").exists()


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a real, tiny ``reproduce`` (fake meter, real fleet and models)."""
    import torch

    torch.set_num_threads(1)
    params = ExperimentParams(
        models=("mobilenetv4_conv_small",),
        n_images=2,
        repeats=1,
        sweep_points=2,
        sweep_tasks=1,
        warmup_tasks=1,
        meter="fake",
    )
    return reproduce(params, tmp_path_factory.mktemp("results"), progress=False).folder


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reproduction_report_opens_in_chromium(
    results_folder: Path, tmp_path: Path, browser: Any
) -> None:
    before = sorted(p.name for p in results_folder.iterdir())
    html_path = write_html_report(results_folder, tmp_path / "report.html")
    assert sorted(p.name for p in results_folder.iterdir()) == before  # the folder is untouched
    text = html_path.read_text(encoding="utf-8")
    for heading in (
        "Headline (measured)",
        "Table II",
        "Table IV",
        "Table V",
        "SCI (ISO/IEC 21031)",
    ):
        assert heading in text
    for name in ("table2.csv", "table4.csv", "runs.csv", "emissions.csv", "sweep.csv"):
        assert f"<code>{name}</code>" in text
    sources = IMG_SRC.findall(text)
    assert len(sources) >= 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert FIG2 not in sources and FIG3 not in sources
    # The file stands alone: copied away from the folder it still shows every figure.
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.copy(html_path, alone)

    browser.open(alone)
    driver = browser.driver
    assert driver.title.startswith("CarbonEdge reproduction")
    widths = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
    )
    assert len(widths) == len(sources)
    assert all(complete and width > 0 for complete, width in widths), widths
    assert browser.console_errors() == []
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.stat().st_size > 10_000
    full = browser.screenshot(tmp_path / "report-full.png", full_page=True)
    keep = os.environ.get("CARBONEDGE_TEST_ARTEFACTS")  # e.g. a CI artefact folder
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for path in (shot, full, html_path):
            shutil.copy(path, Path(keep) / path.name)
