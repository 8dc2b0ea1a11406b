"""The extrapolation-discrepancy term, learned by leave-largest-out inside the training data.

A law fitted on small runs is used 10-100x beyond them in compute, where its form, not only its
parameters, may be wrong. The predictive therefore adds a discrepancy to the log loss::

    delta ~ Normal(drift * Delta, kappa * Delta),   Delta = max(0, log10 C - log10 C_max(family))

that grows linearly with the decades of compute ``Delta`` beyond the largest compute fitted for that
family (zero inside the data). ``kappa`` (log-loss sd per decade) is the size of the law's
extrapolation error; ``drift`` (log-loss per decade) its systematic direction: a law that keeps
over-predicting the loss of larger runs (the usual case when the loss curve still bends down) does so
in the held-out data too. Both are learned by leave-largest-out:

1. In each family, hold out the runs whose largest compute lies within ``holdout_decades`` of the
   family's largest compute (a family that would lose every run holds out the late checkpoints
   of its runs instead).
2. Fit the same hierarchical model to the rest (a shorter NUTS run).
3. For each held-out point ``i``, take the residual ``r_i`` of the log loss against the inner
   predictive mean, the inner predictive variance ``v_i`` (parameters + seed + checkpoint noise)
   and its distance ``Delta_i`` from the inner fit's data.
4. The joint posterior of (kappa, drift) on a grid:
   ``prod_i N(r_i | drift Delta_i, v_i + kappa^2 Delta_i^2)^(w_i) x HalfNormal(kappa | s_k) x Normal(drift | 0, s_d)``,
   each run weighted ``w_i = 1 / checkpoints`` so that a long curve counts as one run.

Draws of (kappa, drift) from that posterior enter the final predictive. With nothing held out at a
positive distance, both keep their priors (and the fit says so).
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


def discrepancy_posterior(resid: np.ndarray, var: np.ndarray, dist: np.ndarray, weight: np.ndarray,
                          kappa_scale: float, drift_scale: float | None, size: int, rng: np.random.Generator,
                          n_grid: int = 241, return_evidence: bool = False):
    """Draws of (kappa, drift) from their grid posterior given held-out residuals.

    ``r_i ~ Normal(drift * Delta_i, sqrt(v_i + kappa^2 Delta_i^2))`` with weights ``w_i``;
    priors ``kappa ~ HalfNormal(kappa_scale)``, ``drift ~ Normal(0, drift_scale)``;
    ``drift_scale=None``: a centred discrepancy, drift = 0 (for a distance without a direction).
    ``return_evidence``: also return the log marginal likelihood of the residuals (the grid sum of
    likelihood x normalised priors), to compare forms of ``Delta`` on the same residuals.
    """
    pos = dist != 0
    centred = drift_scale is None
    # the grids reach well past the priors and past the steepest residual-per-distance seen
    slope = float(np.max(np.abs(resid[pos]) / np.abs(dist[pos]))) if pos.any() else 0.0
    kappa = np.linspace(0.0, max(10 * kappa_scale, 3 * slope), n_grid)
    if centred:
        drift = np.zeros(1)
    else:
        m_hi = max(5 * drift_scale, 3 * slope)
        drift = np.linspace(-m_hi, m_hi, n_grid)
    total_var = var[None, :] + (kappa[:, None] * dist[None, :]) ** 2  # (K, n)
    logp = np.empty((n_grid, drift.size))
    for j, m in enumerate(drift):
        r = resid - m * dist
        ll = -0.5 * (np.log(2 * np.pi * total_var) + r[None, :] ** 2 / total_var)
        logp[:, j] = (ll * weight[None, :]).sum(axis=1)
    # log prior densities, normalised: HalfNormal 2 / (s sqrt(2 pi)), Normal 1 / (s sqrt(2 pi))
    logp += -0.5 * (kappa[:, None] / kappa_scale) ** 2 + np.log(2.0) - 0.5 * np.log(2 * np.pi) - np.log(kappa_scale)
    log_cell = np.log(kappa[1] - kappa[0])
    if not centred:
        logp += -0.5 * (drift[None, :] / drift_scale) ** 2 - 0.5 * np.log(2 * np.pi) - np.log(drift_scale)
        log_cell += np.log(drift[1] - drift[0])
    top = logp.max()
    p = np.exp(logp - top).ravel()
    idx = rng.choice(p.size, size=size, p=p / p.sum())
    ik, im = np.unravel_index(idx, logp.shape)
    jitter = rng.random((2, size)) - 0.5  # uniform inside each grid cell
    k = np.clip(kappa[ik] + jitter[0] * (kappa[1] - kappa[0]), 0.0, None)
    m = drift[im] if centred else drift[im] + jitter[1] * (drift[1] - drift[0])
    if not return_evidence:
        return k, m
    return k, m, float(top + np.log(p.sum()) + log_cell)
