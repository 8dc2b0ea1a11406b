"""Choosing a data mixture under posterior uncertainty (BiMix law, :class:`~bayes_scaling.mixing.fit.MixingFit`).

``optimize_mixture`` finds the shares r (r_d >= floor, sum r_d = 1) that minimise the posterior mean of
the weighted average validation loss at a target step, sum_d w_d L_d(s, r_d), with the law's expected
loss (no run noise: noise does not depend on r). The simplex is parameterised as
r = floor + (1 - D floor) softmax(z) and z is optimised by L-BFGS with the exact gradient
dL_d / dr_d = -b_d L_d / r_d averaged over posterior draws.

``compare_mixtures`` gives the posterior of that average loss for named mixtures and the probability
that each one is the best, with the fit's mixture-extrapolation discrepancy included: a mixture far
from every trained one is uncertain by more than the law's parameters say. Its distance from the
trained mixtures and the number of domains outside their trained shares are listed.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from . import law
from .data import shares_from


def _weights(fit: Any, weights: Mapping[str, float] | None) -> np.ndarray:
    if weights is None:
        return np.full(len(fit.domains), 1.0 / len(fit.domains))
    w = pd.Series(weights, dtype=float)
    unknown = sorted(set(w.index) - set(fit.domains))
    if unknown or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative over the fitted domains (unknown: {unknown})")
    w = w.reindex(fit.domains).fillna(0.0).to_numpy()
    return w / w.sum()


def _natural_draws(fit: Any, n_draws: int | None, random_seed: int) -> dict[str, np.ndarray]:
    nat = fit.natural()
    n = nat.sizes["sample"]
    idx = np.arange(n) if n_draws is None or n_draws >= n else np.random.default_rng(random_seed).choice(n, n_draws,
                                                                                                      replace=False)
    return {k: nat[k].to_numpy()[idx] for k in law.MIXING_NATURAL}  # (S, D)


def average_loss_draws(fit: Any, shares: Any, step: float, weights: Mapping[str, float] | None = None, *,
                       extrapolate: bool = True, random_seed: int = 0) -> np.ndarray:
    """Posterior draws of sum_d w_d L_d(step, r_d) (expected loss) for one mixture.

    ``extrapolate``: include the fit's mixture-extrapolation discrepancy (zero for a trained mixture,
    growing with the mixture's distance from them; see :meth:`MixingFit.loss_draws`).
    """
    loss = fit.loss_draws(shares, [step], random_seed=random_seed, extrapolate=extrapolate)["expected"]
    return loss.isel(mixture=0, step=0).transpose("sample", "domain").to_numpy() @ _weights(fit, weights)


def optimize_mixture(fit: Any, step: float, *, weights: Mapping[str, float] | None = None, floor: float = 1e-3,
                     n_draws: int | None = 1000, random_seed: int = 0) -> pd.Series:
    """Shares minimising the posterior mean of the weighted average loss at ``step`` (a Series over domains)."""
    dcount = len(fit.domains)
    if not 0 <= floor < 1.0 / dcount:
        raise ValueError(f"floor must be in [0, 1/{dcount}), got {floor!r}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step!r}")
    w = _weights(fit, weights)
    nat = _natural_draws(fit, n_draws, random_seed)
    term = nat["AB"] * step ** (-nat["a"]) + nat["CB"]  # (S, D): the step factor
    b = nat["b"]
    free = 1.0 - dcount * floor

    def shares(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(z - z.max())
        p = e / e.sum()
        return floor + free * p, p

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        r, p = shares(z)
        loss = term * r[None, :] ** (-b)  # (S, D)
        value = float((loss @ w).mean())
        g_r = -(w[None, :] * b * loss / r[None, :]).mean(axis=0)  # d value / d r
        g_p = free * g_r
        return value, p * (g_p - p @ g_p)

    start = np.log(fit.data.proportions().mean(axis=0).loc[fit.domains].to_numpy())
    res = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    r, _ = shares(res.x)
    out = pd.Series(r, index=fit.domains, name="share")
    out.attrs.update(step=step, objective=float(res.fun), converged=bool(res.success), message=str(res.message))
    return out


def compare_mixtures(fit: Any, mixtures: Mapping[str, Any], step: float, *, weights: Mapping[str, float] | None = None,
                     interval: float = 0.9, extrapolate: bool = True) -> pd.DataFrame:
    """Posterior of the weighted average loss at ``step`` for each named mixture; P(best); how far it lies from
    the trained mixtures (domains outside their trained shares, and the mixture distance in decades)."""
    draws = {name: average_loss_draws(fit, sh, step, weights, extrapolate=extrapolate, random_seed=k)
             for k, (name, sh) in enumerate(mixtures.items())}
    stacked = np.stack(list(draws.values()))  # (mixture, sample)
    best = np.bincount(stacked.argmin(axis=0), minlength=len(draws)) / stacked.shape[1]
    trained = pd.DataFrame({"min": fit.meta["share_min"], "max": fit.meta["share_max"]}, index=fit.domains)
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    rows = []
    for k, (name, v) in enumerate(draws.items()):
        r = pd.Series(shares_from(mixtures[name], fit.domains), index=fit.domains)
        outside = [d for d in fit.domains if not trained.loc[d, "min"] <= r[d] <= trained.loc[d, "max"]]
        q = np.quantile(v, [0.5, lo, hi])
        rows.append({"mixture": name, "median": q[0], "lower": q[1], "upper": q[2], "p_best": best[k],
                     "domains_outside_trained_shares": len(outside),
                     "distance_from_trained": float(fit.mixture_distance(mixtures[name])[0])})
    return pd.DataFrame(rows)
