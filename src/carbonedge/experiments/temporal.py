"""The temporal experiment: real grid days (ENTSO-E), replayed time-compressed on the live fleet.

The paper's stated limitation (V.A) is that intensities were static. Here every node reads the
real hourly intensity of its zone (fleet file ``intensity = { source = "entsoe", zone = ...,
year = ... }``, :mod:`carbonedge.grid`) against the engine's :class:`ReplayClock`
(``clock_speedup = 86400 / day_s``). ``days`` real days spread over the year are replayed, each
with ``tasks_per_day`` tasks arriving evenly over the grid day, under four policies, all with
the same scheduler, ``Scheduler("constrained", slo_ms)`` (least predicted carbon,
``I x P_node x avg_time``, among the nodes that meet a loose latency SLO):

- ``static``: the scheduler sees each node's mean intensity over the :data:`STATIC_DAYS` days
  before the replayed day (a static configuration a deployment could have written: past only);
- ``live``: it sees each node's real intensity now (the engine's intensity feed);
- ``live+defer``: live, and each task may wait up to ``deadline_h`` after its arrival: it is
  released at the start :func:`~carbonedge.scheduling.best_start` picks on the cleanest-node
  envelope of the nodes' **forecasts** (``forecaster``, fitted on the hours before the task's
  arrival: :func:`~carbonedge.engine.forecast.forecast`), then placed on the state at release;
- ``live+defer (oracle)``: the same with the true future values, perfect foresight: the bound
  a forecast could reach, not something a deployment gets.

Every task is charged the same way, whatever its policy saw: the engine's energy for its CPU
seconds (the node's power-profile rate; no meter windows) times the **true** intensity of the
node it ran on, in the grid hour it started (Eq. 2, :func:`carbonedge.carbon.carbon_g`).
Latency cost: real execution latency (ms) and deferral delay (grid hours). Days are the
replicates: mean and 95% CI over days (Student t), cuts paired by day.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from carbonedge.errors import ConfigError
from carbonedge.experiments.stats import MeanCI, mean_ci

__all__ = [
    "POLICIES",
    "STATIC_DAYS",
    "TaskRecord",
    "TemporalParams",
    "TemporalResult",
    "replay_days",
    "run_temporal",
]

POLICIES = ("static", "live", "live+defer", "live+defer (oracle)")
#: Days before a replayed day whose mean intensity the ``static`` policy sees.
STATIC_DAYS = 28
_DAY_S = 86_400.0
_WARMUP_DAYS = 40  # the first replayable day: forecasters and the static mean need a past


@dataclass(frozen=True)
class TemporalParams:
    """``fleet_file``: nodes with ``entsoe`` intensities and one ``year``; ``days``: real days
    replayed, spread evenly over the year; ``day_s``: real seconds one grid day takes;
    ``deadline_h``: how long a deferrable task may wait (grid hours); ``forecaster``: what
    ``live+defer`` plans on (:data:`carbonedge.grid.FORECASTERS`)."""

    fleet_file: str
    model: str = "mobilenet_v2"
    runtime: Literal["torch", "onnx"] = "torch"
    days: int = 12
    tasks_per_day: int = 48
    day_s: float = 6.0
    deadline_h: float = 6.0
    forecaster: str = "ar"
    seed: int = 0
    slo_ms: float = 250.0

    def __post_init__(self) -> None:
        from carbonedge.grid.forecast import check_forecaster

        if not 1 <= self.days <= 300:
            raise ConfigError(f"days: must be 1..300, got {self.days}")
        if self.tasks_per_day < 2:
            raise ConfigError(f"tasks_per_day: must be >= 2, got {self.tasks_per_day}")
        if not 1.0 <= self.day_s <= 3600.0:
            raise ConfigError(f"day_s: must be 1..3600 s, got {self.day_s}")
        if not 0 < self.deadline_h <= 24:
            raise ConfigError(f"deadline_h: must be in (0, 24], got {self.deadline_h}")
        check_forecaster(self.forecaster, oracle=False)  # the oracle is always run beside it

    @classmethod
    def quick(cls, fleet_file: str) -> TemporalParams:
        return cls(fleet_file, days=4, tasks_per_day=24, day_s=4.0)


@dataclass(frozen=True)
class TaskRecord:
    """One task: its day (UTC date), grid hours since the day's start (arrival, start), the
    node, the true intensity it was charged (gCO2/kWh), energy (kWh), carbon (g), real
    latency (ms)."""

    policy: str
    day: str
    index: int
    arrival_h: float
    start_h: float
    node: str
    intensity_g_per_kwh: float
    energy_kwh: float
    gco2: float
    latency_ms: float

    @property
    def delay_h(self) -> float:
        return self.start_h - self.arrival_h


@dataclass(frozen=True)
class TemporalResult:
    params: TemporalParams
    days: tuple[str, ...]
    nodes: tuple[str, ...]
    zones: dict[str, str]
    static_g_per_kwh: dict[str, dict[str, float]]  # day -> node -> what `static` saw
    trace: dict[str, list[tuple[float, float]]]  # node -> (grid hour, g/kWh), the first day
    tasks: tuple[TaskRecord, ...]
    energy_method: str
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def per_day(self, policy: str) -> list[tuple[float, float, float, float, float]]:
        """(gCO2/inf, mean latency ms, mean delay h, p95 delay h, mean intensity charged
        gCO2/kWh) per replayed day."""
        out = []
        for day in self.days:
            ts = [t for t in self.tasks if t.policy == policy and t.day == day]
            if not ts:
                continue
            delays = sorted(t.delay_h for t in ts)
            out.append(
                (
                    math.fsum(t.gco2 for t in ts) / len(ts),
                    math.fsum(t.latency_ms for t in ts) / len(ts),
                    math.fsum(delays) / len(delays),
                    delays[min(len(delays) - 1, int(0.95 * len(delays)))],
                    math.fsum(t.intensity_g_per_kwh for t in ts) / len(ts),
                )
            )
        return out

    def cuts(self, policy: str, base: str = "static", column: int = 0) -> list[float]:
        """Cut of ``policy`` vs ``base`` per day, %, paired by day: in carbon per inference
        (``column`` 0) or in the mean intensity charged (4)."""
        b = [x[column] for x in self.per_day(base)]
        p = [x[column] for x in self.per_day(policy)]
        return [(1 - g / r) * 100 for g, r in zip(p, b, strict=True)]

    def summary(self) -> dict[str, dict[str, MeanCI]]:
        """Per policy: gCO2/inf, carbon cut vs static (%, paired by day), latency, delay."""
        out: dict[str, dict[str, MeanCI]] = {}
        for p in POLICIES:
            reps = self.per_day(p)
            out[p] = {
                "g_per_inf": mean_ci([x[0] for x in reps]),
                "cut_vs_static_pct": mean_ci(self.cuts(p)),
                "intensity_g_per_kwh": mean_ci([x[4] for x in reps]),
                "intensity_cut_pct": mean_ci(self.cuts(p, column=4)),
                "latency_ms": mean_ci([x[1] for x in reps]),
                "delay_h": mean_ci([x[2] for x in reps]),
                "p95_delay_h": mean_ci([x[3] for x in reps]),
            }
        gap = [o - f for o, f in zip(self.cuts(POLICIES[3]), self.cuts(POLICIES[2]), strict=True)]
        out["forecast vs oracle"] = {"cut_gap_pts": mean_ci(gap)}
        return out

    def shares(self, policy: str) -> dict[str, float]:
        ts = [t for t in self.tasks if t.policy == policy]
        return {n: 100.0 * sum(t.node == n for t in ts) / max(1, len(ts)) for n in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = {p: {k: asdict(v) for k, v in s.items()} for p, s in self.summary().items()}
        return d


def _ci(v: MeanCI, digits: int = 1, unit: str = "") -> str:
    if math.isnan(v.mean):
        return "n/a"
    hw = "" if math.isnan(v.half_width) else f" ± {v.half_width:.{digits}f}"
    return f"{v.mean:.{digits}f}{hw}{unit}"


def render_markdown(res: TemporalResult) -> str:
    """The report: setup, the table (mean ± 95% CI over days), node shares."""
    from carbonedge.grid import ATTRIBUTION

    p = res.params
    s = res.summary()
    zones = ", ".join(f"{n} {z}" for n, z in res.zones.items())
    lines = [
        "# Temporal experiment: real grid days, time-compressed",
        "",
        f"{len(res.days)} real days ({', '.join(d[5:] for d in res.days)} of "
        f"{res.days[0][:4]}), each with {p.tasks_per_day} {p.model} tasks arriving evenly over "
        f"the grid day, replayed in {p.day_s:g} s (speedup {_DAY_S / p.day_s:g}x), the four "
        f"policies in turn; deferrable tasks may wait {p.deadline_h:g} h (capped at the day's "
        f"end) and plan on the `{p.forecaster}` forecast (fitted on the past only) or, as a "
        f"bound, on the true future (oracle). Scheduler: constrained (least predicted carbon, "
        f"SLO {p.slo_ms:g} ms). Nodes and zones: {zones}. Wall time {res.wall_s:.0f} s.",
        "",
        f"`static` sees each node's mean over the {STATIC_DAYS} days before the replayed day. "
        f"Charge of every task: {res.energy_method}; carbon = energy x the true intensity of "
        "its node in the grid hour it started (Eq. 2), whatever the policy saw.",
        "",
        "| policy | gCO2/inf (x1e-6) | carbon cut vs static | intensity charged, g/kWh "
        "| its cut vs static | latency ms | deferral delay h (mean) | p95 delay h "
        "| node shares (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pol in POLICIES:
        m = s[pol]
        g = m["g_per_inf"]
        g6 = MeanCI(g.mean * 1e6, g.half_width * 1e6, g.n)
        shares = "/".join(f"{v:.0f}" for v in res.shares(pol).values())
        lines.append(
            f"| {pol} | {_ci(g6, 2)} | {_ci(m['cut_vs_static_pct'], 1, '%')} | "
            f"{_ci(m['intensity_g_per_kwh'], 0)} | {_ci(m['intensity_cut_pct'], 1, '%')} | "
            f"{_ci(m['latency_ms'])} | {_ci(m['delay_h'], 2)} | {_ci(m['p95_delay_h'], 2)} | "
            f"{shares} ({'/'.join(res.nodes)}) |"
        )
    gap = s["forecast vs oracle"]["cut_gap_pts"]
    lines += [
        "",
        f"Oracle deferral's cut minus forecast deferral's, paired by day: {_ci(gap, 1)} "
        "percentage points (what perfect foresight would add).",
        "",
        "Carbon per inference is measured energy x intensity; energy per task (its CPU time) "
        "varies between replays with the host's load, independently of the policy, so the "
        "intensity columns show what the policy chose on its own.",
        "",
        "Mean ± 95% CI over days (Student t). Intensities: hourly production-based average "
        "(lifecycle factors unless the fleet says otherwise). " + ATTRIBUTION,
        "",
        *(f"- {n}" for n in res.notes),
        "",
    ]
    return "\n".join(lines)


def plot(res: TemporalResult, path: Path) -> None:
    """Cut vs static per day and policy (top); the first day's intensities and when its
    deferred tasks ran (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(
        zip(
            res.nodes,
            ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple"),
            strict=False,
        )
    )
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    s = res.summary()
    for k, pol in enumerate(POLICIES[1:]):
        cuts = res.cuts(pol)
        top.scatter([k] * len(cuts), cuts, s=14, alpha=0.6, color="gray")
        m = s[pol]["cut_vs_static_pct"]
        hw = 0.0 if math.isnan(m.half_width) else m.half_width
        top.errorbar([k + 0.15], [m.mean], yerr=[hw], fmt="o", color="black", capsize=4)
    top.axhline(0, color="black", lw=0.8)
    top.set_xticks(range(len(POLICIES) - 1), list(POLICIES[1:]))
    top.set_ylabel("carbon cut vs static (%)")
    top.set_title(f"per day (grey) and mean ± 95% CI over {len(res.days)} real days (black)")
    top.grid(alpha=0.3)
    first = res.days[0]
    for n in res.nodes:
        hs, gs = zip(*res.trace[n], strict=True)
        bottom.step(hs, gs, where="post", color=colors.get(n), label=f"{n} ({res.zones[n]})")
    ymax = max(g for pts in res.trace.values() for _, g in pts)
    for row, pol in enumerate(POLICIES[1:]):
        ts = [t for t in res.tasks if t.policy == pol and t.day == first]
        bottom.scatter([t.start_h for t in ts], [ymax * (1.04 + 0.05 * row)] * len(ts), s=10,
                       c=[colors.get(t.node) for t in ts], marker="|")  # fmt: skip
        bottom.text(24.2, ymax * (1.04 + 0.05 * row), pol, fontsize=7, va="center")
    bottom.set_xlim(0, 24)
    bottom.set_xlabel(f"grid hour (UTC) of {first}; ticks above: when and where each task ran")
    bottom.set_ylabel("gCO2/kWh")
    bottom.legend(fontsize=8, loc="lower left")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def replay_days(spec: Any, days: int) -> tuple[list[datetime], dict[str, str]]:
    """The days replayed (UTC midnights, spread evenly over the fleet's common year after a
    warm-up) and node -> zone. ConfigError unless every node has an ``entsoe`` source with the
    same ``year``."""
    years = set()
    zones = {}
    for n in spec.nodes:
        cfg = n.intensity_config
        if cfg.source != "entsoe" or cfg.year is None:
            raise ConfigError(
                f"{spec.source}: node {n.name!r} needs intensity = {{ source = 'entsoe', "
                "zone = ..., year = ... }} for the temporal experiment"
            )
        years.add(cfg.year)
        zones[n.name] = cfg.zone or n.name
    if len(years) != 1:
        raise ConfigError(f"{spec.source}: the nodes' entsoe years differ: {sorted(years)}")
    year = years.pop()
    start = datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=_WARMUP_DAYS)
    span = (datetime(year, 12, 31, tzinfo=UTC) - start).days
    step = span / days
    return [start + timedelta(days=int(k * step + step / 2)) for k in range(days)], zones


