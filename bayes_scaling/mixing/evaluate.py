"""Held-out mixture evaluation of the BiMix law: ours (hierarchical, Bayesian) vs per-domain least squares.

The release's method fits, per domain, L(s, r) = (AB s^-a + CB) r^-b to the four entropy-proxy
mixtures by least squares and predicts the Baseline and DoReMi mixtures. The score is the mean
relative error |L - L_hat| / L over every (domain, step) of a held-out mixture; ours adds the coverage
of its 50% and 90% one-run predictive intervals.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from . import law
from .data import MixingData

#: a, b start values of the multi-start least-squares fit
LS_STARTS = [(a, b) for a in (0.2, 0.5, 1.0) for b in (0.01, 0.05, 0.2)]


def fit_least_squares(data: MixingData) -> pd.DataFrame:
    """Per-domain least-squares fit of (AB, CB, a, b); one row per domain.

    Parameters live on a log scale (positive), residuals are in loss units (the release's curve fit),
    and the best of a grid of starts is kept.
    """
    rows = []
    for dom, g in data.frame.groupby("domain"):
        s, r, y = g["step"].to_numpy(), g["share"].to_numpy(), g["loss"].to_numpy()
        best = None
        for a0, b0 in LS_STARTS:
            cb0 = float(y.min()) * 0.9
            ab0 = max(float(y.max() - y.min()), 1e-3) * float(s.min()) ** a0
            x0 = np.log([ab0, cb0, a0, b0])

            def resid(x, s=s, r=r, y=y):
                ab, cb, a, b = np.exp(x)
                return law.natural_loss(ab, cb, a, b, s, r) - y

            with np.errstate(over="ignore", invalid="ignore"):
                res = least_squares(resid, x0, method="lm", max_nfev=4000)
            if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
                best = res
        ab, cb, a, b = np.exp(best.x)
        rows.append({"domain": dom, "AB": ab, "CB": cb, "a": a, "b": b,
                     "rmse": float(np.sqrt(2 * best.cost / len(y)))})
    return pd.DataFrame(rows).set_index("domain")


def predict_least_squares(params: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Point predictions at the rows of ``frame`` (domain, step, share)."""
    p = params.loc[frame["domain"]]
    return law.natural_loss(p["AB"].to_numpy(), p["CB"].to_numpy(), p["a"].to_numpy(), p["b"].to_numpy(),
                            frame["step"].to_numpy(), frame["share"].to_numpy())


def relative_errors(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(true) - np.asarray(pred)) / np.asarray(true)


def evaluate_heldout(data: MixingData, train: Sequence[str], heldout: Sequence[str], *, likelihood: str = "normal",
                     inner_draws: int = 400, sampler: dict | None = None,
                     interval: float = 0.9) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    """Fit ours (:func:`bayes_scaling.mixing.fit_mixing` with ``likelihood``, ``inner_draws`` and ``sampler``) and least
    squares on ``train`` mixtures; score both on every row of ``heldout``.

    Returns (per-row table, per-mixture summary, our fit).
    """
    from .fit import fit_mixing

    train_data = data.select(list(train))
    ours = fit_mixing(train_data, likelihood=likelihood, inner_draws=inner_draws, sampler=sampler)
    ls = fit_least_squares(train_data)
    steps = np.sort(data.frame["step"].unique())
    props = data.proportions()
    rows = []
    for m in heldout:
        obs = data.frame[data.frame["mixture"] == m]
        draws = ours.loss_draws(props.loc[m], steps)["run"].isel(mixture=0)  # (sample, domain, step)
        d_idx = [ours.domains.index(d) for d in obs["domain"]]
        t_idx = np.searchsorted(steps, obs["step"].to_numpy())
        dr = draws.to_numpy()[:, d_idx, t_idx]  # (sample, row)
        y = obs["loss"].to_numpy()
        q = np.quantile(dr, [0.5, 0.25, 0.75, (1 - interval) / 2, (1 + interval) / 2], axis=0)
        rows.append(pd.DataFrame({
            "mixture": m, "domain": obs["domain"].to_numpy(), "step": obs["step"].to_numpy(), "loss": y,
            "ours": q[0], "least_squares": predict_least_squares(ls, obs), "in50": (y >= q[1]) & (y <= q[2]),
            "in90": (y >= q[3]) & (y <= q[4])}))
    table = pd.concat(rows, ignore_index=True)
    table["re_ours"] = relative_errors(table["loss"], table["ours"])
    table["re_least_squares"] = relative_errors(table["loss"], table["least_squares"])
    summary = table.groupby("mixture", sort=False).agg(
        rows=("loss", "size"), mre_ours=("re_ours", "mean"), mre_least_squares=("re_least_squares", "mean"),
        coverage_50=("in50", "mean"), coverage_90=("in90", "mean")).reset_index()
    return table, summary, ours
