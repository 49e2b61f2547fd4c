"""PyTorch eager and ONNX Runtime behind one interface: same logits, ONNX cache, user files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from carbonedge.data import load_images
from carbonedge.data.preprocess import normalize_pixels
from carbonedge.errors import ConfigError, ModelError
from carbonedge.models.onnx_export import export_onnx, model_key
from carbonedge.models.registry import MODEL_NAMES, build_model
from carbonedge.models.runtime import OnnxRuntime, Runtime, TorchRuntime, make_runtime

torch.set_num_threads(1)
TOLERANCE = 1e-4


class SmallNet(nn.Module):
    """A small CNN with the layer kinds of the paper's models (depthwise conv, BN, SiLU, SE)."""

    def __init__(self, classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=4, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        self.depthwise = nn.Conv2d(width, width, 3, stride=2, padding=1, groups=width)
        self.gate = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.silu(self.stem(x))  # (B, C, 56, 56)
        x = nn.functional.relu6(self.depthwise(x))  # (B, C, 28, 28)
        pooled = x.mean(dim=(2, 3))  # (B, C)
        return self.head(pooled * torch.sigmoid(self.gate(pooled)))  # (B, classes)


def _small_net(seed: int = 0, **kwargs: int) -> SmallNet:
    torch.manual_seed(seed)
    model = SmallNet(**kwargs)
    with torch.no_grad():
        bn = model.stem[1]
        assert isinstance(bn, nn.BatchNorm2d)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _calibrate(model: nn.Module, batch: np.ndarray) -> nn.Module:
    """Give a randomly initialised CNN BatchNorm statistics from real images, as training would.

    With torchvision-style random init, MobileNetV2's logits are ~1e-9 and any two runtimes
    agree trivially; calibrated, logits are O(1) and the 1e-4 comparison means something.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch.copy()))
    return model.eval()


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return load_images(None, 4, seed=0).tensors  # (4, 3, 224, 224), read-only


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def test_small_model_same_logits_both_runtimes(tmp_path: Path, photos: np.ndarray) -> None:
    model = _small_net()
    eager = make_runtime("torch", model, threads=1)
    onnx = make_runtime("onnx", model, threads=1, cache_dir=tmp_path)
    assert isinstance(eager, TorchRuntime) and isinstance(onnx, OnnxRuntime)
    assert isinstance(eager, Runtime) and isinstance(onnx, Runtime)
    assert (eager.name, onnx.name) == ("torch", "onnx")
    for batch in (photos[:1], photos):  # batch 1 and a larger batch: the batch axis is dynamic
        expected = eager.run(batch)
        got = onnx.run(batch)
        assert got.shape == expected.shape == (len(batch), 10)
        assert got.dtype == expected.dtype == np.float32
        assert float(np.abs(expected).max()) > 0.05  # logits that can actually disagree
        assert _max_diff(got, expected) < TOLERANCE


def test_onnx_export_is_cached_by_structure_and_weights(tmp_path: Path) -> None:
    model = _small_net(seed=0)
    first = make_runtime("onnx", model, cache_dir=tmp_path)
    again = make_runtime("onnx", _small_net(seed=0), cache_dir=tmp_path)
    assert isinstance(first, OnnxRuntime) and isinstance(again, OnnxRuntime)
    assert first.exported and not again.exported
    assert first.model_path == again.model_path
    assert first.model_path.parent == tmp_path / "onnx"

    other_weights = _small_net(seed=1)
    other_structure = _small_net(seed=0, width=16)
    changed_buffer = _small_net(seed=0)
    bn = changed_buffer.stem[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_var is not None
    with torch.no_grad():
        bn.running_var.add_(1e-3)
    keys = {model_key(m) for m in (model, other_weights, other_structure, changed_buffer)}
    assert len(keys) == 4
    assert model_key(model) != model_key(model, (1, 3, 160, 160))
    path_b, exported_b = export_onnx(other_weights, tmp_path)
    assert exported_b and path_b != first.model_path
    # Atomic writes leave no temporary files behind.
    assert sorted(p.suffix for p in (tmp_path / "onnx").iterdir()) == [".onnx", ".onnx"]


def test_default_cache_dir_comes_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONEDGE_CACHE", str(tmp_path / "cache"))
    runtime = make_runtime("onnx", _small_net())
    assert isinstance(runtime, OnnxRuntime)
    assert runtime.model_path.parent == tmp_path / "cache" / "onnx"


def test_user_onnx_file_runs_directly(tmp_path: Path, photos: np.ndarray) -> None:
    model = _small_net()
    exported, _ = export_onnx(model, tmp_path)
    user_file = tmp_path / "user model.ONNX"
    user_file.write_bytes(exported.read_bytes())
    runtime = make_runtime("onnx", user_file, threads=2)
    assert isinstance(runtime, OnnxRuntime) and runtime.model_path == user_file
    assert not runtime.exported
    expected = TorchRuntime(model).run(photos)
    assert _max_diff(runtime.run(photos), expected) < TOLERANCE
    assert _max_diff(make_runtime("onnx", str(user_file)).run(photos), expected) < TOLERANCE


def test_bad_onnx_inputs_raise_model_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ModelError, match=re.escape(str(missing))):
        make_runtime("onnx", missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match=re.escape(f"cannot load ONNX model {corrupt}")):
        make_runtime("onnx", corrupt)
    with pytest.raises(ModelError, match="onnx runtime"):
        make_runtime("torch", corrupt)


def test_bad_kind_and_threads_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="tensorrt"):
        make_runtime("tensorrt", _small_net())
    with pytest.raises(ConfigError, match="threads"):
        make_runtime("torch", _small_net(), threads=0)


def test_unknown_model_name_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not_a_model"):
        make_runtime("torch", "not_a_model")


def test_torch_runtime_restores_its_thread_count(photos: np.ndarray) -> None:
    runtime = TorchRuntime(_small_net(), threads=1)
    torch.set_num_threads(2)
    try:
        runtime.run(photos[:1])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_runtimes_accept_float64_and_non_contiguous_batches(
    tmp_path: Path, photos: np.ndarray
) -> None:
    model = _small_net()
    reference = TorchRuntime(model).run(photos)
    awkward = np.asfortranarray(photos.astype(np.float64))
    for runtime in (TorchRuntime(model), make_runtime("onnx", model, cache_dir=tmp_path)):
        assert _max_diff(runtime.run(awkward), reference) < TOLERANCE


def test_runtimes_normalise_uint8_crops_like_the_reference_transform(tmp_path: Path) -> None:
    # The server sends 8-bit crops (B, 224, 224, 3); a runtime must see exactly the float
    # input that preprocess() gives for the same crop.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    floats = np.stack([normalize_pixels(p) for p in pixels])  # preprocess's last step
    model = _small_net()
    for runtime in (TorchRuntime(model), make_runtime("onnx", model, cache_dir=tmp_path)):
        expected = runtime.run(floats)
        assert float(np.abs(expected).max()) > 0.05
        assert _max_diff(runtime.run(pixels), expected) < TOLERANCE
        assert _max_diff(runtime.run(pixels[1:]), expected[1:]) < TOLERANCE


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_paper_models_same_logits_both_runtimes(
    name: str, photos: np.ndarray, onnx_cache: Path
) -> None:
    model = _calibrate(build_model(name, seed=0), photos)
    eager = make_runtime("torch", model)
    onnx = make_runtime("onnx", model, cache_dir=onnx_cache)
    expected = eager.run(photos)
    assert expected.shape == (4, 1000)
    assert float(np.abs(expected).max()) > 0.1
    assert _max_diff(onnx.run(photos), expected) < TOLERANCE
    assert _max_diff(onnx.run(photos[2:3]), expected[2:3]) < TOLERANCE
    assert isinstance(onnx, OnnxRuntime)
    assert os.path.getsize(onnx.model_path) > 10_000_000  # float32 weights are embedded


def test_failed_export_is_a_model_error_and_leaves_no_file(tmp_path: Path) -> None:
    wrong_input = nn.Linear(10, 2).eval()  # cannot take a (1, 3, 224, 224) image
    with pytest.raises(ModelError, match="cannot export Linear to ONNX"):
        make_runtime("onnx", wrong_input, cache_dir=tmp_path)
    assert list((tmp_path / "onnx").iterdir()) == []
