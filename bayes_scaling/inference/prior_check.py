"""Prior predictive check: what the priors alone say about the losses of the data's own runs.

Draws the model's parameters from their priors (PyMC's ``sample_prior_predictive``; the likelihood is
a Potential and is ignored there) and pushes them through the same numpy predictive as the posterior
(:func:`bayes_scaling.predict.predict_draws`). A weakly informative prior should put almost every
observed loss inside its 95% prior predictive interval while keeping those intervals within a
sensible range (losses of 0.1 to 100 nats, not 1e-10 to 1e10).

>>> chk = bs.inference.prior_predictive_check(data)      # doctest: +SKIP
>>> chk.attrs["coverage"], chk.attrs["median_ratio_upper_lower"]   # doctest: +SKIP
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from ..data import ScalingData
from ..laws import Law
from ..model import ModelSpec, Priors, build_model
from ..predict import as_dataset, posterior_arrays, predict_draws


def prior_predictive_check(data: ScalingData, law: str | Law = "chinchilla", priors: Priors | None = None, *,
                           likelihood: str = "normal", draws: int = 1000, interval: float = 0.95,
                           random_seed: int = 0) -> xr.Dataset:
    """Prior predictive of the one-run loss at every observed row, against the observed loss.

    Returns the predictive Dataset over ``point`` (as :meth:`ScalingFit.predict`) with the observed
    ``loss`` added and attrs ``coverage`` (share of observed losses inside the interval),
    ``median_ratio_upper_lower`` (typical upper/lower interval ratio) and ``priors`` (the prior lines).
    """
    spec = ModelSpec.from_data(data, law, priors, likelihood=likelihood)
    model = build_model(data, spec)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "the effect of Potentials ... is ignored": intended
        names = [v for v in ("mu", "tau", "tau_level", "corr", "theta", "sigma_seed", "sigma_obs", "nu") if v in model.named_vars]
        prior = pm.sample_prior_predictive(draws=draws, var_names=names, random_seed=random_seed).prior
    arrays = posterior_arrays(prior)
    df = data.frame
    cols = {c: df[c].to_numpy(dtype=float) for c in ("params", "tokens", "flops")}
    fam = df["family"].to_numpy(dtype=str)
    res, new_mask = predict_draws(spec.law_obj, arrays, spec.families, spec.reference,
                                  spec.extents, fam, cols, rng=np.random.default_rng(random_seed),
                                  interval=interval, keep_draws=False)
    ds = as_dataset(res, fam, cols, new_mask, interval)
    loss = df["loss"].to_numpy(dtype=float)
    ds["loss"] = ("point", loss)
    inside = (loss >= ds["run_lower"].to_numpy()) & (loss <= ds["run_upper"].to_numpy())
    ds.attrs.update(kind="prior predictive", coverage=float(inside.mean()),
                    median_ratio_upper_lower=float(np.median(ds["run_upper"] / ds["run_lower"])),
                    priors="\n".join(spec.priors.describe()))
    return ds


def prior_check_table(check: xr.Dataset) -> pd.DataFrame:
    """Per family: observed loss range, prior predictive range, and the share covered."""
    df = check[["loss", "run_lower", "run_upper"]].to_dataframe()
    df["inside"] = (df["loss"] >= df["run_lower"]) & (df["loss"] <= df["run_upper"])
    return df.groupby("family").agg(observed_min=("loss", "min"), observed_max=("loss", "max"),
                                    prior_lower=("run_lower", "median"), prior_upper=("run_upper", "median"),
                                    covered=("inside", "mean"))
