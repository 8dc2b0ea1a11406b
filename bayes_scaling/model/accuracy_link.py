"""The PyMC model of the downstream link: accuracy against task loss (or a latent law), tasks partially pooled.

Per task ``t`` and checkpoint ``i`` (:func:`~bayes_scaling.laws.accuracy.accuracy` for the curve)::

    acc_i ~ Normal(f_t + (u_t - f_t) sigmoid(k_t (m_t - x_i)), sigma_t)

- ``"task_loss"``: ``x`` is the task loss, and each task also observes accuracy 1 at ``x = 0`` (a right
  answer with all the probability is always chosen); ``"compute"``: ``x`` is minus the log compute (the
  direct link), with no such point.
- the ceiling ``u_t = c_t + (1 - c_t) v_t``, ``v_t ~ Beta(8, 1)`` (most of the way from chance ``c_t`` to 1,
  room below it for ambiguous answers); the floor ``f_t = c_t + (u_t - c_t) w_t``, ``w_t ~ Beta(1, 4)``
  (near chance, above it when small models exploit an answer-length bias or a majority class).
- ``x`` is standardised per task by its median and sd in the data, so the priors are in units of the task's
  observed spread: ``m_t = centre_t + spread_t m*_t``, ``m*_t ~ N(0, 5)`` (:data:`MIDPOINT_SD`).
- the steepness is partially pooled across tasks (how sharply accuracy rises with the task loss is alike
  across tasks once the loss is in units of its spread): ``log k*_t ~ N(mu_k, tau_k)``, ``k_t = k*_t / spread_t``.
- ``sigma_t ~ HalfNormal(0.05)``: one evaluation's noise. A run's lasting offset from the curve is not a
  model term (with many checkpoints per run it trades against the curve's shape); the forecast adds the
  fitted runs' spread about the curve instead (:func:`bayes_scaling.inference.link_extrapolation.run_spread`).

``"latent"`` (no task-loss column): ``x`` is the latent law
:func:`~bayes_scaling.laws.accuracy.latent_difficulty` of each (family, task) pair, its exponents partially
pooled over the pairs (log-normal around 0.3, the usual size of a loss exponent), plus a seed effect per
run and task (``sigma_seed``); the steepness is 1, the upper asymptote free, the midpoint per pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..laws.accuracy import accuracy, latent_difficulty

LINK_INPUTS = ("task_loss", "compute", "latent")

#: sampled variables kept in the posterior, per input kind
LINK_VARS = ("upper", "floor", "slope", "midpoint", "sigma_acc", "slope_mu", "slope_tau")
LATENT_VARS = ("upper", "floor", "midpoint", "sigma_acc", "alpha", "beta", "b", "sigma_seed", "alpha_mu", "beta_mu",
               "alpha_tau", "beta_tau")

UPPER_PRIOR = (8.0, 1.0)
FLOOR_PRIOR = (1.0, 4.0)
SIGMA_ACC_PRIOR = 0.05
#: sd of a task's midpoint around the centre of its observed inputs, in units of their spread
MIDPOINT_SD = 5.0


def link_x(rows: pd.DataFrame, kind: str) -> np.ndarray:
    """The link's input of each row for an observed input kind: the task loss, or minus the log compute."""
    if kind == "task_loss":
        return rows["task_loss"].to_numpy(dtype=float)
    return -np.log(rows["flops"].to_numpy(dtype=float))


def standardisation(rows: pd.DataFrame, tasks: list[str], kind: str) -> dict[str, list[float]]:
    """Per task, the centre (median), spread (sd) and lowest value of the link input in the data."""
    x = link_x(rows, kind)
    out: dict[str, list[float]] = {"centre": [], "spread": [], "lowest": []}
    for t in tasks:
        xt = x[rows["task"].to_numpy() == t]
        sd = float(np.std(xt))
        out["centre"].append(float(np.median(xt)))
        out["spread"].append(sd if sd > 0 else 1.0)
        out["lowest"].append(float(xt.min()))
    return out


def latent_reference(rows: pd.DataFrame) -> dict[str, float]:
    """The reference scales of the latent law: the geometric medians of the fitted sizes and tokens."""
    return {"log_params": float(np.median(np.log(rows["params"]))),
            "log_tokens": float(np.median(np.log(rows["tokens"])))}


