"""Which runs sit off the law, and which the robust likelihood down-weights.

For a run of ``n`` checkpoints the residuals ``r`` (log loss minus the law's) have covariance
``sigma_obs^2 I + sigma_seed^2 11^T`` (:mod:`..model.likelihood`), so ``Q = r^T Sigma^-1 r`` is
chi-square with ``n`` degrees of freedom when the run follows the model. Each run gets

- its **tail probability**, the mean of ``P(chi2_n >= Q)`` over the posterior *without that run*
  (leave-one-run-out by Pareto-smoothed importance sampling of the posterior draws): how surprising the
  run is to a model fitted to the others (small for a run stopped before its warm-up ended, read off a
  figure wrongly, or broken). Left out, a broken run cannot hide by inflating the seed noise and pulling
  its family's curve towards itself, as it does in the posterior that includes it;
- under the Student-t likelihood, its **weight**, the posterior mean of ``(nu + n) / (nu + Q)``: the
  factor by which the fit scales the run's influence (1 for a run that follows the law).

A run is an **outlier** when its tail probability is below :data:`FAMILY_WISE_LEVEL` divided by the
number of runs (Bonferroni: across all runs of a model that fits, one false alarm in twenty fits), and
**down-weighted** when its weight is below one half. :func:`outlier_table` lists them, and the fit's
notes name them; ``bs.fit(data, {"likelihood": "auto"})`` refits with the Student-t likelihood when the normal fit
has outliers (:func:`choose_likelihood`).
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from scipy import stats

from ..model.likelihood import run_quadratic, run_sums_numpy

#: family-wise level of the outlier test over all runs of a fit
FAMILY_WISE_LEVEL = 0.05
#: a run whose robust weight is below this counts less than half as much as a run on the law
DOWNWEIGHT = 0.5


def outlier_table(fit: Any) -> pd.DataFrame | None:
    """One row per run: family, size, checkpoints, leave-one-run-out tail probability with its Pareto k-hat
    (above 0.7 the importance sampling is rough, as for a family's only run of its size), robust weight (NaN
    under the normal likelihood), and whether it is an outlier or down-weighted; None for checkpoint noise correlated along
    the run (``"ou"``), whose quadratic form is not the one above."""
    from ..model.hierarchical import row_residuals  # PyMC is imported when first needed

    spec = fit.spec
    if spec.checkpoint_noise != "independent":
        return None
    post = fit.idata.posterior
    resid, arr = row_residuals(post, fit.data, spec)
    s1, s2 = run_sums_numpy(resid, arr["run_index"], len(spec.runs))
    n = arr["n_per_run"]
    q = run_quadratic(s1, s2, n, post["sigma_seed"].to_numpy()[..., None] ** 2,
                      post["sigma_obs"].to_numpy()[..., None] ** 2)
    q = q.reshape(-1, len(spec.runs))
    loglik = fit.idata.log_likelihood["runs"].to_numpy().reshape(-1, len(spec.runs))
    with warnings.catch_warnings():  # a k-hat above 0.7 is reported in the table, not warned about
        warnings.simplefilter("ignore")
        log_w, k_hat = az.psislw(-loglik.T)  # (run, sample): leave-one-run-out importance weights
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    tail = (w * stats.chi2.sf(q.T, np.asarray(n)[:, None])).sum(axis=1) / w.sum(axis=1)
    if "nu" in post:
        nu = post["nu"].to_numpy().reshape(-1, 1)
        weight = ((nu + n) / (nu + q)).mean(axis=0)
    else:
        weight = np.full(len(spec.runs), np.nan)
    runs = fit.data.run_table().loc[spec.runs]
    table = pd.DataFrame({"run": spec.runs, "family": runs["family"].to_numpy(), "params": runs["params"].to_numpy(),
                          "checkpoints": np.asarray(n, dtype=int), "tail_probability": tail, "pareto_k": k_hat,
                          "weight": weight})
    table["outlier"] = table["tail_probability"] < FAMILY_WISE_LEVEL / len(table)
    table["downweighted"] = table["weight"] < DOWNWEIGHT
    return table


def describe_runs(table: pd.DataFrame, column: str, limit: int = 5) -> str:
    """The flagged runs of ``table[column]`` in a few words: id, family and size, the worst first."""
    rows = table[table[column]].sort_values("weight" if column == "downweighted" else "tail_probability")
    shown = [f"{r.run} ({r.family}, N={r.params:.3g}, " + (f"weight {r.weight:.2f})" if column == "downweighted"
                                                          else f"tail probability {r.tail_probability:.1g})")
             for r in rows.head(limit).itertuples()]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(shown) + more


def choose_likelihood(fit: Any) -> dict:
    """What the normal fit's runs say about the likelihood: ``{"chosen", "outliers", "reason"}``. The
    Student-t is chosen when some run is an outlier (and the checkpoint noise allows it)."""
    table = outlier_table(fit)
    if table is None:
        return {"chosen": "normal", "outliers": [],
                "reason": "checkpoint noise correlated along runs has only the normal likelihood"}
    flagged = table[table["outlier"]]
    if flagged.empty:
        return {"chosen": "normal", "outliers": [],
                "reason": f"no run is an outlier under the normal likelihood (family-wise level "
                          f"{FAMILY_WISE_LEVEL:g} over {len(table)} runs)"}
    return {"chosen": "student_t", "outliers": flagged["run"].tolist(),
            "reason": f"{len(flagged)} of {len(table)} runs are outliers under the normal likelihood: "
                      + describe_runs(table, "outlier")}
