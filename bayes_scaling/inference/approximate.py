"""A fast approximate posterior for exploration: ADVI (mean-field or full-rank) instead of NUTS.

``fit_approximate`` builds exactly the model :func:`~bayes_scaling.inference.fit.fit` builds, maximises
the evidence lower bound with PyMC's ADVI from the same starting values, and returns a
:class:`ScalingFit` whose posterior holds draws of the approximation. Variational posteriors are known
to be too narrow (mean-field ADVI ignores correlations; in the whitened coordinates of the default model
the E–A–alpha trade-off inside a family is mostly taken out, that between families and population is not);
the error against NUTS on real data is measured in ``benchmarks/sampling.py`` and reported in
docs/benchmarks.md. The fit is marked as approximate in its diagnostics, which carry no MCMC
convergence figures; decisions should rest on :func:`fit`.

Every approximation is checked by Pareto-smoothed importance sampling (Yao, Vehtari, Simpson and
Gelman 2018, "Yes, but did it work?"): draws from the fitted Gaussian on the unconstrained scale are
weighted by p(theta, y) / q(theta); the shape k-hat of the weights' Pareto tail says how far q is from
the posterior. k-hat > 0.7 (the approximation is unreliable; means may still be close) raises a
``SamplingWarning`` and is listed among the fit's problems; k-hat is in ``fit.sampler_info``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from ..data import ScalingData, apply_filters
from ..errors import SamplingWarning
from ..laws import Law
from ..model import Priors
from .diagnostics import Diagnostics
from .config import SamplerConfig
from .fit import as_scaling_data, model_spec
from .compiled import CompiledModel
from .fitted import ScalingFit, build_idata
from .sampling import KEEP_VARS

METHODS = ("advi", "fullrank_advi")
#: Pareto k-hat above which the approximation is unreliable (Yao et al. 2018)
K_HAT_LIMIT = 0.7


def pareto_k_hat(approx: Any, model: pm.Model, draws: int = 1000, random_seed: int = 0) -> float:
    """PSIS k-hat of a PyMC ADVI approximation against the model's joint density (unconstrained scale).

    Draws theta from q (mean and covariance of the approximation's single group), computes
    log p(theta, y) (with the transforms' Jacobians) - log q(theta), and fits the Pareto tail of the
    importance weights with :func:`arviz.psislw`. < 0.5: q is close to the posterior; 0.5-0.7: usable for
    means; > 0.7: unreliable.
    """
    if len(approx.groups) != 1:
        raise ValueError("pareto_k_hat expects an approximation with one group over every free variable")
    group = approx.groups[0]
    mean = np.asarray(group.mean.eval(), dtype=float)
    cov = np.asarray(group.cov.eval(), dtype=float)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(len(mean)))
    rng = np.random.default_rng(random_seed)
    eps = rng.standard_normal((draws, len(mean)))
    theta = mean + eps @ chol.T
    log_q = (-0.5 * (eps**2).sum(axis=1) - np.log(np.diag(chol)).sum() - 0.5 * len(mean) * np.log(2 * np.pi))
    logp = model.compile_logp(jacobian=True)
    log_p = np.empty(draws)
    for i, t in enumerate(theta):
        log_p[i] = logp({name: t[sl].reshape(shape).astype(dtype) for name, sl, shape, dtype in group.ordering.values()})
    log_w = np.where(np.isfinite(log_p), log_p - log_q, -np.inf)
    _, k_hat = az.psislw(log_w)
    return float(k_hat)


def fit_approximate(data: ScalingData | pd.DataFrame, law: str | Law = "chinchilla", priors: Priors | None = None, *,
                    method: str = "advi", iterations: int = 20_000, draws: int = 2000, random_seed: int = 0,
                    min_tokens: float | None = None, fraction: float | None = None,
                    likelihood: str = "normal", extrapolation: float | None = None,
                    noncentering: dict[str, float] | str | None = None, whiten: bool | str = True) -> ScalingFit:
    """Approximate posterior by ADVI (``method="advi"``, mean-field) or full-rank ADVI.

    ``extrapolation``: a fixed discrepancy sd of the log reducible loss per decade of compute (None: none); the learned
    discrepancy of :func:`fit` needs a second (inner) fit and is left to it. ``whiten``: as in :func:`fit`
    (in whitened coordinates a mean-field approximation no longer ignores the within-family correlations).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    SamplerConfig(whiten=whiten, noncentering=noncentering)  # validates both as fit's sampler= does
    data = apply_filters(as_scaling_data(data), min_tokens=min_tokens, fraction=fraction)
    spec, estimates = model_spec(data, law, priors, likelihood=likelihood, noncentering=noncentering)
    cm = CompiledModel.build(data, spec, estimates, whiten=whiten)
    model, init, whitened = cm.model, cm.initvals, cm.whitened
    t0 = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        approx = pm.fit(n=iterations, method=method, random_seed=random_seed, start=init, progressbar=False,
                        obj_optimizer=pm.adam(learning_rate=0.01), total_grad_norm_constraint=100.0)
        idata = approx.sample(draws, random_seed=random_seed)
        k_hat = pareto_k_hat(approx, model, random_seed=random_seed)
    secs = time.perf_counter() - t0
    post = idata.posterior[[v for v in KEEP_VARS if v in idata.posterior]]
    loss = np.asarray(approx.hist, dtype=float)
    # PyMC compiles inside pm.fit: its time is part of the optimisation's seconds, not known apart
    info = {"sampler": method, "iterations": iterations, "compile_seconds": float("nan"), "sampling_seconds": secs,
            "draws": draws, "tune": 0, "chains": 1, "random_seed": random_seed, "target_accept": float("nan"),
            "final_negative_elbo": float(np.mean(loss[-500:])), "pareto_k_hat": k_hat, "whitened": whitened}
    problems = [f"approximate posterior ({method}): no MCMC convergence diagnostics, intervals are "
                "typically too narrow; confirm with bs.fit before a decision"]
    if not k_hat <= K_HAT_LIMIT:
        problems.append(f"Pareto k-hat {k_hat:.2f} > {K_HAT_LIMIT}: the {method} approximation is far from the "
                        "posterior; its intervals are unreliable and its means may be; fit with bs.fit (NUTS)")
        warnings.warn(f"fit_approximate: {problems[-1]}", SamplingWarning, stacklevel=2)
    diag = Diagnostics(divergences=0, max_rhat=float("nan"), min_ess_bulk=float("nan"), min_ess_tail=float("nan"),
                       chains=1, draws=draws, sampling_seconds=secs, problems=problems)
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, draws), dtype=bool))},
                       coords={"chain": [0], "draw": np.arange(draws)})
    fitted = ScalingFit(build_idata(az.InferenceData(posterior=post, sample_stats=stats), data, spec, info, diag), spec)
    kappa = np.full(draws, float(extrapolation or 0.0))
    return fitted.with_extrapolation(kappa, {"mode": "fixed" if extrapolation else "none",
                                             "kappa": float(extrapolation or 0.0)}, drift=np.zeros(draws))
