"""Starting points for the sampler: a penalised least-squares fit of each family.

Each family's sampling-scale parameters minimise
``sum(residual^2) / (2 s^2) + sum((theta - m)^2 / (2 v^2))`` (log-loss residuals, ``s = 0.02``,
prior locations ``m`` and scales ``v``) with L-BFGS from the prior mean. The penalty keeps
parameters that the family's data cannot pin down (a single model size) at their prior.
Starting NUTS there shortens warm-up and avoids starting in regions where the law overflows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..data import ScalingData
from ..laws import standardized_inputs
from ..model.spec import ModelSpec


def family_point_estimates(data: ScalingData, spec: ModelSpec, resid_scale: float = 0.02) -> np.ndarray:
    """Penalised least-squares sampling-scale parameters, shape (family, param)."""
    law = spec.law_obj
    pri = spec.priors
    names = list(law.sampling)
    if spec.borrowed is not None:  # penalise towards the borrowed population prior
        m = np.asarray(spec.borrowed["mean"], dtype=float)
        v = np.sqrt(np.diag(np.asarray(spec.borrowed["cov"], dtype=float)))
    else:
        m = np.array([pri.mu[p]["mu"] for p in names])
        v = np.array([pri.mu[p]["sigma"] for p in names])
    out = np.empty((len(spec.families), len(names)))
    for f_i, (z, y) in enumerate(family_inputs(data, spec)):

        def objective(x: np.ndarray) -> float:
            th = dict(zip(names, x))
            with np.errstate(over="ignore", invalid="ignore"):
                r = y - law.log_loss(th, z, ref=spec.reference)
            val = 0.5 * np.sum(r**2) / resid_scale**2 + 0.5 * np.sum(((x - m) / v) ** 2)
            return float(val) if np.isfinite(val) else 1e300

        res = minimize(objective, m.copy(), method="L-BFGS-B")
        out[f_i] = res.x if np.isfinite(res.fun) and res.fun < objective(m) else m
    return out


def family_inputs(data: ScalingData, spec: ModelSpec) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Per family of the spec (in its order): standardised law inputs and log losses."""
    law = spec.law_obj
    df = data.frame
    out = []
    for fam in spec.families:
        sub = df[df["family"] == fam]
        out.append((standardized_inputs(law, {c: sub[c].to_numpy() for c in law.inputs}, spec.reference),
                    np.log(sub["loss"].to_numpy())))
    return out


def family_runs(data: ScalingData, spec: ModelSpec) -> list[list[np.ndarray]]:
    """Per family of the spec (in its order): each run's row positions within :func:`family_inputs`' rows."""
    df = data.frame
    out = []
    for fam in spec.families:
        codes = pd.factorize(df.loc[df["family"] == fam, "run"])[0]
        out.append([np.flatnonzero(codes == c) for c in range(codes.max() + 1)])
    return out


def initial_values(data: ScalingData, spec: ModelSpec, estimates: np.ndarray | None = None,
                   whitening: dict | None = None) -> dict[str, np.ndarray]:
    """Initial values of the model's free variables (natural, untransformed scale).

    ``estimates``: :func:`family_point_estimates` of ``data`` and ``spec`` when already computed.
    ``whitening``: the one the model was built with; its family layer then starts at ``u = 0``, which
    is the whitening's shift (the estimates it was computed from).
    """
    theta = family_point_estimates(data, spec) if estimates is None else estimates
    untreated = [spec.families.index(f) for f in spec.untreated]
    init = {"mu": theta[untreated].mean(axis=0), "sigma_total": np.array(spec.priors.sigma_total.inside(0.01)),
            "seed_share": np.array(spec.priors.seed_share.inside(0.5))}
    if len(untreated) > 1:
        name = "theta" if not spec.treatments else "theta_untreated"
        nc = [list(spec.law_obj.sampling).index(p) for p in spec.noncentred]
        if nc:  # block non-centring: the centred block starts at the estimates, eta at 0
            cc = [k for k in range(theta.shape[1]) if k not in nc]
            if cc:
                init[f"{name}_centred"] = theta[untreated][:, cc]
            init["eta"] = np.zeros((len(untreated), len(nc)))
        elif whitening is not None:
            init[f"{name}_whitened"] = np.zeros_like(np.asarray(whitening["shift"], float))
        else:
            init[name] = theta[untreated]
    if spec.treatments:
        from ..model.hierarchical import treatment_params

        fams, cols = list(spec.families), [list(spec.law_obj.sampling).index(p) for p in treatment_params(spec)]
        init["treatment_shift"] = np.array([theta[fams.index(f), cols] - theta[fams.index(spec.treatments[f]), cols]
                                            for f in spec.treated])
    return init
