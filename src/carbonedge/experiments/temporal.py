"""The temporal experiment: one day of changing grid intensity, replayed time-compressed.

The paper's stated limitation (V.A) is that intensities were static. Here every node reads a
24-hour trace (fleet file ``intensity = { source = "trace", ... }``) against the engine's
:class:`~carbonedge.engine.ReplayClock` (``clock_speedup = 86400 / day_s``). ``tasks_per_day``
tasks arrive evenly over the grid day and run through the engine under three policies, each
replay with the same scheduler, ``Scheduler("constrained", slo_ms)`` (least predicted carbon,
``I x P_node x avg_time``, among the nodes that meet a loose latency SLO; the paper's and the
normalized scorings let load and resource terms outvote carbon, see docs/experiments.md):

- ``static``: the scheduler sees each node's **day-mean** intensity (the paper's setting;
  ``StaticIntensity`` sources), so it keeps choosing the node with the lowest mean;
- ``live``: it sees each node's trace value **now** (the engine's intensity feed);
- ``live+defer``: live, and each task is deferrable until ``deadline_h`` after its arrival: it
  is released at the start :func:`~carbonedge.scheduling.best_start` picks on the cleanest-node
  envelope of the nodes' forecasts (:func:`~carbonedge.engine.forecast.forecast`), then placed
  by the scheduler on the state at that time.

Every task is charged the same way, whatever its policy saw: the engine's energy for its CPU
seconds (no meter windows: the node's power-profile rate, ``(max_w - idle_w) / cpu_quota`` per
CPU-second) times the **trace** intensity of the node it ran on at the grid time it started
(Eq. 2). Latency cost: real execution latency (ms) and deferral delay (grid hours).
Replays are repeated and interleaved by policy; mean and 95% CI over repeats (Student t).
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

__all__ = ["POLICIES", "TaskRecord", "TemporalParams", "TemporalResult", "run_temporal"]

POLICIES = ("static", "live", "live+defer")
_DAY_S = 86_400.0


@dataclass(frozen=True)
class TemporalParams:
    """``fleet_file``: nodes with trace intensities; ``day_s``: real seconds one grid day
    takes; ``deadline_h``: how long a deferrable task may wait (grid hours)."""

    fleet_file: str
    model: str = "mobilenet_v2"
    runtime: Literal["torch", "onnx"] = "torch"
    tasks_per_day: int = 144
    day_s: float = 36.0
    repeats: int = 3
    deadline_h: float = 6.0
    seed: int = 0
    slo_ms: float = 250.0

    def __post_init__(self) -> None:
        if self.tasks_per_day < 2:
            raise ConfigError(f"tasks_per_day: must be >= 2, got {self.tasks_per_day}")
        if not 1.0 <= self.day_s <= 3600.0:
            raise ConfigError(f"day_s: must be 1..3600 s, got {self.day_s}")
        if self.repeats < 1:
            raise ConfigError(f"repeats: must be >= 1, got {self.repeats}")
        if not 0 < self.deadline_h <= 24:
            raise ConfigError(f"deadline_h: must be in (0, 24], got {self.deadline_h}")

    @classmethod
    def quick(cls, fleet_file: str) -> TemporalParams:
        return cls(fleet_file, tasks_per_day=48, day_s=12.0, repeats=2)


@dataclass(frozen=True)
class TaskRecord:
    """One task: grid hours since the day's start (arrival, start), the node, the trace
    intensity it was charged (gCO2/kWh), energy (kWh), carbon (g), real latency (ms)."""

    policy: str
    repeat: int
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
    day_start: str
    nodes: tuple[str, ...]
    day_mean: dict[str, float]
    trace: dict[str, list[tuple[float, float]]]  # node -> (grid hour, g/kWh), 5-min steps
    tasks: tuple[TaskRecord, ...]
    energy_method: str
    wall_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def per_replay(self, policy: str) -> list[tuple[float, float, float, float]]:
        """(gCO2/inf, mean latency ms, mean delay h, p95 delay h) per repeat."""
        out = []
        for r in range(self.params.repeats):
            ts = [t for t in self.tasks if t.policy == policy and t.repeat == r]
            if not ts:
                continue
            delays = sorted(t.delay_h for t in ts)
            out.append(
                (
                    math.fsum(t.gco2 for t in ts) / len(ts),
                    math.fsum(t.latency_ms for t in ts) / len(ts),
                    math.fsum(delays) / len(delays),
                    delays[min(len(delays) - 1, int(0.95 * len(delays)))],
                )
            )
        return out

    def summary(self) -> dict[str, dict[str, MeanCI]]:
        """Per policy: gCO2/inf, carbon cut vs static (%, paired by repeat), latency, delay."""
        base = [x[0] for x in self.per_replay("static")]
        out: dict[str, dict[str, MeanCI]] = {}
        for p in POLICIES:
            reps = self.per_replay(p)
            cuts = [(1 - g / b) * 100 for (g, *_), b in zip(reps, base, strict=False) if b > 0]
            out[p] = {
                "g_per_inf": mean_ci([x[0] for x in reps]),
                "cut_vs_static_pct": mean_ci(cuts),
                "latency_ms": mean_ci([x[1] for x in reps]),
                "delay_h": mean_ci([x[2] for x in reps]),
                "p95_delay_h": mean_ci([x[3] for x in reps]),
            }
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
    """The report: setup, the table (mean ± 95% CI over repeats), node shares."""
    p = res.params
    s = res.summary()
    lines = [
        "# Temporal experiment: one grid day, time-compressed",
        "",
        f"{p.tasks_per_day} {p.model} tasks arriving evenly over the grid day "
        f"{res.day_start[:10]}, replayed in {p.day_s:g} s (speedup {_DAY_S / p.day_s:g}x), "
        f"{p.repeats} repeat(s) per policy, interleaved; deferrable tasks may wait "
        f"{p.deadline_h:g} h. Scheduler: constrained (least predicted carbon, SLO "
        f"{p.slo_ms:g} ms). Fleet: {p.fleet_file}. "
        f"Wall time {res.wall_s:.0f} s.",
        "",
        "Day-mean intensity (what `static` sees): "
        + ", ".join(f"{n} {g:.0f}" for n, g in res.day_mean.items())
        + " gCO2/kWh.",
        "",
        f"Charge of every task: {res.energy_method}; carbon = energy x the trace intensity "
        "of its node at the grid time it started (Eq. 2), whatever the policy saw.",
        "",
        "| policy | gCO2/inf (x1e-6) | carbon cut vs static | latency ms | deferral delay h "
        "(mean) | p95 delay h | node shares (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for pol in POLICIES:
        m = s[pol]
        g = m["g_per_inf"]
        g6 = MeanCI(g.mean * 1e6, g.half_width * 1e6, g.n)
        shares = "/".join(f"{v:.0f}" for v in res.shares(pol).values())
        lines.append(
            f"| {pol} | {_ci(g6, 2)} | {_ci(m['cut_vs_static_pct'], 1, '%')} | "
            f"{_ci(m['latency_ms'])} | {_ci(m['delay_h'], 2)} | {_ci(m['p95_delay_h'], 2)} | "
            f"{shares} ({'/'.join(res.nodes)}) |"
        )
    lines += ["", *(f"- {n}" for n in res.notes), ""]
    return "\n".join(lines)


def plot(res: TemporalResult, path: Path) -> None:
    """Intensity per node over the day (top) and where and when each policy's tasks ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(res.nodes, ("tab:red", "tab:orange", "tab:green"), strict=False))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for n in res.nodes:
        hs, gs = zip(*res.trace[n], strict=True)
        top.step(
            hs, gs, where="post", color=colors.get(n), label=f"{n} (mean {res.day_mean[n]:.0f})"
        )
    top.set_ylabel("gCO2/kWh")
    top.set_title("grid intensity per node over the replayed day")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    for row, pol in enumerate(POLICIES):
        for n in res.nodes:
            ts = [t for t in res.tasks if t.policy == pol and t.repeat == 0 and t.node == n]
            bottom.scatter(
                [t.start_h for t in ts],
                [row + 0.15 * (res.nodes.index(n) - 1) for _ in ts],
                s=10,
                color=colors.get(n),
                label=n if row == 0 else None,
            )
    bottom.set_yticks(range(len(POLICIES)), list(POLICIES))
    bottom.set_xlabel("grid hour (start of each task, repeat 0)")
    bottom.set_title("where (colour) and when each task ran")
    bottom.set_xlim(0, 24)
    bottom.legend(fontsize=8, loc="upper right")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _day_start(spec: Any) -> datetime:
    """First timestamp of the first trace of the fleet (the day replayed)."""
    import csv

    for n in spec.nodes:
        cfg = n.intensity_config
        if cfg.source == "trace" and cfg.file:
            path = Path(spec.base_dir or ".") / cfg.file
            with path.open(newline="", encoding="utf-8") as fh:
                stamps = [r["timestamp"].strip() for r in csv.DictReader(fh)]
            t = min(datetime.fromisoformat(s) for s in stamps)
            return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    raise ConfigError(f"{spec.source}: no node has a trace intensity (source = 'trace')")


