"""The extrapolation-discrepancy term, learned by leave-largest-out inside the training data.

A law fitted on small runs is used 10-100x beyond them in compute, where its form, not only its
parameters, may be wrong. The predictive therefore adds a discrepancy to the log loss::

    delta ~ Normal(0, kappa * Delta),   Delta = max(0, log10 C - log10 C_max(family))

that grows linearly with the decades of compute ``Delta`` beyond the largest compute fitted for that
family (zero inside the data). ``kappa`` (log-loss sd per decade) is learned by leave-largest-out:

1. In each family, hold out the runs whose largest compute lies within ``holdout_decades`` of the
   family's largest compute (a family that would lose every run holds out the late checkpoints
   of its runs instead).
2. Fit the same hierarchical model to the rest (a shorter NUTS run).
3. For each held-out point ``i``, take the residual ``r_i`` of the log loss against the inner
   predictive mean, the inner predictive variance ``v_i`` (parameters + seed + checkpoint noise)
   and its distance ``Delta_i`` from the inner fit's data.
4. The posterior of kappa on a grid: ``prod_i N(r_i | 0, v_i + kappa^2 Delta_i^2)^(w_i) x HalfNormal(kappa | s)``,
   each run weighted ``w_i = 1 / checkpoints`` so that a long curve counts as one run.

Draws of kappa from that posterior enter the final predictive. With nothing held out at a positive
distance, kappa keeps its prior (and the fit says so).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import ScalingData


def holdout_split(data: ScalingData, holdout_decades: float = 0.3) -> tuple[np.ndarray, str]:
    """Boolean mask of held-out rows for leave-largest-out, and a description."""
    df = data.frame
    lc = np.log10(df["flops"].to_numpy())
    run_max = pd.Series(lc).groupby(df["run"].to_numpy()).transform("max").to_numpy()
    fam_max = pd.Series(lc).groupby(df["family"].to_numpy()).transform("max").to_numpy()
    held = run_max >= fam_max - holdout_decades  # whole runs near the top of the family
    for fam in df["family"].unique():
        in_fam = (df["family"] == fam).to_numpy()
        if held[in_fam].all():  # the family would vanish: hold out late checkpoints instead
            late = in_fam & (lc >= fam_max - holdout_decades)
            runs_left = pd.Series(~late[in_fam]).groupby(df.loc[in_fam, "run"].to_numpy()).sum()
            if (runs_left >= 2).all() and late.any():
                held[in_fam] = late[in_fam]
            else:
                held[in_fam] = False
    desc = (f"held out runs within {holdout_decades} decades of each family's largest compute "
            f"({int(held.sum())} of {len(held)} rows)")
    return held, desc


def kappa_posterior(resid: np.ndarray, var: np.ndarray, dist: np.ndarray, weight: np.ndarray,
                    prior_scale: float, n_grid: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Grid posterior of kappa: returns (grid, probabilities)."""
    pos = dist > 0
    hi = 10 * prior_scale
    if pos.any():
        hi = max(hi, 3 * float(np.max(np.abs(resid[pos]) / dist[pos])))
    grid = np.linspace(0.0, hi, n_grid)
    total_var = var[None, :] + (grid[:, None] * dist[None, :]) ** 2
    ll = -0.5 * (np.log(2 * np.pi * total_var) + resid[None, :] ** 2 / total_var)
    logp = (ll * weight[None, :]).sum(axis=1) - 0.5 * (grid / prior_scale) ** 2
    p = np.exp(logp - logp.max())
    return grid, p / p.sum()


def sample_grid(grid: np.ndarray, prob: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from a grid distribution (uniform jitter inside each cell)."""
    idx = rng.choice(len(grid), size=size, p=prob)
    step = grid[1] - grid[0]
    return np.clip(grid[idx] + (rng.random(size) - 0.5) * step, 0.0, None)
