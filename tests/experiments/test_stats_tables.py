"""Fast unit tests: statistics, parameters, tables and the report on synthetic records."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from carbonedge.errors import ConfigError
from carbonedge.experiments import (
    AMP4EC,
    MONOLITHIC,
    ExperimentParams,
    ExperimentResult,
    RunRecord,
    SweepRecord,
    ce_label,
    config_labels,
    mean_ci,
    percentile,
    summaries,
    t_quantile_975,
)
from carbonedge.experiments.report import headline, write_report
from carbonedge.experiments.tables import render_ii, table_ii, table_iv, table_v

sys.path.insert(0, str(Path(__file__).parent))
import synthetic

NODES = ("node-high", "node-medium", "node-green")
INTENSITY = {"node-high": 620.0, "node-medium": 530.0, "node-green": 380.0}


def test_t_quantiles_are_the_textbook_values() -> None:
    # two-sided 95% Student t, from printed tables: df 1, 2, 4, 30, 120
    for df, t in ((1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042), (120, 1.980)):
        assert t_quantile_975(df) == pytest.approx(t, abs=5e-4)
    assert t_quantile_975(10**6) == pytest.approx(1.960, abs=5e-4)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_mean_ci_by_hand() -> None:
    ci = mean_ci([10.0, 12.0, 14.0])
    # s = 2, n = 3: half-width = 4.303 x 2 / sqrt(3)
    assert ci.mean == pytest.approx(12.0)
    assert ci.half_width == pytest.approx(4.303 * 2 / math.sqrt(3), rel=2e-4)
    assert ci.relative == pytest.approx(ci.half_width / 12.0)
    one = mean_ci([5.0])
    assert one.mean == 5.0 and math.isnan(one.half_width) and one.format() == "5.00"
    assert mean_ci([]).n == 0 and mean_ci([float("nan"), 1.0]).n == 1


def test_percentile_interpolates() -> None:
    xs = list(range(1, 101))
    assert percentile(xs, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))


def test_params_digest_is_stable_and_sensitive(tmp_path: object) -> None:
    a = ExperimentParams.quick()
    assert a.digest() == ExperimentParams.quick().digest()
    assert a.digest() != a.with_(seed=1).digest()
    assert a.n_images == 20 and a.repeats == 2
    assert ExperimentParams().n_images == 50 and ExperimentParams().repeats == 5
    with pytest.raises(ConfigError, match="repeats"):
        ExperimentParams(repeats=0)
    with pytest.raises(ConfigError, match="attribution"):
        ExperimentParams(attribution="docker")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sweep_points"):
        ExperimentParams(sweep_points=1)


def test_config_labels_mark_ours() -> None:
    labels = config_labels()
    assert labels[:2] == (MONOLITHIC, AMP4EC)
    assert "CE-Green" in labels and "CE-Green (norm.)" in labels
    assert ce_label("balanced", "normalized") == "CE-Balanced (norm.)"


def _run(
    model: str, config: str, repeat: int, node: str, energy_kwh: float, lat: float
) -> RunRecord:
    n = 10
    carbon = energy_kwh * INTENSITY[node]
    return RunRecord(
        model=model,
        config=config,
        repeat=repeat,
        n_tasks=n,
        latency_ms=lat,
        wall_s=n * lat / 1000.0,
        throughput_rps=1000.0 / lat,
        node_energy_kwh={x: energy_kwh if x == node else 0.0 for x in NODES},
        cpu_energy_kwh=energy_kwh * 0.4,
        gpu_energy_kwh=0.0,
        ram_energy_kwh=energy_kwh * 0.6,
        idle_energy_kwh=1e-7,
        other_energy_kwh=1e-8,
        host_energy_kwh=energy_kwh + 1.1e-7,
        carbon_g=carbon,
        usage_pct={x: 100.0 if x == node else 0.0 for x in NODES},
        overhead_us=(2.0, 3.0, 50.0) if config.startswith("CE") else (),
        energy_method="cpu=fake gpu=fake ram=fake",
        attribution="cputime",
    )


def synthetic_result(repeats: int = 3) -> ExperimentResult:
    plan = {
        MONOLITHIC: "node-medium",
        AMP4EC: "node-high",
        "CE-Performance": "node-high",
        "CE-Balanced": "node-high",
        "CE-Green": "node-green",
        "CE-Performance (norm.)": "node-high",
        "CE-Balanced (norm.)": "node-medium",
        "CE-Green (norm.)": "node-green",
        "CE-SLO (ours)": "node-green",
    }
    runs = [
        _run(m, c, r, node, 1e-5 * (1 + 0.01 * r), 40.0 + r)
        for m in ("mobilenet_v2", "efficientnet_b0")
        for r in range(repeats)
        for c, node in plan.items()
    ]
    sweep = [
        SweepRecord("paper", w, (0.2, 0.2, 0.3, 0.1, w), "mobilenet_v2", 5, "node-high",
                    {"node-high": 100.0, "node-medium": 0.0, "node-green": 0.0}, 30.0, 1e-4, 2e-7)
        for w in (0.0, 0.5, 1.0)
    ]  # fmt: skip
    env = synthetic.env(tuple((n, 1.0, 512, INTENSITY[n], 1.0) for n in NODES))
    return ExperimentResult(ExperimentParams.quick(), env, tuple(runs), tuple(sweep), ())


def test_summaries_reduction_and_usage() -> None:
    result = synthetic_result()
    sums = {(s.model, s.config): s for s in summaries(result)}
    green = sums[("mobilenet_v2", "CE-Green")]
    # Same energy per repeat as Monolithic, intensity 380 vs 530.
    assert green.reduction_pct.mean == pytest.approx((1 - 380 / 530) * 100)
    assert green.reduction_pct.half_width == pytest.approx(0.0, abs=1e-9)
    assert sum(green.usage_pct.values()) == pytest.approx(100.0)
    assert green.usage_pct["node-green"] == pytest.approx(100.0)
    assert green.decisions == 9 and green.overhead_us_mean == pytest.approx(55 / 3)
    assert sums[("mobilenet_v2", MONOLITHIC)].decisions == 0


def test_tables_have_paper_columns_beside_ours() -> None:
    result = synthetic_result()
    ii = table_ii(result)
    assert [r["configuration"] for r in ii] == list(config_labels())
    green = next(r for r in ii if r["configuration"] == "CE-Green")
    assert green["paper_reduction_pct"] == 22.9 and green["reduction_pct"] > 28
    assert next(r for r in ii if "(norm.)" in r["configuration"])["paper_latency_ms"] is None
    iv = table_iv(result)
    assert {r["model"] for r in iv} == {"mobilenet_v2", "efficientnet_b0"}
    v = table_v(result, model="mobilenet_v2")
    perf = next(r for r in v if r["mode"] == "CE-Performance")
    assert perf["paper_node-high_pct"] == 100.0 and perf["node-high_pct"] == 100.0
    text = render_ii(ii)
    assert "CE-Green (norm.)" in text and "±" in text


def test_report_states_the_headline_numbers() -> None:
    result = synthetic_result()
    sums = summaries(result)
    h = headline(result, sums)
    assert h.bound_pct == pytest.approx((1 - 380 / 530) * 100)
    assert h.green_share_pct == pytest.approx(100.0)
    assert h.balanced_between is True  # 530 lies between 620 and 380
    text = write_report(result, sums)
    for needle in (
        "22.9",
        "28.3",
        "Table V",
        "245.8",
        "189.5",
        "overhead",
        "fig3_weight_sweep.png",
    ):
        assert needle in text
