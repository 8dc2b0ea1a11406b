"""Figures of a fit (matplotlib, Agg backend): fitted curves, parameter forest, targets."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .format import human  # noqa: E402


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def fitted_curves(fit, max_sizes: int = 5, interval: float = 0.9) -> bytes:
    """Loss vs tokens per family: data (dots, one colour per size) and the expected-loss band."""
    df = fit.data.frame
    fams = fit.spec.families
    ncol = min(3, len(fams))
    nrow = math.ceil(len(fams) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, fam in zip(axes.ravel(), fams):
        sub = df[df["family"] == fam]
        sizes = np.sort(sub["params"].unique())
        show = sizes if len(sizes) <= max_sizes else sizes[np.linspace(0, len(sizes) - 1, max_sizes).astype(int)]
        cmap = plt.get_cmap("viridis")
        for k, n in enumerate(show):
            col = cmap(k / max(len(show) - 1, 1))
            pts = sub[sub["params"] == n]
            ax.scatter(pts["tokens"], pts["loss"], s=9, color=col, alpha=0.8, label=f"{human(n)}")
            t = np.geomspace(pts["tokens"].min(), pts["tokens"].max() * 1.5, 40)
            p = fit.predict(fam, n, t, interval=interval)
            ax.plot(t, p["expected_median"], color=col, lw=1.2)
            ax.fill_between(t, p["expected_lower"], p["expected_upper"], color=col, alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("training tokens D")
        ax.set_ylabel("loss (nats)")
        ax.legend(fontsize=6, title="params", title_fontsize=6, loc="upper right")
    for ax in axes.ravel()[len(fams):]:
        ax.set_visible(False)
    fig.suptitle(f"Fitted law ({fit.law.formula}) with {interval:.0%} bands of the expected loss", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def parameter_forest(fit, interval: float = 0.95) -> bytes:
    """Population vs family medians and intervals of each natural parameter."""
    tab = fit.parameter_table(interval)
    names = list(fit.law.natural)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 0.35 * (len(fit.spec.families) + 2) + 1.2),
                             sharey=True)
    levels = ["population"] + list(fit.spec.families)
    for ax, p in zip(np.atleast_1d(axes), names):
        sub = tab[tab["parameter"] == p].set_index("level").loc[levels]
        y = np.arange(len(levels))[::-1]
        colors = ["black"] + ["tab:blue"] * (len(levels) - 1)
        ax.hlines(y, sub["lower"], sub["upper"], color=colors)
        ax.scatter(sub["median"], y, color=colors, s=14, zorder=3)
        ax.set_title(p)
        if p in ("A", "B"):
            ax.set_xscale("log")
    np.atleast_1d(axes)[0].set_yticks(np.arange(len(levels))[::-1], levels, fontsize=7)
    fig.suptitle(f"Population (black) and family (blue) parameters, {interval:.0%} intervals", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def targets_plot(table: pd.DataFrame) -> bytes:
    """Predicted loss of the requested targets: expected-loss and one-run intervals."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(table) + 1.4))
    y = np.arange(len(table))[::-1]
    ax.hlines(y + 0.1, table["run_lower"], table["run_upper"], color="tab:orange", lw=3, label="one run")
    ax.hlines(y - 0.1, table["expected_lower"], table["expected_upper"], color="tab:blue", lw=3,
              label="expected loss")
    ax.scatter(table["run_median"], y, color="black", zorder=3, s=12)
    ax.set_yticks(y, table["label"], fontsize=8)
    ax.set_xlabel("predicted loss (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)
