"""The report's headline on a synthetic result: one number per claim (the sums of the ledger
rows), the tables' SLO rows, CE-SLO's default SLO on the default fleet, and the parameters."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import pytest

from carbonedge.accounting import totals
from carbonedge.errors import ConfigError
from carbonedge.experiments import CE_SLO, ExperimentParams, config_labels, summaries
from carbonedge.experiments.report import headline, write_report
from carbonedge.experiments.tables import slo_note, table_ii, table_v

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import INTENSITY, RATE, result


def test_run_figures_are_the_totals_of_their_rows() -> None:
    res = result()
    for run in res.runs:
        t = totals(r for r in res.ledger_rows if r.run_id == run.run_id)
        assert run.carbon_g == t.gco2 and run.energy_kwh == t.energy_kwh


def test_report_leads_with_the_ledger_reduction() -> None:
    res = result()
    sums = summaries(res)
    h = headline(res, sums)
    assert h.charge_method == "calibrated-cputime"
    r = RATE.cpu_kwh_per_s
    mono = r * 0.9 * 530 / 2
    green = r * (0.8 * 380 * 1.2 + 0.5 * 530) / 4
    assert h.green_reduction_pct.mean == pytest.approx((1 - green / mono) * 100)
    assert h.slo_reduction_pct.n == 1 and h.slo_share_pct == pytest.approx(100.0)
    # Task CPU per inference from the ledger rows: node-green (0.3 + 0.5 + 1.0) / 3 s.
    assert h.cpu_ms_per_inf["node-green"] == pytest.approx(600.0)
    assert h.shares_only_pct == pytest.approx((1 - (0.5 * 380 * 1.2 + 0.5 * 530) / 530) * 100)
    med = 350.0  # node-medium: (0.4 + 0.5 + 0.25 + 0.25) / 4 s
    want = (1 - (0.5 * 600 * 380 * 1.2 + 0.5 * med * 530) / (med * 530)) * 100
    assert h.expected_pct == pytest.approx(want)
    text = write_report(res, sums)
    for needle in ("**Charge**", "`calibrated-cputime`", "ONE physical", "Static energy",
                   "% of the", "CE-SLO (ours)", "75.0 ms", "sum of its ledger rows",
                   "Accounting methods side by side", "sensitivity table"):  # fmt: skip
        assert needle in text, needle
    assert "runs_other_rate" not in text and "under `window`" not in text


def test_slo_row_in_tables_ii_and_v() -> None:
    res = result()
    ii = table_ii(res)
    row = next(r for r in ii if r["configuration"] == CE_SLO)
    assert row["slo_ms"] == 75.0 and row["slo_met_pct"] == 90.0 and row["paper_latency_ms"] is None
    assert "75.0 ms" in slo_note(ii) and "90%" in slo_note(ii)
    v = next(r for r in table_v(res) if r["mode"] == CE_SLO)
    assert v["node-green_pct"] == 100.0 and v["paper_node-green_pct"] is None
    assert config_labels()[-1] == CE_SLO


def test_default_slo_factor_admits_the_green_node_only_when_idle() -> None:
    """The default SLO (3.5 x the fastest node's predicted latency) on the default fleet: the
    green node (0.4 of the fastest's CPU: 2.5x slower, 3x with its throttling overhead) meets it
    when idle, so CE-SLO picks the least carbon node; with a task already queued there (5x) it
    does not."""
    from carbonedge.fleet import load_fleet
    from carbonedge.scheduling import NodeState, Scheduler, Task

    spec = load_fleet(None)
    t_fast_s = 0.02

    def states(green_in_flight: int) -> list[NodeState]:
        return [
            NodeState(n.name, n.cpu_quota, n.memory_mb, n.cpu_quota, n.memory_mb, 0.0, 0.0,
                      t_fast_s / n.cpu_quota,
                      green_in_flight if n.name == "node-green" else 0, n.power.power_w(1.0),
                      INTENSITY[n.name])
            for n in spec.nodes
        ]  # fmt: skip

    slo = ExperimentParams().slo_factor * t_fast_s * 1000.0
    assert Scheduler("constrained", slo_ms=slo).select(Task("t"), states(0)).node == "node-green"
    slowed = [
        dataclasses.replace(s, avg_time_s=3.1 * t_fast_s) if s.name == "node-green" else s
        for s in states(0)
    ]
    assert Scheduler("constrained", slo_ms=slo).select(Task("t"), slowed).node == "node-green"
    busy = Scheduler("constrained", slo_ms=slo).select(Task("t"), states(1))
    assert busy.node == "node-medium"
    tight = Scheduler("constrained", slo_ms=1.5 * t_fast_s * 1000.0)
    assert tight.select(Task("t"), states(0)).node == "node-high"


def test_params_slo() -> None:
    p = ExperimentParams.quick()
    assert p.slo_ms is None and p.slo_factor == 3.5
    assert p.digest() != p.with_(slo_ms=40.0).digest()
    with pytest.raises(ConfigError, match="slo_factor"):
        ExperimentParams(slo_factor=0.0)
    with pytest.raises(ConfigError, match="slo_ms"):
        ExperimentParams(slo_ms=math.nan)


def test_cli_options_reach_the_params() -> None:
    from carbonedge.cli.reproduce_cmd import params_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    params = params_from_args(parser.parse_args(["reproduce", "--quick", "--slo-ms", "40"]))
    assert params.slo_ms == 40.0 and params.n_images == 20
    default = params_from_args(parser.parse_args(["reproduce", "--slo-factor", "2"]))
    assert default.slo_factor == 2.0


def test_quota_headline_explains_quota_shares() -> None:
    res = result("quota")
    text = write_report(res, summaries(res))
    assert "quota-weighted intensity" in text and "nothing is left out" in text
