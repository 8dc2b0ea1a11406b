"""How far the accuracy link can be trusted beyond the task losses it was fitted on, learned by leave-out.

A sigmoid fitted to small models' checkpoints describes accuracy where they were; a large model's task loss
lies beyond them, where the sigmoid's form, not only its parameters, may be wrong. The forecast therefore
perturbs the link on its logit scale by a discrepancy that grows with the distance beyond the data::

    acc = f + (u - f) sigmoid(k (m - x) + kappa * Delta^growth * z),    z ~ N(0, 1)

(a link whose ceiling the accuracies alone place, the direct and the latent one, is perturbed on the logit of
its share of the way from chance to 1 instead, so that a ceiling fitted too low does not cap the forecast;
:func:`with_discrepancy`)

with ``Delta`` the distance of ``x`` below the lowest fitted task loss of its task (for the direct link and
a latent task loss, whose input is not observed: of the compute beyond the largest fitted, in minus log
compute; :data:`DISTANCE_INPUT`), in units of the task's spread of fitted inputs, ``kappa`` one scale shared
by the tasks of a fit and ``growth`` how the error grows with distance (the prior of the loss law's
discrepancy, LogNormal(0, 0.35) around linear growth). Both are learned from the fit's own data by nested leave-out:

1. At depth ``k`` (1, 2), hold out in each family the runs of its ``k`` largest model sizes (a family needs
   two sizes left) and fit the link to the rest.
2. For each held-out run and task, average over its checkpoints beyond the inner fit's inputs the residual
   of the accuracy against the inner posterior median, and their distance; a run's checkpoints are one piece
   of evidence, not many (they share the run's state).
3. The residual of run ``j`` is ``N(0, s_j^2 + tau^2 + sigma^2 / n_j + (kappa Delta_j g_j)^2)``, with ``s_j``
   the inner posterior sd of the link there, ``tau`` the spread of whole runs about the link inside the
   inner fit's data (:func:`run_spread`: a run that sits above the curve does so at every loss, near or
   far; a latent link draws a new run's seed effect into ``s_j`` instead), ``sigma`` the evaluation noise,
   ``n_j`` the checkpoints averaged and ``g_j`` the slope of the accuracy in the logit the discrepancy acts
   on; the posterior of ``kappa`` (half-normal prior, sd 1) is computed on a grid and sampled.

Without any split (fewer than three model sizes), both keep their priors and the fit's notes say so.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..laws.accuracy import accuracy, sigmoid
from ..model import Prior, Priors

LINK_DEPTHS = (1, 2)
#: the observed input a link's distance beyond its data is measured in: the task loss, or (for the direct
#: link and a latent task loss, whose input is not observed) minus the log compute
DISTANCE_INPUT = {"task_loss": "task_loss", "compute": "compute", "latent": "compute"}
#: links whose ceiling is placed by the accuracies alone (no task loss anchors it at accuracy 1): their error
#: beyond the data acts on the share of the way from chance to 1 (:func:`with_discrepancy`)
FREE_CEILING = ("compute", "latent")
#: the prior of kappa (logit units per spread of fitted inputs)
KAPPA_PRIOR = Prior("HalfNormal", sigma=1.0)
#: the prior of the growth exponent: the loss law's discrepancy prior (bayes_scaling.model.Priors.growth)
GROWTH_PRIOR = Priors.growth
_KAPPA_GRID = np.linspace(0.0, 6.0, 301)
_GROWTH_GRID = np.exp(GROWTH_PRIOR["mu"] + np.linspace(-3, 3, 61) * GROWTH_PRIOR["sigma"])


def held_out_runs(rows: pd.DataFrame, depth: int) -> np.ndarray:
    """Row mask of the runs of each family's ``depth`` largest model sizes (families with fewer than
    ``depth + 2`` sizes hold nothing out)."""
    mask = np.zeros(len(rows), dtype=bool)
    for _, sub in rows.groupby("family"):
        sizes = np.sort(sub["params"].unique())
        if len(sizes) < depth + 2:
            continue
        mask[sub.index[sub["params"].isin(sizes[-depth:])]] = True
    return mask


def distance_below(x: np.ndarray, x_min: float, spread: float) -> np.ndarray:
    """How far ``x`` lies below the lowest fitted input, in spreads (0 inside the data)."""
    return np.maximum(0.0, (x_min - x) / spread)


def run_spread(params: "Callable[[str], dict]", rows: pd.DataFrame, x: np.ndarray) -> dict[str, float]:
    """Per task, the sd of whole runs about the link (posterior median) in ``rows``: the spread of each run's
    mean residual, less what its checkpoints' evaluation noise explains. A new run has an offset like these."""
    out = {}
    rows = rows.assign(x=x)
    for task, sub in rows.groupby("task", sort=False):
        p = params(task)
        med = {k: float(np.median(v)) for k, v in p.items()}
        fitted = accuracy(sub["x"].to_numpy(), med["floor"], med["upper"], med["slope"], med["midpoint"], np)
        g = sub.assign(r=sub["accuracy"].to_numpy() - fitted).groupby("run")["r"].agg(["mean", "size"])
        if len(g) < 2:
            out[task] = 0.0
            continue
        excess = float(np.var(g["mean"], ddof=1) - np.mean(med["sigma_acc"] ** 2 / g["size"]))
        out[task] = float(np.sqrt(max(excess, 0.0)))
    return out


