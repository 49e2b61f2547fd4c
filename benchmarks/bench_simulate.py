"""Scale of ``carbonedge simulate``: a year of 10,000 nodes over the 30 ENTSO-E zones.

The Europe example (examples/simulate/europe.toml) with its 2 nodes per site raised to 333 or
334 (10,000 in all) and its demand scaled to 100 million requests in the year. Prints, per
policy, the wall time and the decisions per second, beside ``Scheduler.select`` timed on the
same 10,000-node fleet (the NumPy path over FleetArrays, and the plain path over NodeStates),
then the totals: wall time and peak memory (max RSS of this process).

    .venv/bin/python benchmarks/bench_simulate.py [--days N] [--policies a,b,...]

Targets of issue 22: one simulated year in <= 10 minutes and <= 4 GB on the 2-core VM.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import sys
import time
import timeit
from functools import partial
from pathlib import Path

from carbonedge.scheduling import Scheduler, Task
from carbonedge.simulate import load_scenario
from carbonedge.simulate.optimum import solve_optimum
from carbonedge.simulate.policies import POLICY_NAMES, policies
from carbonedge.simulate.run import run_policy
from carbonedge.simulate.world import build_world

EUROPE = Path(__file__).resolve().parents[1] / "examples" / "simulate" / "europe.toml"
NODES = 10_000
REQUESTS_PER_YEAR = 100e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--policies", default=",".join(POLICY_NAMES))
    args = ap.parse_args()
    started = time.perf_counter()
    base = load_scenario(EUROPE)
    per_site, extra = divmod(NODES, len(base.sites))
    sites = tuple(
        dataclasses.replace(s, nodes=per_site + (1 if i < extra else 0))
        for i, s in enumerate(base.sites)
    )
    scale = REQUESTS_PER_YEAR / (sum(r.requests_per_s for r in base.regions) * 3600 * 8760)
    regions = tuple(
        dataclasses.replace(r, requests_per_s=r.requests_per_s * scale) for r in base.regions
    )
    sc = dataclasses.replace(base, sites=sites, regions=regions, days=args.days)
    world = build_world(sc)
    requests = int(world.interactive.sum() + world.deferrable.sum())
    print(f"python {platform.python_version()} on {platform.machine()}: {sc.node_count} nodes, "
          f"{len(sc.sites)} sites, {len(sc.regions)} regions, {sc.hours} hours, "
          f"{requests:,} requests")  # fmt: skip

    fleet = world.fleet()
    states = fleet.states()
    task = Task("bench")
    for name in ("fastest", "paper", "constrained"):
        s = Scheduler(name, "green", slo_ms=sc.slo_ms)
        vec = min(timeit.repeat(partial(s.select, task, fleet), number=200, repeat=3)) / 200
        plain = min(timeit.repeat(partial(s.select, task, states), number=5, repeat=3)) / 5
        print(f"Scheduler.select at {len(states)} nodes, {name:11s}: FleetArrays "
              f"{1 / vec:8.0f}/s   NodeState list {1 / plain:6.0f}/s")  # fmt: skip

    chosen = tuple(n.strip() for n in args.policies.split(",") if n.strip())
    print(f"\n{'policy':18s} {'wall s':>8s} {'decisions':>10s} {'selects':>10s} {'selects/s':>10s}")
    for p in policies(chosen, sc.slo_ms, sc.latency_threshold_ms):
        t = time.perf_counter()
        run = run_policy(world, p)
        wall = time.perf_counter() - t
        print(f"{p.name:18s} {wall:8.1f} {run.decisions:10d} {run.selects:10d} "
              f"{run.selects / wall:10.0f}")  # fmt: skip
    for slo in (False, True):
        t = time.perf_counter()
        opt = solve_optimum(world, slo=slo)
        print(f"{opt.name:18s} {time.perf_counter() - t:8.1f}   LP days {opt.lp_days}")
    total = time.perf_counter() - started
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\ntotal {total:.0f} s ({total / 60:.1f} min; target <= 10 min), "
          f"peak RSS {rss_gb:.2f} GB (target <= 4 GB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
