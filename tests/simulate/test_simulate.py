"""The simulator on the real ENTSO-E cache: bounds, the charge, the queue, the aggregation, the
forecasts' past-only rule and the command."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carbonedge.accounting.charge import charge_task
from carbonedge.accounting.rates import RateSnapshot
from carbonedge.carbon.intensity import IntensityReading
from carbonedge.cli.main import main
from carbonedge.errors import ConfigError, DataError
from carbonedge.simulate import load_scenario, simulate
from carbonedge.simulate.optimum import solve_optimum
from carbonedge.simulate.policies import POLICY_NAMES, policies
from carbonedge.simulate.queueing import erlang_c, mean_response_s, response_survival
from carbonedge.simulate.run import percentile_ms, run_policy
from carbonedge.simulate.scenario import Scenario, parse_scenario
from carbonedge.simulate.world import build_world

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "examples" / "simulate" / "paper-fleet.toml"
EUROPE = ROOT / "examples" / "simulate" / "europe.toml"


def _days(path: Path, days: int, **changes: Any) -> Scenario:
    return dataclasses.replace(load_scenario(path), days=days, **changes)


@pytest.fixture(scope="module")
def paper_sim():  # type: ignore[no-untyped-def]
    return simulate(_days(PAPER, 3))


def test_the_shipped_examples_are_valid() -> None:
    europe = load_scenario(EUROPE)
    assert len({s.zone for s in europe.sites}) == 30
    assert len(europe.regions) == 30
    paper = load_scenario(PAPER)
    assert [s.profile.cores for s in paper.sites] == [1.0, 0.6, 0.4]


def test_the_optimum_bounds_every_policy_and_carbon_aware_policies_cut_carbon(paper_sim) -> None:  # type: ignore[no-untyped-def]
    by = {r.policy: r for r in paper_sim.table}
    assert set(POLICY_NAMES) <= set(by)
    demand = paper_sim.world.interactive.sum() + paper_sim.world.deferrable.sum()
    for run in paper_sim.runs:
        assert run.refused_interactive + run.refused_deferrable == 0
        assert run.work.sum() == pytest.approx(demand)  # every request served once
    optimum = by["optimum"].gco2_total
    for name in POLICY_NAMES:
        assert optimum <= by[name].gco2_total * (1 + 1e-12), name
        assert by[name].gap_to_optimum_pct >= 0.0
    # With the SLO optimum as bound too, for the policies held to the SLO:
    for name in ("constrained", "spatial", "spatio-temporal"):
        assert by["optimum (SLO)"].gco2_total <= by[name].gco2_total
    # Least-carbon placement beats the carbon-agnostic baseline on a coal/mixed/nuclear fleet.
    for name in ("constrained", "spatial", "spatio-temporal"):
        assert by[name].gco2_per_inference < by["nearest"].gco2_per_inference
    assert by["nearest"].cut_total == 0.0


def test_json_rows_have_the_documented_fields(paper_sim) -> None:  # type: ignore[no-untyped-def]
    rows = paper_sim.to_json()
    for key in ("policy", "gco2_total", "gco2_per_inference", "cut_vs_agnostic_pct",
                "gap_to_optimum_pct", "latency_p99_ms", "slo_violation_pct",
                "energy_method"):  # fmt: skip
        assert all(key in r for r in rows), key
    assert "modelled" in rows[0]["energy_method"]  # every figure says how it was obtained
    json.dumps(rows)  # plain JSON (no NaN objects)


def test_cell_carbon_is_the_engine_charge_bit_for_bit(paper_sim) -> None:  # type: ignore[no-untyped-def]
    world = paper_sim.world
    run = paper_sim.runs[0]
    rate = world.site_array("kwh_per_cpu_s")
    cpu_s = world.site_array("cpu_s")
    for s, site in enumerate(world.scenario.sites):
        for h in (0, 7, world.hours - 1):
            snapshot = RateSnapshot(
                rates={site.name: (float(rate[s]), 0.0, 0.0)},
                basis={site.name: "power-profile"},
                source="power-profile",
                energy_method={"cpu": "power-profile"},
                meter="none",
                window_s=0.0,
                closed_mono_s=0.0,
            )
            reading = IntensityReading(float(world.intensity[s, h]), site.zone, datetime.now(UTC),
                                       "entsoe")  # fmt: skip
            charge = charge_task(site.name, float(run.work[s, h] * cpu_s[s]), snapshot, reading,
                                 site.pue, now_mono_s=0.0)  # fmt: skip
            assert charge.gco2 == run.carbon[s, h]


def test_a_tight_fleet_needs_the_lp_and_stays_a_lower_bound() -> None:
    sc = _days(PAPER, 2)
    region = dataclasses.replace(sc.regions[0], requests_per_s=12.0)  # ~85% of the capacity
    sc = dataclasses.replace(sc, regions=(region,))
    world = build_world(sc)
    opt = solve_optimum(world, slo=False)
    assert opt.lp_days > 0
    cap = world.site_array("capacity_per_h") * np.array([s.nodes for s in sc.sites])
    # Each day's LP keeps every site-hour's capacity; two days' arrivals may share an hour
    # (the relaxation that keeps the total a lower bound), never more.
    assert np.all(opt.work <= 2 * cap[:, None] * (1 + 1e-9))
    assert opt.work.sum() + opt.unserved == pytest.approx(
        world.interactive.sum() + world.deferrable.sum()
    )
    for p in policies(
        ("nearest", "spatial", "spatio-temporal"), sc.slo_ms, sc.latency_threshold_ms
    ):
        run = run_policy(world, p)
        if run.refused_interactive + run.refused_deferrable == 0:
            assert opt.carbon.sum() <= run.carbon.sum() * (1 + 1e-12), p.name


def test_chunked_decisions_match_request_by_request_within_two_percent() -> None:
    # load_step 0.1 places up to 10% of a node's hour per decision; 1/2000 is close to one
    # request per decision (2 requests on node-green). Same demand, same grids.
    coarse = build_world(_days(PAPER, 1))
    fine = build_world(_days(PAPER, 1, load_step=0.0005))
    for p in policies(("green", "constrained", "spatial"), 200.0, 100.0):
        a, b = run_policy(coarse, p), run_policy(fine, p)
        per_a = a.carbon.sum() / a.work.sum()
        per_b = b.carbon.sum() / b.work.sum()
        assert per_a == pytest.approx(per_b, rel=0.02), p.name
        assert b.decisions > 20 * a.decisions


def test_queue_formulas() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0)  # M/M/2 at a = 1: textbook 1/3
    # M/D/1 mean response: service + rho s / (2 (1 - rho)) (Pollaczek-Khinchine).
    assert mean_response_s(1, 0.1, 5.0) == pytest.approx(0.1 + 0.5 * 0.1 / (2 * 0.5))
    assert math.isinf(mean_response_s(1, 0.1, 10.0))
    t = np.linspace(0.0, 20.0, 400_001)
    for servers, service, rate in ((1, 0.1, 5.0), (4, 0.05, 60.0), (3, 0.2, 1.0)):
        s = response_survival(np.array([servers]), np.array([service]), np.array([rate]), t)[0]
        mean = mean_response_s(servers, service, rate)
        assert np.trapezoid(s, t) == pytest.approx(mean, rel=1e-3)  # a jump at t = service


def test_percentiles_from_the_tail_counts() -> None:
    from carbonedge.simulate.run import LATENCY_GRID_MS

    slower = np.where(LATENCY_GRID_MS < 50.0, 100.0, 0.0)  # all 100 requests take 50 ms
    assert percentile_ms(slower, 100.0, 99) == pytest.approx(50.0, rel=0.02)
    assert math.isnan(percentile_ms(slower, 0.0, 50))


def test_forecasts_read_only_the_past() -> None:
    world = build_world(_days(PAPER, 2))
    seen: list[int] = []
    history = world.grid.history

    def spy(zone, end_h, hours, factors="lifecycle"):  # type: ignore[no-untyped-def]
        seen.append(end_h)
        return history(zone, end_h, hours, factors)

    world.grid.history = spy  # type: ignore[method-assign]
    table = world.forecast(0)
    assert seen == [world.start_h + 1, world.start_h + 25]  # up to and including 00:00 UTC
    assert table[0, 0] == world.intensity[0, 0]  # column 0: the hour of issue, known
    assert table.shape == (2, 48)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["sites"][0].update(nodes=0), r"sites\[0\]\.nodes must be an integer"),
        (lambda d: d["sites"][0].update(profile="nope"), r"sites\[0\]\.profile must name"),
        (lambda d: d["sites"][0].update(colour="red"), r"sites\[0\]\.colour is not a known"),
        (lambda d: d["regions"][0].update(deadline_h=0), r"regions\[0\]\.deadline_h must be"),
        (lambda d: d["simulation"].update(policies=["x"]), r"'x' is not a policy"),
        (lambda d: d["simulation"].update(load_step=0.5), r"load_step must be at most 0.2"),
        (lambda d: d["profiles"]["high"].update(cpu_s=-1), r"profiles\.high\.cpu_s must be"),
    ],
)
def test_bad_scenarios_name_the_file_and_field(edit, message) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    data = tomllib.loads(PAPER.read_text())
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_scenario(data, "paper.toml")


def test_a_zone_without_data_is_a_clear_error() -> None:
    sc = load_scenario(PAPER)
    site = dataclasses.replace(sc.sites[0], zone="XX")
    with pytest.raises(DataError, match="XX"):
        build_world(dataclasses.replace(sc, sites=(site, *sc.sites[1:])))


def test_the_command_prints_the_table_and_writes_the_outputs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["simulate", str(PAPER), "--days", "1", "--policies", "nearest,spatial",
                 "--out", str(tmp_path), "--json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == ["nearest", "spatial", "optimum", "optimum (SLO)"]
    for name in ("table.md", "result.json", "work_by_zone_hour.csv", "fig_frontier.png",
                 "fig_work.png"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0
    assert main(["simulate", str(PAPER), "--policies", "bogus", "--out", str(tmp_path)]) == 2
