"""One policy over a world, hour by hour (a fluid model with incremental decisions).

Each hour starts with every node idle. The hour's requests are placed in decisions of at most
``load_step`` of the chosen node's hourly capacity, regions taking turns; after each decision
the chosen node's state is what that many requests an hour make of it (load = work / capacity;
tasks in flight = arrival rate x mean response time of the node as a queue, by Little's
law), so the next decision sees it. A node takes work up to 99% utilisation.
A decision is ``Scheduler.select`` over the whole fleet with the region's round-trip times as
the nodes' network latency. A request is refused when no node is eligible (all above
Algorithm 1's load limit or beyond its latency threshold).

At the end of the hour the interactive requests placed on a node take the round trip plus the
node's response time in the hour's final state (:mod:`.queueing`: Poisson arrivals, c
servers, near-constant service); its distribution gives the percentiles and the share of
requests over the SLO.
Deferrable requests run at a lower priority (a batch queue, preemptive): they use the node's
capacity and the scheduler sees their load, but they delay no interactive request, whose
response time is that of the interactive work alone. The carbon of
the hour is the charge of each site's work at the hour's true intensity (:func:`cell_carbon_g`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from carbonedge.scheduling import Task
from carbonedge.simulate.policies import SimPolicy
from carbonedge.simulate.queueing import mean_response_s, response_survival
from carbonedge.simulate.world import World

__all__ = ["LATENCY_GRID_MS", "PolicyRun", "percentile_ms", "plan_hour", "run_policy"]

Array = npt.NDArray[np.float64]
_TASK = Task("simulated")
_MAX_UTILISATION = 0.99
#: Latencies at which the distribution is kept, ms (log-spaced, 0.1 ms to 100 s).
LATENCY_GRID_MS = np.geomspace(0.1, 100_000.0, 601)
_GRAIN = 16  # the smallest chunk is this fraction of a step


@dataclass(frozen=True)
class PolicyRun:
    """What one policy did. ``work`` (S, H) requests served per site and hour; ``carbon``
    (S, H) their gCO2; ``slower[k]``: interactive requests slower than ``LATENCY_GRID_MS[k]``
    (expected counts); ``slo_violations``: expected interactive requests over the SLO."""

    policy: SimPolicy
    work: Array
    carbon: Array
    slower: Array
    slo_violations: float
    served_interactive: int
    served_deferrable: int
    refused_interactive: int
    refused_deferrable: int
    delay_request_h: float
    decisions: int  # placements, each of a chunk of requests
    selects: int  # Scheduler.select calls: the decisions and the chunk checks
    wall_s: float


def plan_hour(world: World, deferral: str, region: int, hour: int) -> int:
    """The hour (>= ``hour``, within the region's deadline and the run) at which ``region``'s
    deferrable requests arriving at ``hour`` run: the least forecast carbon per request,
    read from the forecast issued at 00:00 UTC of ``hour``'s day; ties go to the earliest."""
    last = world.last_hour(region, hour)
    day, k = divmod(hour, 24)
    span = slice(k, k + last - hour + 1)
    if deferral == "nearest-hour":
        values = world.forecast(int(np.argmin(world.rtt[region])))[day, span]
    else:
        sites = np.flatnonzero(world.rtt[region] <= world.scenario.latency_threshold_ms)
        forecast = np.array([world.forecast(int(s))[day, span] for s in sites])
        values = world.charge_g(np.ones_like(forecast), forecast, sites).min(axis=0)
    return hour + int(np.argmin(values))


def percentile_ms(slower: Array, total: float, q: float) -> float:
    """The ``q``-th percentile (0..100) of latency from the ``slower`` counts (interpolated
    linearly between grid points); NaN without requests."""
    if total <= 0:
        return math.nan
    share_done = 1.0 - slower / total  # increasing along the grid
    k = int(np.searchsorted(share_done, q / 100.0))
    if k == 0:
        return float(LATENCY_GRID_MS[0])
    if k >= len(LATENCY_GRID_MS):
        return math.inf
    x0, x1 = LATENCY_GRID_MS[k - 1], LATENCY_GRID_MS[k]
    y0, y1 = share_done[k - 1], share_done[k]
    return float(x0 + (x1 - x0) * (q / 100.0 - y0) / (y1 - y0)) if y1 > y0 else float(x1)


class _Hour:
    """The fleet within one hour: what each node has taken so far, and the scheduler's view."""

    def __init__(self, world: World) -> None:
        sc = world.scenario
        self.f = world.fleet()
        site = world.node_site
        self.cap = world.site_array("capacity_per_h")[site]
        self.svc = world.site_array("service_s")[site]
        self.servers = world.site_array("servers")[site].astype(np.int64)
        self.cores = self.f.cpu_quota.copy()
        self.step = np.maximum(1, np.floor(sc.load_step * self.cap)).astype(np.int64)
        self.least = np.maximum(1, self.step // _GRAIN)
        self.rtt = world.rtt[:, site]
        self.assigned = np.zeros(len(self.cap))
        self.urgent = np.zeros(len(self.cap))
        self.decisions = 0  # placements (each a decision for a chunk of requests)
        self.selects = 0  # Scheduler.select calls (the decisions plus the chunk checks)

    def reset(self, intensity: Array) -> None:
        f = self.f
        np.copyto(f.intensity_g_per_kwh, intensity)
        f.load.fill(0.0)
        f.tasks_in_flight.fill(0.0)
        np.copyto(f.free_cpu, self.cores)
        self.assigned.fill(0.0)
        self.urgent.fill(0.0)

    def place(
        self, items: list[list[Any]], urgent: bool
    ) -> tuple[list[tuple[int, int, int, bool]], int, int]:
        """Place ``[region, requests, scheduler, interactive]`` items (``urgent``: at normal
        priority), regions taking turns, one decision at a time. Returns the (region, node,
        requests, interactive) placed, and the interactive and deferrable requests refused."""
        f, cap, assigned = self.f, self.cap, self.assigned
        placed: list[tuple[int, int, int, bool]] = []
        refused = [0, 0]
        while items:
            later = []
            for item in items:
                r, left, scheduler, interactive = item
                np.copyto(f.latency_ms, self.rtt[r])
                i = scheduler.select(_TASK, f).position
                self.decisions += 1
                self.selects += 1
                if i < 0:
                    refused[0 if interactive else 1] += left
                    continue
                room = int(cap[i] * _MAX_UTILISATION - assigned[i])
                n = min(left, int(self.step[i]), max(room, 1))
                # A chunk of n goes to i only if the scheduler still picks i once it holds
                # the first n - 1 of them (as it would request by request); else halve it,
                # down to 1/16 of a step (the granularity of the fluid model).
                while n > self.least[i]:
                    self._set(i, assigned[i] + n - 1)
                    self.selects += 1
                    if scheduler.select(_TASK, f).position == i:
                        break
                    n //= 2
                assigned[i] += n
                if urgent:
                    self.urgent[i] += n
                self._set(i, assigned[i])
                placed.append((r, i, n, interactive))
                if left > n:
                    item[1] = left - n
                    later.append(item)
            items = later
        return placed, refused[0], refused[1]

    def _set(self, i: int, work: float) -> None:
        """Node ``i``'s state as the scheduler sees it with ``work`` requests this hour."""
        f = self.f
        load = min(1.0, work / self.cap[i])
        rate = work / 3600.0
        f.load[i] = load
        f.free_cpu[i] = self.cores[i] * (1.0 - load)
        f.tasks_in_flight[i] = rate * mean_response_s(
            int(self.servers[i]), float(self.svc[i]), rate
        )

    def latency(
        self, placed: list[tuple[int, int, int, bool]], slo_ms: float
    ) -> tuple[float, Array, int]:
        """The interactive placements' expected requests over the SLO, over each latency of
        :data:`LATENCY_GRID_MS`, and their count, under the urgent load of the hour's end."""
        mine = [p[:3] for p in placed if p[3]]
        if not mine:
            return 0.0, np.zeros(len(LATENCY_GRID_MS)), 0
        rr, nn, counts = (np.array(c) for c in zip(*mine, strict=True))
        rtt = self.rtt[rr, nn]
        rate = self.urgent[nn] / 3600.0
        args = (self.servers[nn], self.svc[nn], rate)
        grid_s = (LATENCY_GRID_MS[None, :] - rtt[:, None]) / 1000.0
        tail = counts @ response_survival(*args, grid_s)
        over = counts @ response_survival(*args, ((slo_ms - rtt) / 1000.0)[:, None])[:, 0]
        return float(over), tail, int(counts.sum())


def run_policy(
    world: World, policy: SimPolicy, progress: Callable[[int], None] | None = None
) -> PolicyRun:
    """Simulate ``policy`` over every hour of ``world``; ``progress(hours)`` after each day.

    Per hour, first the urgent requests (interactive ones, and deferrable ones under a policy
    that does not tell them apart), then the batch (deferrable requests due now)."""
    started = time.perf_counter()
    sc = world.scenario
    hour = _Hour(world)
    n_sites, hours = world.intensity.shape
    work = np.zeros((n_sites, hours))
    slower = np.zeros(len(LATENCY_GRID_MS))
    pending: dict[int, npt.NDArray[np.int64]] = {}
    violations = 0.0
    served_i = served_d = refused_i = refused_d = 0
    delay = 0.0
    for h in range(hours):
        hour.reset(world.intensity[world.node_site, h])
        urgent = [[int(r), int(world.interactive[r, h]), policy.interactive, True]
                  for r in np.flatnonzero(world.interactive[:, h])]  # fmt: skip
        batch = []
        for r in np.flatnonzero(world.deferrable[:, h]):
            n = int(world.deferrable[r, h])
            if policy.deferral == "same":
                urgent.append([int(r), n, policy.interactive, False])
            elif policy.deferral == "now":
                batch.append([int(r), n, policy.deferred, False])
            else:
                t = plan_hour(world, policy.deferral, int(r), h)
                pending.setdefault(t, np.zeros(len(sc.regions), np.int64))[r] += n
                delay += n * (t - h)
        due = pending.pop(h, None)
        if due is not None:
            batch += [[int(r), int(due[r]), policy.deferred, False] for r in np.flatnonzero(due)]
        placed, ri, rd = hour.place(urgent, urgent=True)
        later, ri2, rd2 = hour.place(batch, urgent=False)
        refused_i += ri + ri2
        refused_d += rd + rd2
        over, tail, count = hour.latency(placed, sc.slo_ms)
        violations += over
        slower += tail
        served_i += count
        served_d += sum(n for *_, n, interactive in placed + later if not interactive)
        work[:, h] = np.bincount(world.node_site, weights=hour.assigned, minlength=n_sites)
        if progress is not None and h % 24 == 23:
            progress(24)
    carbon = world.charge_g(work)
    return PolicyRun(
        policy=policy,
        work=work,
        carbon=carbon,
        slower=slower,
        slo_violations=violations,
        served_interactive=served_i,
        served_deferrable=served_d,
        refused_interactive=refused_i,
        refused_deferrable=refused_d,
        delay_request_h=delay,
        decisions=hour.decisions,
        selects=hour.selects,
        wall_s=time.perf_counter() - started,
    )
