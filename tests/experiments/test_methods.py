"""The sensitivity table (experiments.methods): ledger, window, quota, device-profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from carbonedge.experiments.methods import ACCOUNTING_METHODS, by_method, describe, g_per_inf
from carbonedge.fleet.spec import default_fleet

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import INTENSITY, NODES, PUE, QUOTA, result


def test_four_methods_by_hand() -> None:
    res = result()
    spec = default_fleet()  # idle 0 W, max = quota x host CPU power
    mono = res.runs_of("mobilenet_v2", "Monolithic")[0]
    windows = (*res.runs, *res.sweep)
    rate = sum(w.host_energy_kwh for w in windows) / sum(w.window_s for w in windows)
    q_weighted = sum(QUOTA[n] / 2.0 * INTENSITY[n] * PUE[n] for n in NODES)
    assert g_per_inf(res, mono, "quota", spec, rate) == pytest.approx(
        rate * mono.window_s * q_weighted / mono.n_tasks
    )
    # device-profile, idle 0 W: E_node = host CPU W x cpu_s, utilisation capped at the quota
    host_w = spec.nodes[0].power.max_w / spec.nodes[0].cpu_quota
    want = sum(host_w * min(mono.node_cpu_s[n], QUOTA[n] * mono.window_s) / 3.6e6 * INTENSITY[n]
               for n in ("node-medium", "node-high")) / mono.n_tasks  # fmt: skip
    assert g_per_inf(res, mono, "device-profile", spec, rate) == pytest.approx(want)
    assert g_per_inf(res, mono, "ledger", spec, rate) == mono.carbon_g / mono.n_tasks
    assert g_per_inf(res, mono, "window", spec, rate) == pytest.approx(4e-6 * 530 / 2)
    figs = by_method(res, "mobilenet_v2", "CE-Green", spec)
    assert tuple(figs) == ACCOUNTING_METHODS
    # quota: same windows (1 s) -> carbon per window the same; 4 tasks vs 2: half per task
    assert figs["quota"].reduction_pct.mean == pytest.approx(50.0)
    green = res.runs_of("mobilenet_v2", "CE-Green")[0]
    assert figs["ledger"].reduction_pct.mean == pytest.approx(
        (1 - (green.carbon_g / green.n_tasks) / (mono.carbon_g / mono.n_tasks)) * 100
    )
    window = (1e-6 * 380 * 1.2 + 0.6e-6 * 530) / 4
    assert figs["window"].reduction_pct.mean == pytest.approx((1 - window / (4e-6 * 530 / 2)) * 100)
    text = describe(figs)
    assert "ledger (headline)" in text and "quota (paper) +50.0%" in text
    assert "window" in text and "device-profile" in text
