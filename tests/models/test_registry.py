"""build_model / describe_model / count_macs: names, weights files, user models, MAC arithmetic."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from carbonedge.errors import CarbonEdgeError, ModelError
from carbonedge.models import MODEL_NAMES, ModelInfo, build_model, count_macs, describe_model


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_model_names_contract() -> None:
    assert MODEL_NAMES == ("mobilenet_v2", "efficientnet_b0", "mobilenetv4_conv_small")


def test_random_init_is_seeded_eval_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(99)
    before = torch.get_rng_state()
    a, b, c = (
        build_model("mobilenet_v2"),
        build_model("mobilenet_v2"),
        build_model("mobilenet_v2", seed=1),
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert not a.training and not any(m.training for m in a.modules())
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ModelError, match="resnet50") as info:
        build_model("resnet50")
    assert all(name in str(info.value) for name in MODEL_NAMES)
    assert isinstance(info.value, CarbonEdgeError)


def test_onnx_file_points_to_the_onnx_runtime(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not really onnx")
    with pytest.raises(ModelError, match=r"m\.onnx.*onnx runtime"):
        build_model(str(path))


def test_weights_round_trip_and_training_checkpoint_forms(
    tmp_path: Path, image: torch.Tensor
) -> None:
    source = build_model("mobilenetv4_conv_small", seed=3)
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "ckpt.pth"
    torch.save(source.state_dict(), plain)
    torch.save(
        {"epoch": 5, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
        wrapped,
    )
    with torch.no_grad():
        expected = source(image)
        for path in (plain, wrapped):
            model = build_model("mobilenetv4_conv_small", weights=path)  # seed 0 init, then load
            assert not model.training
            torch.testing.assert_close(model(image), expected, atol=0.0, rtol=0.0)
    assert describe_model("mobilenetv4_conv_small", weights=plain).weights_source == str(plain)


def test_weights_of_another_model_name_first_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "v2.pth"
    torch.save(build_model("mobilenet_v2").state_dict(), path)
    with pytest.raises(ModelError) as info:
        build_model("efficientnet_b0", weights=path)
    message = str(info.value)
    assert str(path) in message
    assert "missing keys" in message and "unexpected keys" in message
    assert "features.1.0.block.0.0.weight" in message  # first missing EfficientNet key


def test_shape_mismatch_is_reported(tmp_path: Path) -> None:
    state = build_model("mobilenet_v2").state_dict()
    state["classifier.1.weight"] = torch.zeros(10, 1280)
    state["classifier.1.bias"] = torch.zeros(10)
    path = tmp_path / "ten_classes.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"2 shape mismatches.*classifier\.1\.weight \(10, 1280\)"):
        build_model("mobilenet_v2", weights=path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (None, "weights file not found"),
        (b"this is not a checkpoint", "not a readable PyTorch state_dict"),
        ({"weight": [1, 2, 3]}, "is not a tensor"),
        ([torch.zeros(1)], "expected a state_dict"),
    ],
)
def test_bad_weights_files(tmp_path: Path, content: object, pattern: str) -> None:
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ModelError, match=pattern) as info:
        build_model("mobilenet_v2", weights=path)
    assert str(path) in str(info.value)


def test_torchscript_user_model(tmp_path: Path, image: torch.Tensor) -> None:
    eager = build_model("mobilenet_v2", seed=4)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(eager, image), str(path))
    loaded = build_model(str(path))
    assert isinstance(loaded, torch.jit.ScriptModule) and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(image), eager(image))
    info = describe_model(str(path))
    assert info == ModelInfo(str(path), 3_504_872, None, str(path))
    with pytest.raises(ModelError, match="TorchScript model, not a state_dict"):
        build_model("mobilenet_v2", weights=path)
    with pytest.raises(ModelError, match="carries its weights"):
        build_model(str(path), weights=path)


def test_state_dict_file_as_model_name_is_told_to_use_weights(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(build_model("mobilenet_v2").state_dict(), path)
    with pytest.raises(ModelError, match=r"not a TorchScript model.*--weights"):
        build_model(str(path))


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "ce_user_models_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def tiny():
                return nn.Sequential(
                    nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(4, 10),
                )

            def not_a_module():
                return 42

            def broken():
                raise ValueError("boom")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ce_user_models_pkg.nets"


def test_module_callable_user_model(user_package: str, tmp_path: Path) -> None:
    model = build_model(f"{user_package}:tiny")
    assert isinstance(model, nn.Sequential) and not model.training
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 10)
    info = describe_model(f"{user_package}:tiny")
    # conv: 4 * 112 * 112 outputs x 3 * 3 * 3 each; linear: 10 x 4.
    assert info.macs == 4 * 112 * 112 * 27 + 40
    assert info.parameters == 4 * 27 + 4 + 40 + 10
    path = tmp_path / "tiny.pth"
    source = build_model(f"{user_package}:tiny")
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(0.5)
    torch.save(source.state_dict(), path)
    reloaded = build_model(f"{user_package}:tiny", weights=path)
    assert _same_weights(reloaded, source)


@pytest.mark.parametrize(
    ("suffix", "pattern"),
    [
        (":not_a_module", "returned int, not a torch.nn.Module"),
        (":broken", r"calling broken\(\) failed: ValueError: boom"),
        (":missing", "has no callable 'missing'"),
    ],
)
def test_module_callable_errors(user_package: str, suffix: str, pattern: str) -> None:
    with pytest.raises(ModelError, match=pattern):
        build_model(user_package + suffix)


def test_module_callable_missing_module() -> None:
    with pytest.raises(ModelError, match=r"cannot import module 'no_such_pkg_ce\.sub'"):
        build_model("no_such_pkg_ce.sub:make")


def test_describe_model_reports_random_seed() -> None:
    info = describe_model("mobilenet_v2", seed=5)
    assert info == ModelInfo("mobilenet_v2", 3_504_872, 300_774_272, "random (seed 5)")


def test_count_macs_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)  # 32x32 -> 16x16
    assert count_macs(conv, (1, 3, 32, 32)) == 8 * 16 * 16 * 3 * 3 * 3
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # one input channel per output channel
    assert count_macs(depthwise, (1, 8, 16, 16)) == 8 * 16 * 16 * 1 * 9
    grouped = nn.Conv2d(8, 4, (1, 3), padding=(0, 1), groups=2)
    assert count_macs(grouped, (1, 8, 5, 5)) == 4 * 5 * 5 * 4 * 3
    linear = nn.Linear(10, 5)
    assert count_macs(linear, (4, 10)) == 4 * 5 * 10  # scales with batch size
    stack = nn.Sequential(conv, nn.BatchNorm2d(8), nn.ReLU(), depthwise)
    assert count_macs(stack, (2, 3, 32, 32)) == 2 * (8 * 16 * 16 * 27 + 8 * 16 * 16 * 9)


def test_count_macs_restores_mode_and_leaves_bn_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, (1, 3, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_count_macs_errors() -> None:
    with pytest.raises(ModelError, match=r"input shape \(1, 5, 8, 8\)"):
        count_macs(nn.Conv2d(3, 4, 1), (1, 5, 8, 8))
    scripted = torch.jit.script(nn.Conv2d(3, 4, 1))
    with pytest.raises(ModelError, match="TorchScript"):
        count_macs(scripted)


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, carbonedge.models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
