"""Our three CNNs against reference data derived from torchvision and timm.

``tests/models/data/<model>.txt`` and ``<model>_logits.json`` were written by
``tests/models/data/make_reference.py`` from torchvision 0.28 / timm 1.0.31 (not from our code).
The fill formula and the input come from that same file, which needs only torch.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from carbonedge.models import MODEL_NAMES, build_model, count_macs

DATA_DIR = Path(__file__).resolve().parent / "data"

EXPECTED_PARAMETERS = {
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "mobilenetv4_conv_small": 3_774_024,
}
# Published figures (torchvision docs: 0.30 and 0.39 GFLOPS, i.e. GMACs; timm: 0.19 GMACs).
PUBLISHED_GMACS = {"mobilenet_v2": 0.30, "efficientnet_b0": 0.39, "mobilenetv4_conv_small": 0.19}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", DATA_DIR / "make_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_entries(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    entries = []
    for line in (DATA_DIR / f"{name}.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        entries.append((key, dims, dtype))
    return entries


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_is_exact(name: str) -> None:
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMETERS[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_names_shapes_and_dtypes_match_reference(name: str) -> None:
    state = build_model(name).state_dict()
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    reference = _reference_entries(name)
    assert len(reference) > 250  # the lists are whole state_dicts, not samples
    assert {k for k, _, _ in ours} == {k for k, _, _ in reference}
    assert sorted(ours) == sorted(reference)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_match_reference_library(name: str, reference: ModuleType) -> None:
    expected = json.loads((DATA_DIR / f"{name}_logits.json").read_text())
    model = build_model(name)
    model.load_state_dict(reference.fill_deterministic(model.state_dict()), strict=True)
    with torch.no_grad():
        logits = model(reference.reference_input())[0].to(torch.float64)
    assert logits.numel() == expected["num_classes"]
    first = torch.tensor(expected["first_logits"], dtype=torch.float64)
    torch.testing.assert_close(logits[: first.numel()], first, atol=1e-4, rtol=1e-4)
    assert float(logits.sum()) == pytest.approx(expected["sum"], abs=1e-3)
    assert float(logits.abs().sum()) == pytest.approx(expected["abs_sum"], rel=1e-5)
    # The reference's top class is ours too, to the 1e-4 allowed per logit above: the two top
    # logits can be closer than that (mobilenet_v2's: 6e-5), and float32 on another CPU (other
    # kernels, other summation order) may then swap them.
    assert float(logits[expected["argmax"]]) >= float(logits.max()) - 1e-4


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_macs_near_published_figure(name: str) -> None:
    gmacs = count_macs(build_model(name), (1, 3, 224, 224)) / 1e9
    assert gmacs == pytest.approx(PUBLISHED_GMACS[name], abs=0.006)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_top_level_is_cuttable_and_runs_as_pieces(name: str) -> None:
    """The partitioner cuts ``features``/``blocks``; running the pieces gives the same logits."""
    model = build_model(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(x)
        if name == "mobilenetv4_conv_small":
            h = model.bn1(model.conv_stem(x))
            for stage in model.blocks:
                h = stage(h)
            h = model.flatten(model.norm_head(model.conv_head(model.global_pool(h))))
            pieces = model.classifier(h)
        else:
            h = model.features(x)
            pieces = model.classifier(
                torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1)
            )
    assert whole.shape == (2, 1000)
    torch.testing.assert_close(pieces, whole)


def test_train_mode_stochastic_parts_do_not_touch_eval() -> None:
    """Dropout and stochastic depth act only in train mode; eval output is deterministic."""
    model = build_model("efficientnet_b0")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first, second = model(x), model(x)
        model.train()
        torch.manual_seed(0)
        trained = model(x)
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, trained)
