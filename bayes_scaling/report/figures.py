"""Figures of a fit (matplotlib, Agg backend), each returned as PNG bytes.

Every figure takes already-computed numbers (a fit's predictions, a summary table): computing
posterior quantities lives in :mod:`bayes_scaling.report.sections`, drawing lives here.
Conventions: log axes for sizes, tokens and FLOPs with human tick labels (1.3B, 50B), the median
as a line, the interval as a shaded band of the same colour, data as dots.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .format import human, sci

HUMAN_TICKS = FuncFormatter(lambda v, _pos: human(v))
SCI_TICKS = FuncFormatter(lambda v, _pos: sci(v))
FAMILY_COLORS = colormaps["tab10"]


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4), **kw):
    """A figure and its axes without pyplot: no global state, no backend switch in the user's session."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncol_max: int = 3):
    ncol = min(ncol_max, n)
    nrow = math.ceil(n / ncol)
    fig, axes = new_figure(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _log_x(ax, flops: bool = False) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(SCI_TICKS if flops else HUMAN_TICKS)


def size_colors(n: int) -> list:
    cmap = colormaps["viridis"]
    return [cmap(0.9 * k / max(n - 1, 1)) for k in range(n)]


def fitted_curves(curves: pd.DataFrame, points: pd.DataFrame, x: str, interval: float, formula: str) -> bytes:
    """Loss against ``x`` ("tokens" or "flops") per family: data dots and expected-loss bands per size.

    ``curves``: family, params, x, median, lower, upper (one row per grid point; with a ``run`` column, one line
    per run);
    ``points``: family, params, x, loss (the observations).
    """
    fams = list(dict.fromkeys(points["family"]))
    fig, axes = _grid(len(fams))
    for ax, fam in zip(axes, fams):
        sub = curves[curves["family"] == fam]
        sizes = np.sort(sub["params"].unique())
        for col, n in zip(size_colors(len(sizes)), sizes):
            c = sub[sub["params"] == n]
            pts = points[(points["family"] == fam) & (points["params"] == n)]
            ax.scatter(pts[x], pts["loss"], s=9, color=col, alpha=0.8, label=human(n))
            for _, line in (c.groupby("run", sort=False) if "run" in c else [(None, c)]):  # a line per run if given
                ax.plot(line[x], line["median"], color=col, lw=1.2)
                ax.fill_between(line[x], line["lower"], line["upper"], color=col, alpha=0.2, lw=0)
        _log_x(ax, flops=x == "flops")
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("training tokens D" if x == "tokens" else "training compute C (FLOPs)")
        ax.set_ylabel("loss (nats)")
        ax.legend(fontsize=6, title="params N", title_fontsize=6, loc="upper right")
    fig.suptitle(f"{formula}: data and {interval:.0%} bands of the expected loss", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def parameter_forest(tab: pd.DataFrame, names: list[str], levels: list[str], interval: float,
                     log_scale: Sequence[str] = ()) -> bytes:
    """Population (black) and family (coloured) medians and intervals of each natural parameter (on a log
    axis for those in ``log_scale``: amplitudes that span decades)."""
    fig, axes = new_figure(1, len(names), figsize=(2.6 * len(names), 0.35 * (len(levels) + 1) + 1.2),
                           sharey=True, squeeze=False)
    y = np.arange(len(levels))[::-1]
    colors = ["black"] + [FAMILY_COLORS(k % 10) for k in range(len(levels) - 1)]
    for ax, p in zip(axes[0], names):
        sub = tab[tab["parameter"] == p].set_index("level").reindex(levels)
        ax.hlines(y, sub["lower"], sub["upper"], color=colors, lw=2)
        ax.scatter(sub["median"], y, color=colors, s=16, zorder=3)
        ax.axvline(sub.loc[levels[0], "median"], color="black", lw=0.6, ls=":")
        ax.set_title(p)
        if p in log_scale:
            ax.set_xscale("log")
    axes[0, 0].set_yticks(y, levels, fontsize=7)
    fig.suptitle(f"Population (black) and family parameters, medians and {interval:.0%} intervals", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def noise_posteriors(draws: dict[str, np.ndarray], interval: float) -> bytes:
    """Posterior histograms of the noise scales (log-loss sd), with the median and interval marked."""
    fig, axes = new_figure(1, len(draws), figsize=(3.4 * len(draws), 2.6), squeeze=False)
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    for k, (ax, (name, v)) in enumerate(zip(axes[0], draws.items())):
        v = np.asarray(v, dtype=float).ravel()
        ax.hist(v, bins=40, color=FAMILY_COLORS(k), alpha=0.75)
        q = np.quantile(v, [lo, 0.5, hi])
        ax.axvline(q[1], color="black", lw=1)
        ax.axvspan(q[0], q[2], color="grey", alpha=0.15, lw=0)
        ax.set_title(f"{name}: {q[1]:.3g} [{q[0]:.3g}, {q[2]:.3g}]", fontsize=8)
        ax.set_yticks([])
        ax.set_xlabel("sd of log loss")
    fig.tight_layout()
    return to_png(fig)


def predictive_check(table: pd.DataFrame, pit: np.ndarray, interval: float) -> bytes:
    """Left: observed loss vs the one-run predictive (median and interval), coloured by family.
    Right: histogram of the probability integral transform, flat when calibrated."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 4))
    for k, (fam, g) in enumerate(table.groupby("family", sort=False)):
        col = FAMILY_COLORS(k % 10)
        a1.vlines(g["loss"], g["lower"], g["upper"], color=col, alpha=0.25, lw=1)
        a1.scatter(g["loss"], g["median"], s=6, color=col, label=fam)
    lims = [min(table["loss"].min(), table["lower"].min()), max(table["loss"].max(), table["upper"].max())]
    a1.plot(lims, lims, color="black", lw=0.8, ls="--")
    a1.set_xlabel("observed loss")
    a1.set_ylabel(f"predicted loss of a run (median, {interval:.0%})")
    a1.legend(fontsize=6, loc="upper left")
    bins = 20
    a2.hist(pit, bins=bins, range=(0, 1), color=FAMILY_COLORS(0), alpha=0.75)
    expect = len(pit) / bins
    band = 2 * math.sqrt(expect * (1 - 1 / bins))
    a2.axhspan(max(expect - band, 0), expect + band, color="grey", alpha=0.2, lw=0, label="uniform, ±2 sd")
    a2.axhline(expect, color="black", lw=0.8)
    a2.set_xlabel("PIT: P(predicted run loss ≤ observed)")
    a2.set_ylabel("observations")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def targets_plot(table: pd.DataFrame) -> bytes:
    """Predicted loss of the requested targets: expected-loss and one-run intervals."""
    fig, ax = new_figure(figsize=(7, 0.55 * len(table) + 1.4))
    y = np.arange(len(table))[::-1]
    ax.hlines(y + 0.1, table["run_lower"], table["run_upper"], color="tab:orange", lw=3, label="one run")
    ax.hlines(y - 0.1, table["expected_lower"], table["expected_upper"], color="tab:blue", lw=3,
              label="expected loss")
    ax.scatter(table["expected_median"], y - 0.1, color="black", zorder=3, s=12)
    ax.scatter(table["run_median"], y + 0.1, color="black", zorder=3, s=12)
    ax.set_yticks(y, table["label"], fontsize=8)
    ax.set_xlabel("predicted loss (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def frontier(table: pd.DataFrame, interval: float) -> bytes:
    """Compute-optimal N*, D* and the loss there against the budget, per family, with bands.

    ``table``: family, budget, quantity (params/tokens/loss), median, lower, upper.
    """
    quantities = [("params", "compute-optimal N*"), ("tokens", "compute-optimal D*"),
                  ("expected_loss", "expected loss at the optimum")]
    fig, axes = new_figure(1, 3, figsize=(13, 3.6))
    for k, fam in enumerate(dict.fromkeys(table["family"])):
        col = FAMILY_COLORS(k % 10)
        for ax, (q, _) in zip(axes, quantities):
            g = table[(table["family"] == fam) & (table["quantity"] == q)]
            ax.plot(g["budget"], g["median"], color=col, lw=1.3, label=fam)
            ax.fill_between(g["budget"], g["lower"], g["upper"], color=col, alpha=0.18, lw=0)
    for ax, (q, title) in zip(axes, quantities):
        _log_x(ax, flops=True)
        if q != "expected_loss":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(HUMAN_TICKS)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("compute budget C (FLOPs)")
    axes[2].set_ylabel("loss (nats)")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"Compute-optimal frontier: medians and {interval:.0%} intervals", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def pit_curves(points: pd.DataFrame, methods: list[str], directions: list[str]) -> bytes:
    """Calibration plot of held-out points: the share below each quantile of their predictive, per method
    (calibrated: the diagonal), one panel per direction. ``points`` has columns direction, method, pit."""
    fig, axes = _grid(max(len(directions), 1), width=4.0, height=3.4)
    grid = np.linspace(0, 1, 101)
    for ax, d in zip(axes, directions):
        sub = points[points["direction"] == d]
        for i, m in enumerate(methods):
            pit = np.sort(sub.loc[sub["method"] == m, "pit"].to_numpy())
            if len(pit):
                ax.plot(grid, np.searchsorted(pit, grid, side="right") / len(pit), label=m, color=FAMILY_COLORS(i))
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_title(f"held out by {d}", fontsize=10)
        ax.set_xlabel("predictive quantile")
        ax.set_ylabel("share of held-out points below")
    axes[0].legend(fontsize=8)
    return to_png(fig)


def accuracy_curves(curves: pd.DataFrame, points: pd.DataFrame, targets: pd.DataFrame, interval: float) -> bytes:
    """Accuracy against compute per task: the runs' final checkpoints (dots), the forecast along each path
    (median line and one-run band) and the targets (bars), chance dashed."""
    tasks = list(dict.fromkeys(curves["task"]))
    fig, axes = _grid(len(tasks), width=3.8, height=3.0, ncol_max=4)
    for ax, task in zip(axes, tasks):
        cur = curves[curves["task"] == task]
        for k, (path, c) in enumerate(cur.groupby("path", sort=False)):
            color = FAMILY_COLORS(k % 10)
            ax.fill_between(c["flops"], c["lower"], c["upper"], color=color, alpha=0.2, lw=0)
            ax.plot(c["flops"], c["median"], color=color, lw=1.2, label=str(path))
        pts = points[points["task"] == task]
        ax.scatter(pts["flops"], pts["accuracy"], s=10, color="k", zorder=3, label="runs (final)")
        tg = targets[targets["task"] == task] if len(targets) else targets
        if len(tg):
            ax.errorbar(tg["flops"], tg["median"], yerr=[tg["median"] - tg["lower"], tg["upper"] - tg["median"]],
                        fmt="D", color="crimson", ms=4, capsize=2, label="targets")
        ax.axhline(float(cur["chance"].iloc[0]), color="grey", ls="--", lw=0.8)
        _log_x(ax, flops=True)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("compute 6ND (FLOPs)")
        ax.set_ylabel(f"accuracy (median, {interval:.0%} one-run band)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)
