"""Choosing, from the data, which family parameters the model non-centres.

A family parameter that the family's own data pin down much more tightly than the population spread
``tau`` samples best centred; one that the data barely identify (typically the N-exponent when a family
has a few model sizes) sits in a funnel with ``tau`` and samples best non-centred (Papaspiliopoulos,
Roberts & Sköld 2007; Gorinova, Moore & Hoffman 2020 choose per parameter the same way). The rule here
compares, per parameter, the median over families of the data's posterior sd (a Gauss–Newton Laplace
approximation of each family's penalised least-squares fit, residual sd estimated from the fits) with
the prior mean of ``tau``: ``sd > ratio * tau_scale`` -> non-centred. Measured in
``benchmarks/sampling.py`` (docs/benchmarks.md, issue 4).
"""

from __future__ import annotations

import numpy as np

from ..data import ScalingData
from ..model.spec import ModelSpec
from .initial import family_inputs, family_point_estimates

#: a parameter is non-centred when its data sd exceeds this fraction of the prior mean of its tau
NONCENTRING_RATIO = 0.5
#: lower bound of the residual sd used for the Laplace approximation
MIN_RESIDUAL_SD = 0.005


def family_data_sd(data: ScalingData, spec: ModelSpec,
                   estimates: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Laplace posterior sd of each family's sampling-scale parameters (family, param) and the residual sd.

    ``estimates``: :func:`family_point_estimates` of ``data`` and ``spec`` when already computed.
    """
    law = spec.law_obj
    names = list(law.sampling)
    theta = family_point_estimates(data, spec) if estimates is None else estimates
    inputs = family_inputs(data, spec)
    resid = np.concatenate([y - law.log_loss(dict(zip(names, th)), z) for th, (z, y) in zip(theta, inputs)])
    s = max(float(np.sqrt(np.mean(resid**2))), MIN_RESIDUAL_SD)
    v = np.array([spec.priors.mu_scale[p] for p in names])
    eye = np.eye(len(names))
    out = np.empty_like(theta)
    for f_i, (th, (z, _)) in enumerate(zip(theta, inputs)):
        h = 1e-5
        jac = np.stack([(law.log_loss(dict(zip(names, th + h * e)), z) - law.log_loss(dict(zip(names, th - h * e)), z))
                        / (2 * h) for e in eye], axis=1)
        hess = jac.T @ jac / s**2 + np.diag(1.0 / v**2)
        out[f_i] = np.sqrt(np.diag(np.linalg.inv(hess)))
    return out, s


def choose_noncentering(data: ScalingData, spec: ModelSpec, ratio: float = NONCENTRING_RATIO,
                        estimates: np.ndarray | None = None) -> dict[str, float]:
    """``{param: 1.0}`` for each parameter the data identify weakly relative to its population spread."""
    if len(spec.untreated) < 2:  # one family: no family layer, nothing to non-centre
        return {}
    sd, _ = family_data_sd(data, spec, estimates)
    untreated = [spec.families.index(f) for f in spec.untreated]
    med = np.median(sd[untreated], axis=0)
    return {p: 1.0 for p, m in zip(spec.law_obj.sampling, med) if m > ratio * spec.priors.tau_scale[p]}
