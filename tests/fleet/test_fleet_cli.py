"""``carbonedge fleet show`` / ``check``: output, and errors on one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from carbonedge.cli.main import main
from carbonedge.fleet import FleetSpec, NodeHealth


def test_show_prints_the_default_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "show"]) == 0
    out = capsys.readouterr().out
    assert "node-green" in out and "380" in out and "2 cores in all" in out


def test_bad_fleet_file_exits_two_with_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text('[[nodes]]\nname = "a"\ncpu_quota = -0.5\n')
    assert main(["fleet", "show", "--fleet", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "carbonedge: error: fleet.toml: nodes[0].cpu_quota must be > 0, got -0.5"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_check_starts_measures_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "one.toml"
    fleet.write_text(
        '[[nodes]]\nname = "solo"\ncpu_quota = 0.5\nmemory_mb = 512\n'
        "intensity_g_per_kwh = 300\nidle_w = 1\nmax_w = 4\n"
    )
    args = [
        "fleet",
        "check",
        "--fleet",
        str(fleet),
        "--enforcement",
        "dilation",
        "--probe-s",
        "0.5",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "solo" in out and "dilation" in out and " up" in out


# -- --backend / --address and the lazy RayFleet export (no Ray start) -----------------------------


def test_check_rejects_options_of_the_other_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "check", "--backend", "ray", "--enforcement", "cgroup"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "carbonedge: error: --enforcement 'cgroup' is not available with --backend ray"
        " (auto = dilation, dilation or none)"
    )
    assert main(["fleet", "check", "--address", "auto"]) == 2
    assert "--address 'auto' is for --backend ray" in capsys.readouterr().err
    assert main(["fleet", "check", "--enforcement", "none"]) == 2
    assert "not available with --backend local" in capsys.readouterr().err


class _FakeRayFleet:
    """Stands in for RayFleet: records its arguments, reports every node unenforced."""

    made: ClassVar[list[dict[str, object]]] = []

    def __init__(self, spec: FleetSpec, **kwargs: object) -> None:
        self.spec = spec
        _FakeRayFleet.made.append(kwargs)

    def __enter__(self) -> _FakeRayFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def measure_speed(self, duration_s: float) -> dict[str, float]:
        return {n.name: n.cpu_quota for n in self.spec.nodes}

    def health(self) -> list[NodeHealth]:
        return [
            NodeHealth(n.name, True, "none", None, 200.0, n.memory_mb, False, 0, ())
            for n in self.spec.nodes
        ]


def test_check_ray_backend_passes_address_and_enforcement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import carbonedge.fleet

    monkeypatch.setattr(carbonedge.fleet, "RayFleet", _FakeRayFleet, raising=False)
    _FakeRayFleet.made.clear()
    args = ["fleet", "check", "--backend", "ray", "--address", "ray://head:10001"]
    assert main([*args, "--enforcement", "none", "--probe-s", "0.1"]) == 0
    assert main(["fleet", "check", "--backend", "ray", "--probe-s", "0.1"]) == 0
    assert _FakeRayFleet.made == [
        {"address": "ray://head:10001", "enforcement": "none"},
        {"address": None, "enforcement": "dilation"},  # auto = dilation on Ray
    ]
    out = capsys.readouterr().out
    assert "(ray backend)" in out
    green = next(line for line in out.splitlines() if line.startswith("node-green"))
    assert green.split() == ["node-green", "0.4", "0.400", "1.00", "none", "200", "512", "up"]
    assert "enforcement none = not enforced: the device is its own limit" in out


def test_ray_fleet_export_is_lazy_and_imports_no_ray() -> None:
    code = (
        "import sys, carbonedge.fleet as f, carbonedge.cli.fleet_cmd\n"
        "assert 'ray' not in sys.modules and 'carbonedge.fleet.ray_backend' not in sys.modules\n"
        "from carbonedge.fleet.ray_backend import RayFleet, RayTaskResult\n"
        "assert f.RayFleet is RayFleet and f.RayTaskResult is RayTaskResult\n"
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules\n"
        "try:\n    f.NoSuchThing\nexcept AttributeError as e:\n    print(e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "module 'carbonedge.fleet' has no attribute 'NoSuchThing'"
