"""``carbonedge simulate``: a year of an edge fleet over real grids, every policy against the
offline optimum, on the project's own scheduler and charge rule (docs/simulate.md).

``scenario`` reads the TOML file; ``world`` draws the demand and reads the grids; ``run``
plays one policy hour by hour; ``optimum`` is the perfect-knowledge bound; ``report`` and
``figures`` make the table and the pictures.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carbonedge.simulate.optimum import Optimum, solve_optimum
from carbonedge.simulate.policies import POLICY_NAMES, policies
from carbonedge.simulate.report import Row, format_table, rows
from carbonedge.simulate.run import PolicyRun, run_policy
from carbonedge.simulate.scenario import Scenario, load_scenario
from carbonedge.simulate.world import World, build_world

__all__ = [
    "POLICY_NAMES",
    "Simulation",
    "load_scenario",
    "simulate",
    "write_outputs",
]


@dataclass(frozen=True)
class Simulation:
    """A finished simulation: the world, each policy's run, the optima and the table."""

    world: World
    runs: Sequence[PolicyRun]
    optima: Sequence[Optimum]
    table: Sequence[Row]

    def to_json(self) -> list[dict[str, object]]:
        return [r.to_dict() for r in self.table]


def simulate(
    scenario: Scenario, names: Sequence[str] | None = None, *, progress: bool = False
) -> Simulation:
    """Run the scenario's policies (or ``names``) and both optima."""
    world = build_world(scenario)
    chosen = tuple(names) if names else scenario.policies
    todo = policies(chosen, scenario.slo_ms, scenario.latency_threshold_ms)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo) * scenario.days, unit="policy-day", desc="simulate")

    def tick(hours: int) -> None:
        if bar is not None:
            bar.update(hours // 24)

    runs = []
    for p in todo:
        if bar is not None:
            bar.set_postfix_str(p.name)
        runs.append(run_policy(world, p, tick))
    if bar is not None:
        bar.close()
    optima = [solve_optimum(world, slo=False)]
    optima.append(solve_optimum(world, slo=True, same_as=optima[0]))
    return Simulation(world, runs, optima, rows(world, runs, optima))


def write_outputs(sim: Simulation, out: Path) -> list[Path]:
    """table.md, result.json, work_by_zone_hour.csv and the two figures under ``out``."""
    from carbonedge.simulate.figures import frontier, work_map

    out.mkdir(parents=True, exist_ok=True)
    sc = sim.world.scenario
    written = [out / "table.md", out / "result.json", out / "work_by_zone_hour.csv"]
    header = (
        f"# Simulation of {sc.source}\n\n{len(sc.sites)} sites, {sc.node_count} nodes, "
        f"{len(sc.regions)} client regions, {sc.days} days of {sc.year} (ENTSO-E, "
        f"{sc.factors} factors), SLO {sc.slo_ms:g} ms, forecaster {sc.forecaster}.\n\n"
    )
    method = f"\n\nHow obtained: {sim.table[0].energy_method}.\n" if sim.table else "\n"
    written[0].write_text(header + format_table(sim.table) + method)
    written[1].write_text(json.dumps(sim.to_json(), indent=2) + "\n")
    with written[2].open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["policy", "zone", "hour_utc", "requests"])
        for name, work in [(r.policy.name, r.work) for r in sim.runs] + [
            (o.name, o.work) for o in sim.optima
        ]:
            by_zone: dict[str, list[float]] = {}
            for s, site in enumerate(sc.sites):
                hourly = work[s].reshape(-1, 24).sum(axis=0)
                acc = by_zone.setdefault(site.zone, [0.0] * 24)
                for h in range(24):
                    acc[h] += float(hourly[h])
            for zone, acc in sorted(by_zone.items()):
                for h, n in enumerate(acc):
                    w.writerow([name, zone, h, f"{n:.0f}"])
    frontier(sim.table, sc.slo_ms, out / "fig_frontier.png")
    work_map(sim.world, sim.runs, out / "fig_work.png")
    written += [out / "fig_frontier.png", out / "fig_work.png"]
    return written
