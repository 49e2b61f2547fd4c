"""Where does the paper's Green mode send every task to the green node? A map over task time x
node power (and intensity spread), and the paper's own explanation tested: SC's range across
the nodes vs SP's (the paper: 0.054 vs 0.166, IV.F).

Pure: it builds idle :class:`NodeState` rows for the fleet (task time on a full core ``t_s``
scaled by 1/quota, running power ``power_w`` x quota, Eq. 4) and asks ``Scheduler("paper",
Green)`` for its pick. Figures are drawn in :func:`fig_sensitivity`.

The resource score SR includes free memory, ``(free_cpu / cpu_quota + free_memory_mb /
memory_mb) / 2``. The live engine sees each node's memory less the footprints of the models
deployed on it (in the reproduction every node holds the three paper models and its AMP4EC
segments, e.g. node-high 104 of 1024 MiB, node-green 100 of 512 MiB), a fixed term that favours
the node with the most memory left (~0.007 under Green weights, as large as some of the margins
the map is about). Pass ``free_memory_mb`` (:func:`free_memory_of` the engine's
``node_states(model_key)``) so that the map's nodes are what the live scheduler saw; without it
the nodes are taken as empty (``free_memory_mb = memory_mb``) and the map's sentence says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from carbonedge.scheduling import MODES, NodeState, Scheduler, Task
from carbonedge.scheduling.components import components

#: The fleet as (name, cpu_quota, memory_mb, intensity g/kWh): the paper's three nodes.
Fleet = Sequence[tuple[str, float, float, float]]


@dataclass(frozen=True)
class Cell:
    """One point of the map: the pick and the components' spread across nodes."""

    t_s: float
    power_w: float
    spread: float
    pick: str | None
    sc_range: float
    sp_range: float


#: Free memory per node name, MiB (what the engine's telemetry reports: memory_mb less the
#: footprints of the deployed models).
FreeMemory = Mapping[str, float]


def free_memory_of(node_states: Iterable[NodeState]) -> dict[str, float]:
    """The free memory of live node states (``fleet.node_states(model_key)``), by node name."""
    return {s.name: s.free_memory_mb for s in node_states}


def _free(free_memory_mb: FreeMemory | None, name: str, memory_mb: float) -> float:
    if free_memory_mb is None or name not in free_memory_mb:
        return memory_mb
    return min(memory_mb, max(0.0, free_memory_mb[name]))


def states(
    fleet: Fleet,
    t_s: float,
    power_w: float,
    spread: float = 1.0,
    free_memory_mb: FreeMemory | None = None,
) -> list[NodeState]:
    """Idle node states: avg time ``t_s / quota`` s, power ``power_w x quota`` W, intensities
    stretched about their mean by ``spread``, free memory ``free_memory_mb[name]`` (the node's
    whole ``memory_mb`` where not given: nothing deployed)."""
    mean_i = sum(f[3] for f in fleet) / len(fleet)
    return [
        NodeState(
            name=n,
            cpu_quota=q,
            memory_mb=m,
            free_cpu=q,
            free_memory_mb=_free(free_memory_mb, n, m),
            load=0.0,
            latency_ms=1.0,
            avg_time_s=t_s / q,
            tasks_in_flight=0,
            power_w=power_w * q,
            intensity_g_per_kwh=max(1.0, mean_i + spread * (i - mean_i)),
        )
        for n, q, m, i in fleet
    ]


def cell(
    fleet: Fleet,
    t_s: float,
    power_w: float,
    spread: float = 1.0,
    free_memory_mb: FreeMemory | None = None,
) -> Cell:
    sts = states(fleet, t_s, power_w, spread, free_memory_mb)
    pick = Scheduler("paper", MODES["green"]).select(Task("map"), sts).node
    comps = [components(s) for s in sts]
    sc = [c.sc for c in comps]
    sp = [c.sp for c in comps]
    return Cell(t_s, power_w, spread, pick, max(sc) - min(sc), max(sp) - min(sp))


def grid(
    fleet: Fleet,
    times_s: Sequence[float],
    powers_w: Sequence[float],
    spread: float = 1.0,
    free_memory_mb: FreeMemory | None = None,
) -> list[list[Cell]]:
    """Rows over ``powers_w``, columns over ``times_s``."""
    return [[cell(fleet, t, p, spread, free_memory_mb) for t in times_s] for p in powers_w]


def memory_note(fleet: Fleet, free_memory_mb: FreeMemory | None) -> str:
    """What the map assumed about SR's memory term, for its caption."""
    known = [(n, m) for n, _, m, _ in fleet if free_memory_mb and n in free_memory_mb]
    if not known:
        return (
            "SR's memory term assumes empty nodes (free memory = memory_mb): the deployed "
            "models' footprints, which the live engine subtracts, are not included."
        )
    used = ", ".join(f"{n} {m - _free(free_memory_mb, n, m):.0f} of {m:.0f} MiB" for n, m in known)
    return (
        f"SR's memory term is included: free memory as the engine's telemetry reported it "
        f"(deployed models use {used})."
    )


def fig_sensitivity(
    fleet: Fleet,
    path: Path,
    ours: tuple[float, float] | None,
    paper_t_s: float = 0.25,
    free_memory_mb: FreeMemory | None = None,
) -> str:
    """Draw the map for intensity spreads 1x and 3x; return one sentence on where we sit.
    ``free_memory_mb``: each node's free memory as the engine saw it (see the module
    docstring); the caption and the sentence say whether it was included."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    green = min(fleet, key=lambda f: f[3])[0]
    times = list(np.logspace(-3, 1, 41))
    powers = list(np.logspace(-1, 3, 41))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, spread in zip(axes, (1.0, 3.0), strict=True):
        g = grid(fleet, times, powers, spread, free_memory_mb)
        z = np.array([[1.0 if c.pick == green else 0.0 for c in row] for row in g])
        ax.pcolormesh(times, powers, z, cmap="RdYlGn", vmin=0, vmax=1, shading="nearest")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("task time on a full core (s)")
        ax.set_ylabel("node running power at full core (W, Eq. 4's P)")
        ax.set_title(
            f"Green mode (paper scoring), intensities x{spread:g} spread\n"
            f"green = every task on {green}, red = elsewhere"
        )
        if ours:
            ax.plot(*ours, "k*", ms=14, label="our fleet (measured)")
        ax.axvline(paper_t_s, color="b", ls=":", label=f"paper's task time ~{paper_t_s} s")
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "SR's memory term included: free memory as the engine's telemetry reported it"
        if free_memory_mb
        else "empty nodes: SR's memory term equal on every node",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    note = memory_note(fleet, free_memory_mb)
    if ours is None:
        return f"our fleet's point is unknown (no calibration). {note}"
    c = cell(fleet, *ours, free_memory_mb=free_memory_mb)
    p = cell(fleet, paper_t_s, ours[1], free_memory_mb=free_memory_mb)
    return (
        f"At our point (task {ours[0] * 1000:.1f} ms, {ours[1]:.1f} W) Green picks {c.pick} on "
        f"idle nodes; SC range {c.sc_range:.4f} vs SP range {c.sp_range:.4f} (paper: 0.054 vs "
        f"0.166). At the paper's task time ({paper_t_s} s, same power) Green picks {p.pick}; "
        f"SC range {p.sc_range:.4f}, SP range {p.sp_range:.4f}. {note}"
    )
