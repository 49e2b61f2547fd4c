"""Where does the paper's Green mode send every task to the green node? A map over task time x
node power (and intensity spread), and the paper's own explanation tested: SC's range across
the nodes vs SP's (the paper: 0.054 vs 0.166, IV.F).

Pure: it builds idle :class:`NodeState` rows for the fleet (task time on a full core ``t_s``
scaled by 1/quota, running power ``power_w`` x quota, Eq. 4) and asks ``Scheduler("paper",
Green)`` for its pick. Figures are drawn in :func:`fig_sensitivity`.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def states(fleet: Fleet, t_s: float, power_w: float, spread: float = 1.0) -> list[NodeState]:
    """Idle node states: avg time ``t_s / quota`` s, power ``power_w x quota`` W, intensities
    stretched about their mean by ``spread``."""
    mean_i = sum(f[3] for f in fleet) / len(fleet)
    return [
        NodeState(
            name=n,
            cpu_quota=q,
            memory_mb=m,
            free_cpu=q,
            free_memory_mb=m,
            load=0.0,
            latency_ms=1.0,
            avg_time_s=t_s / q,
            tasks_in_flight=0,
            power_w=power_w * q,
            intensity_g_per_kwh=max(1.0, mean_i + spread * (i - mean_i)),
        )
        for n, q, m, i in fleet
    ]


def cell(fleet: Fleet, t_s: float, power_w: float, spread: float = 1.0) -> Cell:
    sts = states(fleet, t_s, power_w, spread)
    pick = Scheduler("paper", MODES["green"]).select(Task("map"), sts).node
    comps = [components(s) for s in sts]
    sc = [c.sc for c in comps]
    sp = [c.sp for c in comps]
    return Cell(t_s, power_w, spread, pick, max(sc) - min(sc), max(sp) - min(sp))


def grid(
    fleet: Fleet, times_s: Sequence[float], powers_w: Sequence[float], spread: float = 1.0
) -> list[list[Cell]]:
    """Rows over ``powers_w``, columns over ``times_s``."""
    return [[cell(fleet, t, p, spread) for t in times_s] for p in powers_w]


def fig_sensitivity(
    fleet: Fleet, path: Path, ours: tuple[float, float] | None, paper_t_s: float = 0.25
) -> str:
    """Draw the map for intensity spreads 1x and 3x; return one sentence on where we sit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    green = min(fleet, key=lambda f: f[3])[0]
    times = list(np.logspace(-3, 1, 41))
    powers = list(np.logspace(-1, 3, 41))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, spread in zip(axes, (1.0, 3.0), strict=True):
        g = grid(fleet, times, powers, spread)
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    if ours is None:
        return "our fleet's point is unknown (no calibration)"
    c = cell(fleet, *ours)
    p = cell(fleet, paper_t_s, ours[1])
    return (
        f"At our point (task {ours[0] * 1000:.1f} ms, {ours[1]:.1f} W) Green picks {c.pick} on "
        f"idle nodes; SC range {c.sc_range:.4f} vs SP range {c.sp_range:.4f} (paper: 0.054 vs "
        f"0.166). At the paper's task time ({paper_t_s} s, same power) Green picks {p.pick}; "
        f"SC range {p.sc_range:.4f}, SP range {p.sp_range:.4f}."
    )
