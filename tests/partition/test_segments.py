"""Segments: composition equals the model (toy and the three paper models), pickling, ONNX."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from carbonedge.models import MODEL_NAMES, build_model, count_macs  # noqa: E402
from carbonedge.partition import (  # noqa: E402
    PartitionError,
    analyze,
    build_segments,
    export_segments_onnx,
    plan_boundaries,
    unit_comm_bytes,
    unit_costs,
)

SMALL = (1, 3, 96, 96)  # keeps the paper models' tests fast; cut points do not depend on it


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _compose(segments: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        for segment in segments:
            x = segment(x)
    return x


def _toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 5),
    ).eval()  # fmt: skip


def test_toy_segments_compose_to_the_model() -> None:
    model = _toy()
    x = torch.randn(2, 3, 16, 16)
    for cuts in ([], [1], [2, 5], [1, 2, 3, 4, 5, 6]):
        segments = build_segments(model, cuts, input_shape=(2, 3, 16, 16))
        assert len(segments) == len(cuts) + 1
        assert (_compose(list(segments), x) - model(x)).abs().max().item() < 1e-6


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_paper_model_segments_equal_the_model(name: str) -> None:
    model = build_model(name)
    units = analyze(model, SMALL, repeats=1)
    assert sum(u.macs for u in units) == count_macs(model, SMALL)
    assert sum(u.parameters for u in units) == sum(p.numel() for p in model.parameters())
    plan = plan_boundaries(unit_costs(units, "macs"), [1.0, 0.6, 0.4], unit_comm_bytes(units))
    segments = build_segments(model, plan, input_shape=SMALL)
    assert [s.unit_names for s in segments] == [
        tuple(u.name for u in units[p.start : p.stop]) for p in plan.segments
    ]
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        expected = model(x)
    assert (_compose(list(segments), x) - expected).abs().max().item() < 1e-5
    # Every single cut point works, not only the planned ones.
    every = build_segments(model, list(range(1, len(units))), input_shape=None)
    assert (_compose(list(every), x) - expected).abs().max().item() < 1e-5


def test_segments_survive_torch_save_and_load() -> None:
    model = build_model("mobilenet_v2")
    segments = build_segments(model, [5, 15], input_shape=SMALL)
    x = torch.randn(1, *SMALL[1:])
    loaded = []
    for segment in segments:
        buffer = io.BytesIO()
        torch.save(segment, buffer)
        buffer.seek(0)
        loaded.append(torch.load(buffer, weights_only=False).eval())
    assert loaded[1].unit_names == segments[1].unit_names
    assert (_compose(loaded, x) - _compose(list(segments), x)).abs().max().item() == 0.0


def test_bad_boundaries_are_refused() -> None:
    model = _toy()
    for cuts in ([0], [3, 3], [7], [5, 2]):
        with pytest.raises(PartitionError, match=r"increasing cut positions in 1\.\.6"):
            build_segments(model, cuts, input_shape=None)


def _run_onnx(paths: list[Path], x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for path in paths:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = session.run(None, {"input": x})[0]
    return x


@pytest.mark.parametrize(
    ("make", "cuts", "shape"),
    [(_toy, [2, 5], (1, 3, 16, 16)), (lambda: build_model("mobilenet_v2"), [4, 12], SMALL)],
    ids=["toy", "mobilenet_v2"],
)
def test_onnx_segments_match_torch(make: object, cuts: list[int], shape: tuple[int, ...],
                                   tmp_path: Path) -> None:  # fmt: skip
    model = make()  # type: ignore[operator]
    segments = build_segments(model, cuts, input_shape=shape)
    paths = export_segments_onnx(segments, shape, tmp_path)
    assert [p.name for p in paths] == [f"segment_{i}.onnx" for i in range(len(cuts) + 1)]
    x = torch.randn(2, *shape[1:])  # batch 2: the batch dimension is dynamic
    got = _run_onnx(paths, x.numpy())
    expected = _compose(list(segments), x).numpy()
    assert np.abs(got - expected).max() < 1e-4
    # Exporting must leave the model (whose layers the segments share) in eval mode.
    assert not any(m.training for m in model.modules())
