"""Two pictures of a simulation: carbon against latency per policy, and where the work went."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carbonedge.grid.data import ATTRIBUTION
from carbonedge.simulate.report import Row
from carbonedge.simulate.run import PolicyRun
from carbonedge.simulate.world import World

__all__ = ["frontier", "work_map"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def frontier(table: Sequence[Row], slo_ms: float, path: Path) -> None:
    """gCO2 per inference (y) against p99 latency (x), one point per policy; the optima as
    horizontal lines; the SLO as a vertical one."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in table:
        if math.isnan(r.latency_p99_ms):
            ax.axhline(r.gco2_per_inference, ls="--", lw=1, color="gray")
            ax.annotate(r.policy, (0.01, r.gco2_per_inference), xycoords=("axes fraction", "data"),
                        fontsize=8, color="gray", va="bottom")  # fmt: skip
            continue
        ax.scatter(r.latency_p99_ms, r.gco2_per_inference, s=30)
        ax.annotate(r.policy, (r.latency_p99_ms, r.gco2_per_inference), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.axvline(slo_ms, color="firebrick", lw=1, ls=":")
    ax.annotate(f"SLO {slo_ms:g} ms", (slo_ms, 1.0), xycoords=("data", "axes fraction"),
                fontsize=8, color="firebrick", va="top", ha="right", rotation=90)  # fmt: skip
    ax.set_xlabel("p99 latency of interactive requests (ms: round trip + queue model)")
    ax.set_ylabel("gCO2 per inference (charged at the hour's ENTSO-E intensity)")
    ax.set_title("Carbon against latency, per policy (lower left is better)")
    ax.set_ylim(bottom=0)
    fig.text(0.01, 0.005, ATTRIBUTION, fontsize=5, color="dimgray", wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def work_map(world: World, runs: Sequence[PolicyRun], path: Path) -> None:
    """One panel per policy: share of the week's work (colour) per zone (rows) and week."""
    plt = _pyplot()
    zones = sorted({s.zone for s in world.scenario.sites})
    index = {z: i for i, z in enumerate(zones)}
    hours = world.hours
    weeks = max(1, hours // 168)
    cols = 2
    rows_n = math.ceil(len(runs) / cols)
    height = rows_n * (0.9 + 0.13 * len(zones)) + 0.8
    fig, axes = plt.subplots(rows_n, cols, figsize=(12, height), squeeze=False, sharex=True,
                             layout="constrained")  # fmt: skip
    image = None
    for k, run in enumerate(runs):
        ax = axes[k // cols][k % cols]
        grid = np.zeros((len(zones), weeks))
        span = weeks * 168 if hours >= 168 else hours
        per_week = run.work[:, :span].reshape(len(world.scenario.sites), weeks, -1).sum(axis=2)
        for s, site in enumerate(world.scenario.sites):
            grid[index[site.zone]] += per_week[s]
        total = grid.sum(axis=0, keepdims=True)
        share = np.divide(grid, total, out=np.zeros_like(grid), where=total > 0)
        box = (0, weeks, len(zones) - 0.5, -0.5)
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest", extent=box)  # fmt: skip
        ax.set_title(run.policy.name, fontsize=9)
        ax.set_yticks(range(len(zones)))
        ax.set_yticklabels(zones, fontsize=5)
    for k in range(len(runs), rows_n * cols):
        axes[k // cols][k % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("week of the year")
    if image is not None:
        fig.colorbar(image, ax=axes, label="share of the week's requests", shrink=0.5)
    fig.suptitle("Where the work went: share of requests per zone and week")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