def sigmoid_curve(p: dict, x: np.ndarray, chance: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Draws (sample, point) of the accuracy of link draws ``p`` (``floor``, ``upper``, ``slope``,
    ``midpoint``) at inputs ``x``, and its slope in the discrepancy's logit per point (:func:`logit_curve`)."""
    logit = p["slope"][:, None] * (p["midpoint"][:, None] - x[None, :])
    return logit_curve(p["floor"][:, None], p["upper"][:, None], logit, chance, kind)


def logit_curve(floor: np.ndarray, upper: np.ndarray, logit: np.ndarray, chance: float,
                kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy ``floor + (upper - floor) sigmoid(logit)`` (sample, point) and its slope in the logit the
    discrepancy acts on (:func:`with_discrepancy`) per point, median over draws: how far a discrepancy moves
    the accuracy there."""
    share = sigmoid(logit, np)
    acc = floor + (upper - floor) * share
    if kind in FREE_CEILING:
        rise = _rise(acc, chance)
        return acc, np.median((1 - chance) * rise * (1 - rise), axis=0)
    return acc, np.median((upper - floor) * share * (1 - share), axis=0)


def with_discrepancy(floor: np.ndarray, upper: np.ndarray, logit: np.ndarray, shift: np.ndarray, chance: float,
                     kind: str) -> np.ndarray:
    """The link's accuracy moved by its error beyond the data, ``shift`` in logit units.

    A link whose ceiling is anchored (the task-loss link: accuracy 1 at task loss 0) is moved on its own
    logit, within its floor and ceiling. A link whose ceiling the accuracies alone place (:data:`FREE_CEILING`)
    is moved on the logit of its share of the way from chance to 1: beyond the data the ceiling is part of
    what may be wrong, and a ceiling fitted just above small models' accuracies must not cap the forecast.
    """
    if kind not in FREE_CEILING:
        return floor + (upper - floor) * sigmoid(logit + shift, np)
    rise = _rise(floor + (upper - floor) * sigmoid(logit, np), chance)
    return chance + (1 - chance) * sigmoid(np.log(rise / (1 - rise)) + shift, np)


def _rise(acc: np.ndarray, chance: float) -> np.ndarray:
    """The accuracy's share of the way from chance to 1, kept off 0 and 1 for its logit."""
    return np.clip((acc - chance) / (1 - chance), 1e-12, 1 - 1e-12)


def split_residuals(curve: "Callable[[str, pd.DataFrame], tuple[np.ndarray, np.ndarray]]", held: pd.DataFrame,
                    x: np.ndarray, x_min: dict[str, float], spread: dict[str, float], noise: dict[str, float],
                    runs: dict[str, float]) -> pd.DataFrame:
    """Per held-out run and task, the mean residual beyond the inner fit's inputs and what it is compared with.

    ``x`` is the input each held-out row's distance is measured in (:data:`DISTANCE_INPUT`); ``curve(task,
    rows)`` returns the inner fit's draws (sample, point) of the accuracy of a new run at ``rows`` and its
    slope in the logit (:func:`logit_curve`); ``noise`` one evaluation's noise per task; ``runs`` the spread of
    whole runs about the curve that ``curve`` does not draw (:func:`run_spread`).
    """
    out = []
    held = held.assign(x=x)
    for (run, task), sub in held.groupby(["run", "task"], sort=False):
        d = distance_below(sub["x"].to_numpy(), x_min[task], spread[task])
        beyond = d > 0
        if not beyond.any():
            continue
        acc, grad = curve(task, sub[beyond])
        out.append({"run": run, "task": task, "n": int(beyond.sum()), "distance": float(d[beyond].mean()),
                    "residual": float(np.mean(sub["accuracy"].to_numpy()[beyond] - np.median(acc, axis=0))),
                    "param_sd": float(np.std(acc.mean(axis=1))), "noise": noise[task],
                    "run_sd": runs.get(task, 0.0), "grad": float(grad.mean())})
    return pd.DataFrame(out)


def kappa_posterior(resid: pd.DataFrame, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws of ``(kappa, growth)`` given the split residuals (the priors alone when there are none)."""
    k, g = _KAPPA_GRID[:, None], _GROWTH_GRID[None, :]
    logp = KAPPA_PRIOR.logpdf(k) + GROWTH_PRIOR.logpdf(g)
    if len(resid):
        base = (resid["param_sd"].to_numpy() ** 2 + resid["run_sd"].to_numpy() ** 2
                + resid["noise"].to_numpy() ** 2 / resid["n"].to_numpy())
        dist, grad, r = (resid[c].to_numpy() for c in ("distance", "grad", "residual"))
        var = base + (k[..., None] * dist ** g[..., None] * grad) ** 2  # (kappa, growth, residual)
        logp = logp + np.sum(-0.5 * (np.log(var) + r ** 2 / var), axis=-1)
    w = np.exp(logp - logp.max()).ravel()
    pick = rng.choice(w.size, size=size, p=w / w.sum())
    i, j = np.unravel_index(pick, logp.shape)
    dk = _KAPPA_GRID[1] - _KAPPA_GRID[0]
    return np.abs(_KAPPA_GRID[i] + rng.uniform(-dk / 2, dk / 2, size)), _GROWTH_GRID[j]
