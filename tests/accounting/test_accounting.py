"""The accounting package: pure, the only place that converts energy units, and its rates and
totals by hand."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

from carbonedge.accounting import (
    METHOD_CALIBRATED,
    ComponentEnergy,
    PooledRate,
    RateSnapshot,
    charge_task,
    totals,
)
from carbonedge.accounting import units as u

SRC = Path(__file__).resolve().parents[2] / "src" / "carbonedge"


def test_units() -> None:
    assert u.kwh(3_600_000.0) == 1.0 and u.joules(1.0) == 3_600_000.0
    assert u.millijoules(1.0) == 3.6e9 and u.kwh_of_power(1000.0, 3600.0) == 1.0
    assert u.watts(1.0, 3600.0) == 1000.0 and u.watts(1.0, 0.0) == 0.0
    assert u.J_PER_WH * 1000.0 == u.J_PER_KWH and u.W_MS_PER_WH == u.J_PER_WH * u.MS_PER_S


def test_no_energy_unit_literal_outside_accounting() -> None:
    """No number 3.6e6 (J/kWh, W·ms/Wh) or 3.6e9 (mJ/kWh) in code outside the package
    (docstrings may show the formulas)."""
    found = []
    for path in SRC.rglob("*.py"):
        if "accounting" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in (3.6e6, 3.6e9):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, found


def test_package_is_pure() -> None:
    """Importing it loads no torch, codecarbon, psutil, numpy or HTTP client."""
    code = (
        "import sys, carbonedge.accounting as a; "
        "bad = {'torch', 'codecarbon', 'psutil', 'numpy', 'httpx', 'urllib.request', 'ray'}; "
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pooled_rate_by_hand() -> None:
    # window A: 3e-6 kWh attributed over 1.0 s of task CPU; B: 1e-6 kWh over 2.0 s
    rate = PooledRate.pool(
        [(ComponentEnergy(3e-6, 0.0, 1e-7), 1.0), (ComponentEnergy(1e-6, 0.0, 2e-7), 2.0)]
    )
    assert rate.windows == 2 and rate.cpu_s == 3.0
    assert rate.cpu_kwh_per_s == pytest.approx(4e-6 / 3.0)
    assert rate.ram_kwh_per_s == pytest.approx(3e-7 / 3.0)
    assert rate.power_w == pytest.approx((4e-6 + 3e-7) / 3.0 * 3.6e6)
    assert PooledRate.pool([]).kwh_per_s == 0.0


def test_calibrated_snapshot_charges_every_node_the_same_rate() -> None:
    from datetime import UTC, datetime

    from carbonedge.carbon import IntensityReading

    rate = PooledRate.pool([(ComponentEnergy(2e-6), 1.0)])
    snap = RateSnapshot.calibrated(
        ["a", "b"], rate, {"cpu": "rapl"}, "codecarbon", closed_mono_s=0.0
    )
    now = datetime.now(UTC)
    a = charge_task("a", 0.5, snap, IntensityReading(100.0, "a", now, "static"), 1.0, now_mono_s=1)
    b = charge_task("b", 0.5, snap, IntensityReading(300.0, "b", now, "static"), 1.5, now_mono_s=1)
    assert a.method == b.method == METHOD_CALIBRATED
    assert a.energy_kwh == b.energy_kwh == 1e-6
    assert a.gco2 == pytest.approx(1e-4) and b.gco2 == pytest.approx(4.5e-4)
    assert "1 calibration windows" in a.note and "cpu=rapl gpu=none ram=none" in a.note


class _Row:
    def __init__(self, node: str, cpu: float, ram: float, g: float) -> None:
        self.node, self.cpu_energy_kwh, self.gpu_energy_kwh = node, cpu, 0.0
        self.ram_energy_kwh, self.gco2 = ram, g


def test_totals_are_exact_and_independent_of_order() -> None:
    rng = random.Random(7)
    rows = [
        _Row(rng.choice("xyz"), rng.random() * 10 ** rng.randint(-12, -3), rng.random() * 1e-9,
             rng.random() * 10 ** rng.randint(-9, 0))
        for _ in range(500)
    ]  # fmt: skip
    t = totals(rows)
    rng.shuffle(rows)
    again = totals(rows)
    assert t == again and t.tasks == 500
    assert t.energy.cpu_energy_kwh == pytest.approx(sum(r.cpu_energy_kwh for r in rows))
    assert set(t.by_node) <= set("xyz")
    assert sum(e.cpu_energy_kwh for e in t.by_node.values()) == pytest.approx(
        t.energy.cpu_energy_kwh
    )
