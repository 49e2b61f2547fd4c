"""Fig. 2 (latency vs inferences per gCO2) and Fig. 3 (weight sweep of wC) as PNG.

matplotlib is imported here only, with the Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from carbonedge.experiments import paper
from carbonedge.experiments.params import CE_MODES, CE_POLICIES
from carbonedge.experiments.tables import Row


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(row: Row, name: str) -> float:
    ci = row.get(f"{name}_ci95")
    return 0.0 if ci is None or ci != ci else float(ci)


def fig2(
    rows_ii: Sequence[Row],
    model: str,
    path: Path,
    repeats: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    charge: str = "",
) -> None:
    """Latency (ms) vs inferences per gCO2 per configuration: ours (measured) and the paper's.

    Markers are the means over repeats; ``repeats`` (configuration -> (inf/gCO2, latency ms)
    per repeat) are drawn as small dots of the same colour. Error bars are the 95% CIs over
    repeats, drawn only with 3 or more repeats (with 2, Student's t of 12.7 makes them span the
    whole plot; the dots show the spread instead).
    """
    plt = _pyplot()
    fig, (ax, axp) = plt.subplots(1, 2, figsize=(12, 5))
    for i, r in enumerate(rows_ii):
        x, y = r["inf_per_g"], r["latency_ms"]
        if x is None or x != x:
            continue
        config = r["configuration"]
        hollow = "(norm.)" in config
        pts = list((repeats or {}).get(config, ()))
        bars = len(pts) >= 3 or repeats is None
        color = f"C{i % 10}"
        ax.errorbar(
            x,
            y,
            xerr=_err(r, "inf_per_g") if bars else None,
            yerr=_err(r, "latency_ms") if bars else None,
            fmt="s" if hollow else ("D" if "(ours)" in config else "o"),
            color=color,
            mfc="none" if hollow else color,
            ms=8,
            capsize=3,
            label=config,
        )
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ".", color=color, alpha=0.5, ms=5)
    ax.set_xlabel("carbon efficiency (inferences per gCO2)")
    ax.set_ylabel("mean latency per inference (ms)")
    rate = f", charged {charge}" if charge else ""
    ax.set_title(f"ours, measured: {model}{rate} (dots: repeats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    for name, inf_g in paper.INF_PER_G.items():
        lat = paper.TABLE_II[name].latency_ms
        axp.plot(inf_g, lat, "o", color="gray")
        axp.annotate(name, (inf_g, lat), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axp.set_xlabel("carbon efficiency (inferences per gCO2)")
    axp.set_ylabel("latency (ms)")
    axp.set_title("the paper's published values (IV.C, Table II)")
    axp.grid(alpha=0.3)
    fig.suptitle("Fig. 2: latency vs carbon efficiency (right is better on x, lower on y)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig3(rows: Sequence[Row], nodes: Sequence[str], path: Path, charge: str = "") -> None:
    """Weight sweep: gCO2/inf, latency and the node share of Node-Green-like nodes vs wC.

    One line per policy; vertical lines at Table I's wC (Performance 0.05, Balanced 0.30, Green
    0.50), which is also where the paper saw the transition.
    """
    from carbonedge.scheduling import MODES

    modes_wc = [(m, MODES[m].w_c) for m in CE_MODES]
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    styles = {"paper": "o-", "normalized": "s--"}
    for policy in CE_POLICIES:
        pts = sorted((r for r in rows if r["policy"] == policy), key=lambda r: r["w_c"])
        if not pts:
            continue
        wc = [r["w_c"] for r in pts]
        axes[0].plot(wc, [r["gco2_per_inf"] for r in pts], styles[policy], label=policy)
        axes[1].plot(wc, [r["latency_ms"] for r in pts], styles[policy], label=policy)
        for i, n in enumerate(nodes):
            axes[2].plot(
                wc,
                [r[f"{n}_pct"] for r in pts],
                styles[policy],
                color=f"C{i}",
                label=f"{n} ({policy})",
                alpha=1.0 if policy == "paper" else 0.6,
            )
    axes[0].set_ylabel("gCO2 per inference")
    axes[1].set_ylabel("mean latency (ms)")
    axes[2].set_ylabel("% of tasks per node")
    axes[2].set_xlabel("carbon weight wC (other weights: Performance's, scaled to 1 - wC)")
    for ax in axes:
        for _mode, w in modes_wc:
            ax.axvline(w, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no sweep (sweep_points = 0): nothing to label
            ax.legend(fontsize=7, loc="best")
    for mode, w in modes_wc:
        axes[0].annotate(
            mode,
            (w, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            xytext=(2, -10),
            textcoords="offset points",
        )
    rate = f", charged {charge}" if charge else ""
    fig.suptitle(
        f"Fig. 3: weight sweep (measured{rate}); paper: transition at wC >= "
        f"{paper.SWEEP_TRANSITION_WC:.2f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
