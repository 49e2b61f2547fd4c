"""``carbonedge models`` and ``carbonedge infer``: output, JSON, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from carbonedge.cli.main import main
from carbonedge.models.onnx_export import export_onnx
from carbonedge.models.registry import MODEL_NAMES

torch.set_num_threads(1)
EXPECTED_PARAMETERS = {
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "mobilenetv4_conv_small": 3_774_024,
}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ONNX exports must not land in the home folder.
    monkeypatch.setenv("CARBONEDGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (320, 240), (200, 40, 40)).save(folder / "red.jpg")
    Image.new("L", (240, 320), 90).save(folder / "sub" / "grey.png")
    Image.new("RGBA", (256, 256), (0, 90, 200, 128)).save(folder / "sub" / "blue.PNG")
    return folder


def _assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("carbonedge: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_models_json_lists_paper_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(MODEL_NAMES)
    assert {r["name"]: r["parameters"] for r in rows} == EXPECTED_PARAMETERS
    assert all(100e6 < r["macs"] < 1e9 for r in rows)


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "MACs" in out
    assert "3,504,872" in out and "5,288,548" in out and "3,774,024" in out


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_infer_json_on_a_folder(
    runtime: str, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["infer", "--model", "mobilenetv4_conv_small", "--images", str(image_folder)]
    assert main([*argv, "--runtime", runtime, "--json", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    summary = report["summary"]
    assert summary["runtime"] == runtime and summary["images"] == 3
    assert summary["weights"] == "random weights (seed 0): predictions are meaningless"
    assert 0 < summary["median_ms"] <= summary["p90_ms"]
    assert {Path(p["path"]).name for p in report["predictions"]} == {
        "red.jpg",
        "grey.png",
        "blue.PNG",
    }
    for prediction in report["predictions"]:
        assert len(prediction["classes"]) == 5 and len(set(prediction["classes"])) == 5
        assert all(0 <= c < 1000 for c in prediction["classes"])
        probabilities = prediction["probabilities"]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-9
        assert prediction["latency_ms"] > 0


def test_infer_text_default_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", "--model", "mobilenet_v2", "--n", "2", "--model-seed", "4"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 4  # two images, the folder, the summary
    assert "top-5" in out[0] and " ms " in out[0]
    assert out[-1].startswith("2 images, mobilenet_v2 on torch (1 thread): median ")
    assert "p90" in out[-1]
    assert out[-1].endswith("random weights (seed 4): predictions are meaningless")


def test_infer_runs_a_user_onnx_file(
    tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 7)
    ).eval()
    onnx_file, _ = export_onnx(model, tmp_path)
    argv = ["infer", "--model", str(onnx_file), "--images", str(image_folder), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["runtime"] == "onnx"
    assert report["summary"]["weights"].startswith("weights from the ONNX file")
    assert len(report["predictions"]) == 3 and len(report["predictions"][0]["classes"]) == 5


def test_skip_bad_reports_corrupt_images(
    image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = image_folder / "sub" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    argv = ["infer", "--model", "mobilenetv4_conv_small", "--images", str(image_folder)]
    assert main(argv) == 2
    _assert_one_line_error(capsys.readouterr().err, str(bad))
    assert main([*argv, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert f"skipped {bad}" in out
    assert out.strip().splitlines()[-1].startswith("3 images")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--model", "resnet9000"], "resnet9000"),
        (["--model", "mobilenet_v2", "--images", "/no/such/folder"], "/no/such/folder"),
        (["--model", "mobilenet_v2", "--weights", "/no/such.pth"], "/no/such.pth"),
        (["--model", "mobilenet_v2", "--threads", "0"], "--threads"),
        (["--model", "mobilenet_v2", "--n", "0"], "--n"),
        (["--model", "/no/such/model.onnx"], "/no/such/model.onnx"),
        (["--model", "/no/such/model.onnx", "--runtime", "torch"], "/no/such/model.onnx"),
    ],
)
def test_infer_bad_input_is_one_line_exit_two(
    extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["infer", *extra]) == 2
    _assert_one_line_error(capsys.readouterr().err, fragment)


def test_real_process_bad_model_exits_two_without_traceback(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "carbonedge"
    assert command.exists(), f"{command} is not installed (make setup)"
    result = subprocess.run(
        [str(command), "infer", "--model", "nosuchnet", "--images", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    _assert_one_line_error(result.stderr, "unknown model 'nosuchnet'")
