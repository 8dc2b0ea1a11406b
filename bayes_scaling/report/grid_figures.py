"""Figures of an experiment grid's results, like the guide's: ARE heatmaps and ARE against k.

Each function takes the results Dataset of :mod:`bayes_scaling.grid` and returns PNG bytes; the
aggregate over held-out families is the median (the guide's heatmaps show one family at a time or
the average; the median is not carried by one family that fails).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..storage import write_atomically
from .figures import new_figure, to_png


def _label(v: float, axis: str) -> str:
    if axis == "fraction":
        return f"{v:.0%}"
    if axis == "min_tokens":
        return "all" if v == 0 else f"≥{v / 1e9:g}B"
    return f"{v:g}" if isinstance(v, float) else str(v)


def aggregate(ds: xr.Dataset, score: str = "are") -> xr.DataArray:
    """The median of ``score`` over held-out families (NaN where no family has a finished cell)."""
    ok = ds[score].where(ds["status"].astype(str) == "ok")
    return ok.median("heldout", skipna=True)


def are_heatmaps(ds: xr.Dataset, score: str = "are") -> bytes:
    """One heatmap per prior source (columns) and early-checkpoint cut (rows): k across, fraction up."""
    agg = aggregate(ds, score)
    priors, cuts = list(ds["prior"].values), list(ds["min_tokens"].values)
    fig, axes = new_figure(len(cuts), len(priors), figsize=(3.6 * len(priors) + 0.8, 2.8 * len(cuts)),
                           squeeze=False)
    finite = agg.to_numpy()[np.isfinite(agg.to_numpy())]
    vmax = float(np.quantile(finite, 0.95)) if finite.size else 1.0
    im = None
    for r, cut in enumerate(cuts):
        for c, pr in enumerate(priors):
            ax = axes[r, c]
            m = agg.sel(min_tokens=cut, prior=pr).transpose("fraction", "k").to_numpy()
            im = ax.imshow(m * 100, origin="lower", cmap="viridis_r", vmin=0, vmax=vmax * 100, aspect="auto")
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, "—" if not np.isfinite(v) else f"{v:.1%}", ha="center", va="center", fontsize=8,
                        color="white" if np.isfinite(v) and v > 0.6 * vmax else "black")
            ax.set_xticks(range(ds.sizes["k"]), [str(int(k)) for k in ds["k"].values])
            ax.set_yticks(range(ds.sizes["fraction"]), [_label(float(f), "fraction") for f in ds["fraction"].values])
            ax.set_title(f"prior: {pr}, checkpoints: {_label(float(cut), 'min_tokens')}", fontsize=9)
            if r == len(cuts) - 1:
                ax.set_xlabel("k smallest models given")
            if c == 0:
                ax.set_ylabel("fraction of training")
            else:
                ax.tick_params(labelleft=False)
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"median {score.upper()} (%) over held-out families")
    return to_png(fig)


def are_by_k(ds: xr.Dataset) -> bytes:
    """Median ARE against k, one line per prior source (full training, every early-checkpoint cut)."""
    agg = aggregate(ds)
    fig, axes = new_figure(1, ds.sizes["min_tokens"], figsize=(4.2 * ds.sizes["min_tokens"], 3.2), squeeze=False)
    frac = float(ds["fraction"].max())
    for ax, cut in zip(axes[0], ds["min_tokens"].values):
        for pr in ds["prior"].values:
            y = agg.sel(min_tokens=cut, prior=pr, fraction=frac).to_numpy()
            ax.plot(ds["k"].values, y * 100, marker="o", label=str(pr))
        ax.set_xlabel("k smallest models given")
        ax.set_ylabel("median ARE (%)")
        ax.set_title(f"{frac:.0%} of training, checkpoints {_label(float(cut), 'min_tokens')}", fontsize=9)
        ax.set_xticks(ds["k"].values)
        ax.legend(fontsize=8)
    return to_png(fig)


def write_grid_figures(ds: xr.Dataset, out_dir: str | Path) -> list[Path]:
    """Write ``are_heatmaps.png``, ``coverage90_heatmaps.png`` and ``are_by_k.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"are_heatmaps.png": are_heatmaps(ds), "coverage90_heatmaps.png": are_heatmaps(ds, "cover90"),
             "are_by_k.png": are_by_k(ds)}
    for name, png in files.items():
        write_atomically(out / name, png)
    return [out / n for n in files]
