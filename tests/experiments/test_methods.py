"""Accounting methods side by side (experiments.methods): quota, cputime, device-profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from carbonedge.experiments.methods import ACCOUNTING_METHODS, by_method, describe, g_per_inf
from carbonedge.experiments.rates import apply_energy_rate
from carbonedge.fleet.spec import default_fleet

sys.path.insert(0, str(Path(__file__).parent))
from test_rates import INTENSITY, NODES, QUOTA, _result


def test_three_methods_by_hand() -> None:
    result = apply_energy_rate(_result(), "pooled")
    spec = default_fleet()  # idle 0 W, max = quota x host CPU power
    mono = result.runs_of("mobilenet_v2", "Monolithic")[0]
    windows = (*result.runs, *result.sweep)
    rate = sum(w.host_energy_kwh for w in windows) / sum(w.window_s for w in windows)
    q_weighted = sum(QUOTA[n] / 2.0 * INTENSITY[n] * (1.2 if n == "node-green" else 1.0)
                     for n in NODES)  # fmt: skip
    assert g_per_inf(result, mono, "quota", spec, rate) == pytest.approx(
        rate * mono.window_s * q_weighted / mono.n_tasks
    )
    # device-profile, idle 0 W: E_node = host CPU W x cpu_s, utilisation capped at the quota
    host_w = spec.nodes[0].power.max_w / spec.nodes[0].cpu_quota
    want = sum(host_w * min(mono.node_cpu_s[n], QUOTA[n] * mono.window_s) / 3.6e6 * INTENSITY[n]
               for n in ("node-medium", "node-high")) / mono.n_tasks  # fmt: skip
    assert g_per_inf(result, mono, "device-profile", spec, rate) == pytest.approx(want)
    assert g_per_inf(result, mono, "cputime", spec, rate) == pytest.approx(
        mono.carbon_g / mono.n_tasks
    )
    figs = by_method(result, "mobilenet_v2", "CE-Green", spec)
    assert tuple(figs) == ACCOUNTING_METHODS
    # quota: same windows (1 s) and tasks -> same carbon, no reduction (the paper's artefact)
    assert figs["quota"].reduction_pct.mean == pytest.approx(0.0)
    green = result.runs_of("mobilenet_v2", "CE-Green")[0]
    assert figs["cputime"].reduction_pct.mean == pytest.approx(
        (1 - (green.carbon_g / green.n_tasks) / (mono.carbon_g / mono.n_tasks)) * 100
    )
    text = describe(figs)
    assert "quota (paper) +0.0%" in text and "cputime (ours)" in text and "device-profile" in text
