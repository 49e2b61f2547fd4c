"""A zone-year as a picture: hour of day (UTC) x day of year, coloured by intensity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carbonedge.grid.data import ATTRIBUTION, GridYear

__all__ = ["heatmap"]


def heatmap(gy: GridYear, path: Path) -> None:
    """Write ``path`` (PNG): the year's hourly intensity, hours filled marked below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = len(gy.values) // 24
    grid = gy.values[: days * 24].reshape(days, 24).T  # (24, days)
    filled = gy.fill[: days * 24].reshape(days, 24).T > 0
    fig, ax = plt.subplots(figsize=(12, 4.2))
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="RdYlGn_r",
                      extent=(0, days, 0, 24), interpolation="nearest")  # fmt: skip
    if filled.any():
        ys, xs = np.nonzero(filled)
        ax.scatter(xs + 0.5, ys + 0.5, s=2, c="black", marker="s", label="filled hour")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("day of year")
    ax.set_ylabel("hour of day (UTC)")
    ax.set_yticks(range(0, 25, 6))
    s = gy.stats()
    ax.set_title(
        f"{gy.zone} {gy.year}: hourly average intensity ({gy.factors}), mean "
        f"{s['mean_g_per_kwh']:.0f}, p5-p95 {s['p5_g_per_kwh']:.0f}-{s['p95_g_per_kwh']:.0f} "
        "gCO2/kWh"
    )
    fig.colorbar(image, ax=ax, label="gCO2/kWh", pad=0.01)
    fig.text(0.01, 0.01, ATTRIBUTION, fontsize=6, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