def build_link_model(rows: pd.DataFrame, tasks: list[str], chance: dict[str, float], kind: str,
                     scale: dict[str, list[float]] | None = None, groups: list[tuple[str, str]] | None = None,
                     reference: dict[str, float] | None = None) -> pm.Model:
    """The link model of ``rows`` (the link rows of :class:`~bayes_scaling.data.tasks.TaskData`).

    ``scale``: :func:`standardisation` (observed kinds); ``groups`` (family, task) pairs and ``reference``
    (:func:`latent_reference`) for ``kind="latent"``.
    """
    if kind not in LINK_INPUTS:
        raise ValueError(f"kind must be one of {LINK_INPUTS}, got {kind!r}")
    t_idx = pd.Categorical(rows["task"], categories=tasks).codes
    coords = {"task": tasks}
    c = np.array([chance[t] for t in tasks])
    with pm.Model(coords=coords) as model:
        ti = pm.Data("task_index", t_idx.astype("int64"))
        obs = pm.Data("accuracy_observed", rows["accuracy"].to_numpy(dtype=float))
        sigma = pm.HalfNormal("sigma_acc", SIGMA_ACC_PRIOR, dims="task")
        upper = pm.Deterministic("upper", c + (1 - c) * pm.Beta("upper_share", *UPPER_PRIOR, dims="task"),
                                 dims="task")
        floor = pm.Deterministic("floor", c + (upper - c) * pm.Beta("floor_share", *FLOOR_PRIOR, dims="task"),
                                 dims="task")
        if kind == "latent":
            mean = _latent_mean(rows, groups, reference, floor[ti], upper[ti], model)
        else:
            centre, spread = np.asarray(scale["centre"]), np.asarray(scale["spread"])
            x = pm.Data("x", link_x(rows, kind))
            mid_std = pm.Normal("midpoint_std", 0.0, MIDPOINT_SD, dims="task")
            mu_k = pm.Normal("slope_mu", np.log(2.0), 1.0)
            tau_k = pm.HalfNormal("slope_tau", 0.5)
            # centred: each task's many checkpoints identify its own steepness well
            log_k = pm.Normal("log_slope_std", mu_k, tau_k, dims="task")
            slope = pm.Deterministic("slope", pt.exp(log_k) / spread, dims="task")
            mid = pm.Deterministic("midpoint", centre + spread * mid_std, dims="task")
            mean = accuracy(x, floor[ti], upper[ti], slope[ti], mid[ti], pt)
            if kind == "task_loss":  # the anchor: a right answer with all the probability is always chosen
                pm.Normal("anchor", accuracy(0.0, floor, upper, slope, mid, pt), sigma, observed=np.ones(len(tasks)),
                          dims="task")
        pm.Normal("accuracy", mean, sigma[ti], observed=obs)
    return model


def _latent_mean(rows, groups, reference, floor, upper, model):
    """The latent law's accuracy mean (inside ``model``'s context)."""
    run_task = pd.Categorical(rows["run"].astype(str) + "\x00" + rows["task"].astype(str))
    model.add_coord("run_task", list(run_task.categories))
    ri = pm.Data("run_task_index", run_task.codes.astype("int64"))
    pair = list(zip(rows["family"], rows["task"]))
    g_index = {g: i for i, g in enumerate(groups)}
    model.add_coord("pair", [f"{f}:{t}" for f, t in groups])
    gi = pm.Data("pair_index", np.array([g_index[p] for p in pair], dtype="int64"))
    n = pm.Data("log_params", np.log(rows["params"].to_numpy(dtype=float)) - reference["log_params"])
    d = pm.Data("log_tokens", np.log(rows["tokens"].to_numpy(dtype=float)) - reference["log_tokens"])
    exps = {}
    for name in ("alpha", "beta"):
        mu = pm.Normal(f"{name}_mu", np.log(0.3), 0.5)
        tau = pm.HalfNormal(f"{name}_tau", 0.3)
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims="pair")
        exps[name] = pm.Deterministic(name, pt.exp(mu + tau * z), dims="pair")
    b = pm.Normal("b", 0.0, 2.0, dims="pair")
    mid = pm.Normal("midpoint", 0.0, 3.0, dims="pair")
    s_seed = pm.HalfNormal("sigma_seed", 0.1)
    e = pm.Normal("seed_z", 0.0, 1.0, dims="run_task")
    x = latent_difficulty(n, d, exps["alpha"][gi], exps["beta"][gi], b[gi], pt) + s_seed * e[ri]
    return accuracy(x, floor, upper, 1.0, mid[gi], pt)
