"""A fast approximate posterior for exploration: ADVI (mean-field or full-rank) instead of NUTS.

``fit_approximate`` builds exactly the model :func:`~bayes_scaling.inference.fit.fit` builds, maximises
the evidence lower bound with PyMC's ADVI from the same starting values, and returns a
:class:`ScalingFit` whose posterior holds draws of the approximation. Variational posteriors are known
to be too narrow (mean-field ADVI ignores correlations, e.g. the E–A–alpha trade-off inside a family);
the error against NUTS on real data is measured in ``benchmarks/sampling.py`` and reported in
docs/benchmarks.md. The fit is marked as approximate in its diagnostics, which carry no MCMC
convergence figures; decisions should rest on :func:`fit`.
"""

from __future__ import annotations

import time
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from ..data import ScalingData, apply_filters
from ..laws import Law
from ..model import Priors, build_model
from .diagnostics import Diagnostics
from .fit import as_scaling_data, model_spec
from .fitted import ScalingFit, build_idata
from .initial import initial_values
from .sampling import KEEP_VARS

METHODS = ("advi", "fullrank_advi")


def fit_approximate(data: ScalingData | pd.DataFrame, law: str | Law = "chinchilla", priors: Priors | None = None, *,
                    method: str = "advi", iterations: int = 20_000, draws: int = 2000, random_seed: int = 0,
                    min_tokens: float | None = None, fraction: float | None = None,
                    likelihood: str = "normal", extrapolation: float | None = None,
                    noncentering: dict[str, float] | str | None = None) -> ScalingFit:
    """Approximate posterior by ADVI (``method="advi"``, mean-field) or full-rank ADVI.

    ``extrapolation``: a fixed discrepancy sd per decade of compute (None: none); the learned
    discrepancy of :func:`fit` needs a second (inner) fit and is left to it.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    data = apply_filters(as_scaling_data(data), min_tokens=min_tokens, fraction=fraction)
    spec, estimates = model_spec(data, law, priors, likelihood=likelihood, noncentering=noncentering)
    model = build_model(data, spec)
    init = initial_values(data, spec, estimates)
    t0 = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        approx = pm.fit(n=iterations, method=method, random_seed=random_seed, start=init, progressbar=False,
                        obj_optimizer=pm.adam(learning_rate=0.01), total_grad_norm_constraint=100.0)
        idata = approx.sample(draws, random_seed=random_seed)
    secs = time.perf_counter() - t0
    post = idata.posterior[[v for v in KEEP_VARS if v in idata.posterior]]
    loss = np.asarray(approx.hist, dtype=float)
    # PyMC compiles inside pm.fit: its time is part of the optimisation's seconds, not known apart
    info = {"sampler": method, "iterations": iterations, "compile_seconds": float("nan"), "sampling_seconds": secs,
            "draws": draws, "tune": 0, "chains": 1, "random_seed": random_seed, "target_accept": float("nan"),
            "final_negative_elbo": float(np.mean(loss[-500:]))}
    diag = Diagnostics(divergences=0, max_rhat=float("nan"), min_ess_bulk=float("nan"), min_ess_tail=float("nan"),
                       chains=1, draws=draws, sampling_seconds=secs,
                       problems=[f"approximate posterior ({method}): no MCMC convergence diagnostics, intervals are "
                                 "typically too narrow; confirm with bs.fit before a decision"])
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, draws), dtype=bool))},
                       coords={"chain": [0], "draw": np.arange(draws)})
    fitted = ScalingFit(build_idata(az.InferenceData(posterior=post, sample_stats=stats), data, spec, info, diag), spec)
    kappa = np.full(draws, float(extrapolation or 0.0))
    fitted.set_extrapolation(kappa, {"mode": "fixed" if extrapolation else "none", "kappa": float(extrapolation or 0.0)},
                             drift=np.zeros(draws))
    return fitted