def _releases(
    feed: Any,
    nodes: Sequence[str],
    arrivals: Sequence[datetime],
    deadline: timedelta,
    end: datetime,
) -> list[datetime]:
    """Start of each deferrable task: best_start on the cleanest-node envelope."""
    from carbonedge.engine.forecast import forecast
    from carbonedge.scheduling.temporal import best_start

    out = []
    for a in arrivals:
        until = min(a + deadline, end)
        per_node = [forecast(feed, n, a, until, timedelta(minutes=15)) for n in nodes]
        envelope = [(pts[0][0], min(p[k][1] for p in per_node)) for k, pts in
                    enumerate(zip(*per_node, strict=True))]  # fmt: skip
        plan = best_start(envelope, 60.0, a, until, forecast_end=until)
        out.append(plan.start)
    return out


def run_temporal(
    params: TemporalParams, out_dir: Path | None = None, *, progress: bool = True
) -> TemporalResult:
    """Run the three policies ``repeats`` times on one local fleet (see the module docstring)."""
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
    day0 = _day_start(spec)
    day_end = day0 + timedelta(days=1)
    speedup = _DAY_S / params.day_s
    truth = IntensityFeed(spec, lambda: day0)
    grid = [day0 + timedelta(minutes=5 * k) for k in range(24 * 12 + 1)]
    trace = {n: [((t - day0).total_seconds() / 3600, truth.reading(n, t).g_per_kwh) for t in grid]
             for n in names}  # fmt: skip
    day_mean = {n: math.fsum(g for _, g in trace[n][:-1]) / (len(trace[n]) - 1) for n in names}
    images = load_images(None, 20, params.seed).tensors
    n_tasks = params.tasks_per_day
    arrivals = [day0 + timedelta(seconds=i * _DAY_S / n_tasks) for i in range(n_tasks)]
    deferred = _releases(truth, names, arrivals, timedelta(hours=params.deadline_h), day_end)
    scheduler = Scheduler("constrained", slo_ms=params.slo_ms)
    ledger = (out_dir / "ledger.sqlite") if out_dir is not None else None
    tasks: list[TaskRecord] = []
    method = ""
    with LocalFleet(spec) as fleet:
        key = fleet.deploy(ModelRef(params.model, seed=params.seed), names, params.runtime)
        for n in names:  # warm-up: first-call costs and the telemetry's execution times
            for _ in range(3):
                fleet.submit(n, key, images[0:1]).result()
        for rep in range(params.repeats):
            for pol in POLICIES:
                clock = ReplayClock(day0, speedup)
                static = (
                    {n: StaticIntensity(default=day_mean[n], source="static (day mean)")
                     for n in names} if pol == "static" else None
                )  # fmt: skip
                settings = EngineSettings(
                    meter="fake", window_s=0.0, ledger=ledger, restart=False,
                    run_id=f"temporal/{pol}/r{rep}",
                )  # fmt: skip
                engine = open_engine(settings, fleet=fleet, intensity_sources=static, clock=clock)
                releases = deferred if pol == "live+defer" else arrivals
                try:
                    for i in sorted(range(n_tasks), key=lambda k: releases[k]):
                        wait_s = (releases[i] - clock()).total_seconds() / speedup
                        if wait_s > 0:
                            time.sleep(wait_s)
                        at = clock()
                        x = images[i % len(images)][None]
                        out = engine.run(x, key, task_id=f"{i:04d}", scheduler=scheduler,
                                         run_id=f"temporal/{pol}/r{rep}", model=params.model,
                                         runtime=params.runtime)  # fmt: skip
                        g_true = truth.reading(out.node, at).g_per_kwh
                        e = out.charge.energy_kwh
                        method = f"{out.charge.method} ({out.charge.note})"
                        tasks.append(
                            TaskRecord(
                                pol, rep, i, (arrivals[i] - day0).total_seconds() / 3600,
                                (at - day0).total_seconds() / 3600, out.node, g_true, e,
                                e * g_true * out.charge.pue, out.result.latency_ms,
                            )
                        )  # fmt: skip
                finally:
                    engine.close()
                if progress:
                    print(f"temporal: {pol} r{rep} done", flush=True)
    notes = (
        "Traces: illustrative day shapes following published grid data (examples/temporal/"
        "README.md); they are not measurements.",
        "Deferral: a task's release is the start best_start picks (60 s job, 15-min forecast "
        "steps) on the envelope of the nodes' forecasts between its arrival and its deadline "
        "(capped at the day's end); the scheduler then places it on the state at release.",
    )
    return TemporalResult(
        params, day0.isoformat(), tuple(names), day_mean, trace, tuple(tasks), method,
        time.perf_counter() - t_wall, notes,
    )  # fmt: skip


def write_temporal(res: TemporalResult, out_dir: Path) -> None:
    """temporal.json, temporal.md, fig_temporal.png in ``out_dir``."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "temporal.json").write_text(json.dumps(res.to_dict(), indent=1, default=str))
    (out_dir / "temporal.md").write_text(render_markdown(res), encoding="utf-8")
    plot(res, out_dir / "fig_temporal.png")
