"""Node processes keep freed memory (``steady_allocator``): an inference does not page-fault its
activation buffers in again, so its CPU time is the model's, not the kernel's (docs/fleet.md).
Each case runs in a fresh interpreter: mallopt changes the process it runs in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_SCRIPT = """
import json, resource, sys
from carbonedge.fleet.worker import steady_allocator
note = steady_allocator() if sys.argv[1] == "steady" else "default"
import torch
torch.set_num_threads(1)
from carbonedge.models.registry import build_model
model, x = build_model("mobilenet_v2").eval(), torch.randn(1, 3, 224, 224)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"note": note, "faults_per_inference": (after - before) / 10}))
"""


def _faults(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_allocator_removes_page_faults_per_inference() -> None:
    steady = _faults("steady")
    assert steady["note"] == "allocator: steady"
    default = _faults("default")
    # glibc's default gives the activation buffers back after each inference (thousands of
    # faults here); the steady allocator reuses them.
    assert float(steady["faults_per_inference"]) < 50 < float(default["faults_per_inference"])