def _releases(
    feed: Any,
    nodes: Sequence[str],
    arrivals: Sequence[datetime],
    deadline: timedelta,
    end: datetime,
    forecaster: str,
) -> list[datetime]:
    """Start of each deferrable task: best_start on the cleanest-node envelope of the nodes'
    forecasts made at its arrival."""
    from carbonedge.engine.forecast import forecast
    from carbonedge.scheduling.temporal import best_start

    grid = timedelta(minutes=15)
    out = []
    for a in arrivals:
        until = min(a + deadline, end)
        if until - a <= timedelta(seconds=60):
            out.append(a)
            continue
        series = [forecast(feed, n, a, until, grid, forecaster=forecaster) for n in nodes]
        times = sorted({t for pts in series for t, _ in pts})
        envelope = [(t, min(_at(pts, t) for pts in series)) for t in times]
        out.append(best_start(envelope, 60.0, a, until, forecast_end=until).start)
    return out


def _at(points: Sequence[tuple[datetime, float]], t: datetime) -> float:
    """The step function ``points`` at ``t`` (the last point at or before it)."""
    value = points[0][1]
    for when, g in points:
        if when > t:
            break
        value = g
    return value


def run_temporal(
    params: TemporalParams, out_dir: Path | None = None, *, progress: bool = True
) -> TemporalResult:
    """Replay ``params.days`` real days under the four policies on one local fleet."""
    from carbonedge.accounting import carbon_g
    from carbonedge.carbon import StaticIntensity
    from carbonedge.data import load_images
    from carbonedge.engine import EngineSettings, IntensityFeed, ReplayClock, open_engine
    from carbonedge.fleet import ModelRef
    from carbonedge.fleet.local import LocalFleet
    from carbonedge.fleet.spec import load_fleet
    from carbonedge.scheduling import Scheduler

    t_wall = time.perf_counter()
    spec = load_fleet(params.fleet_file)
    names = spec.names
    days, zones = replay_days(spec, params.days)
    truth = IntensityFeed(spec, lambda: days[0])
    hourly = [days[0] + timedelta(hours=h) for h in range(25)]
    trace = {
        n: [(float(h), truth.reading(n, t).g_per_kwh) for h, t in enumerate(hourly)] for n in names
    }
    static: dict[str, dict[str, float]] = {}
    for day0 in days:
        past = [day0 - timedelta(hours=h) for h in range(1, STATIC_DAYS * 24 + 1)]
        static[f"{day0:%Y-%m-%d}"] = {
            n: math.fsum(truth.reading(n, t).g_per_kwh for t in past) / len(past) for n in names
        }
    images = load_images(None, 20, params.seed).tensors
    n_tasks = params.tasks_per_day
    speedup = _DAY_S / params.day_s
    scheduler = Scheduler("constrained", slo_ms=params.slo_ms)
    ledger = (out_dir / "ledger.sqlite") if out_dir is not None else None
    tasks: list[TaskRecord] = []
    method = ""
    with LocalFleet(spec) as fleet:
        key = fleet.deploy(ModelRef(params.model, seed=params.seed), names, params.runtime)
        for n in names:  # warm-up: first-call costs and the telemetry's execution times
            for _ in range(3):
                fleet.submit(n, key, images[0:1]).result()
        for day0 in days:
            day = f"{day0:%Y-%m-%d}"
            arrivals = [day0 + timedelta(seconds=i * _DAY_S / n_tasks) for i in range(n_tasks)]
            end = day0 + timedelta(days=1)
            wait = timedelta(hours=params.deadline_h)
            releases = {
                "static": arrivals,
                "live": arrivals,
                "live+defer": _releases(truth, names, arrivals, wait, end, params.forecaster),
                "live+defer (oracle)": _releases(truth, names, arrivals, wait, end, "oracle"),
            }
            for pol in POLICIES:
                clock = ReplayClock(day0, speedup)
                sources = (
                    {n: StaticIntensity(default=static[day][n], source=f"static ({STATIC_DAYS}-day "
                     "mean before the day)") for n in names} if pol == "static" else None
                )  # fmt: skip
                run_id = f"temporal/{day}/{pol}"
                settings = EngineSettings(
                    meter="fake", window_s=0.0, ledger=ledger, restart=False, run_id=run_id
                )
                engine = open_engine(settings, fleet=fleet, intensity_sources=sources, clock=clock)
                release = releases[pol]
                try:
                    for i in sorted(range(n_tasks), key=lambda k: release[k]):
                        wait_s = (release[i] - clock()).total_seconds() / speedup
                        if wait_s > 0:
                            time.sleep(wait_s)
                        at = clock()
                        x = images[i % len(images)][None]
                        out = engine.run(x, key, task_id=f"{i:04d}", scheduler=scheduler,
                                         run_id=run_id, model=params.model,
                                         runtime=params.runtime)  # fmt: skip
                        g_true = truth.reading(out.node, at).g_per_kwh
                        e = out.charge.energy_kwh
                        method = f"{out.charge.method} ({out.charge.note})"
                        tasks.append(
                            TaskRecord(
                                pol, day, i, (arrivals[i] - day0).total_seconds() / 3600,
                                (at - day0).total_seconds() / 3600, out.node, g_true, e,
                                carbon_g(e, g_true, out.charge.pue), out.result.latency_ms,
                            )
                        )  # fmt: skip
                finally:
                    engine.close()
            if progress:
                print(f"temporal: {day} done", flush=True)
    notes = (
        "Deferral: a task's release is the start best_start picks (60 s job) on the envelope "
        "(the least, hour by hour) of the nodes' forecasts made at its arrival, between its "
        "arrival and its deadline (capped at the day's end); the scheduler then places it on "
        "the state at release.",
        "Intensities are production-based averages of each zone's own generation: imports, "
        "exports and marginal effects are not modelled (docs/grids.md).",
    )
    return TemporalResult(
        params, tuple(f"{d:%Y-%m-%d}" for d in days), tuple(names), zones, static, trace,
        tuple(tasks), method, time.perf_counter() - t_wall, notes,
    )  # fmt: skip


def write_temporal(res: TemporalResult, out_dir: Path) -> None:
    """temporal.json, temporal.md, fig_temporal.png in ``out_dir``."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "temporal.json").write_text(json.dumps(res.to_dict(), indent=1, default=str))
    (out_dir / "temporal.md").write_text(render_markdown(res), encoding="utf-8")
    plot(res, out_dir / "fig_temporal.png")
