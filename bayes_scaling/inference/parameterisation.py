"""Choosing, from the data, how the model parameterises the family layer: whitening and non-centring.

**Whitening** (:func:`family_whitening`, the default of a centred family layer): within one family the
law's parameters are strongly correlated a posteriori (E against the N-amplitude and exponent, each
amplitude against its exponent), and those correlations differ from family to family, which one mass
matrix cannot undo. Each family's parameters are sampled as ``u_f`` with ``theta_f = shift_f + chol_f
u_f``, an affine map from the family's own Laplace approximation; the prior on ``theta`` is unchanged.
The opt-in ``"conditional"`` mode combines that approximation with the sampled population prior at
every step, which also non-centres what the family's data barely identify; its data information counts
a run's checkpoints as sharing the run's deviation, as the model does (:func:`family_gauss_newton`).

**Non-centring**:

A family parameter that the family's own data pin down much more tightly than the population spread
``tau`` samples best centred; one that the data barely identify (typically the N-exponent when a family
has a few model sizes) sits in a funnel with ``tau`` and samples best non-centred (Papaspiliopoulos,
Roberts & Sköld 2007; Gorinova, Moore & Hoffman 2020 choose per parameter the same way). The rule here
compares, per parameter, the median over families of the data's posterior sd (a Gauss–Newton Laplace
approximation of each family's penalised least-squares fit, residual sd estimated from the fits) with
the scale of ``tau``'s prior (its mean for the default Gamma): ``sd > ratio * scale`` -> non-centred. Measured in
``benchmarks/sampling.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from ..data import ScalingData
from ..model.spec import ModelSpec
from .initial import family_inputs, family_point_estimates, family_runs

#: a parameter is non-centred when its data sd exceeds this fraction of the prior mean of its tau
NONCENTRING_RATIO = 0.5
#: lower bound of the residual sd used for the Laplace approximation
MIN_RESIDUAL_SD = 0.005


def residual_noise_split(resid: np.ndarray, runs: list[np.ndarray]) -> tuple[float, float]:
    """Moment estimates of the run (seed) sd and the checkpoint sd from residuals grouped by run.

    ``runs``: the row indices of each run. The checkpoint variance is the pooled within-run variance
    (degrees of freedom: rows minus runs); the run variance is the mean squared run mean less its
    checkpoint share, at least 0. Without a run of two or more rows the two cannot be told apart: the
    result is then ``(sqrt(mean(resid^2)), 0.0)``, all of it counted as run noise.
    """
    within = sum(float(np.sum((resid[r] - resid[r].mean()) ** 2)) for r in runs)
    dof = sum(len(r) - 1 for r in runs)
    if dof == 0:
        return float(np.sqrt(np.mean(resid**2))), 0.0
    obs2 = within / dof
    seed2 = float(np.mean([resid[r].mean() ** 2 - obs2 / len(r) for r in runs]))
    return float(np.sqrt(max(seed2, 0.0))), float(np.sqrt(obs2))


def run_information(jac: np.ndarray, runs: list[np.ndarray], sigma_seed: float, sigma_obs: float) -> np.ndarray:
    """Gauss–Newton information ``sum_r J_r' C_r^-1 J_r`` of rows whose runs share a deviation.

    ``C_r = sigma_obs^2 I + sigma_seed^2 11'`` is a run's covariance in the model (its checkpoints share
    the run's deviation, :mod:`..model.likelihood`), so ``C_r^-1 = (I - c 11') / sigma_obs^2`` with
    ``c = sigma_seed^2 / (sigma_obs^2 + n sigma_seed^2)``. ``sigma_obs = 0`` (runs of one row) counts every
    row as independent with variance ``sigma_seed^2``.
    """
    if sigma_obs == 0.0:
        return jac.T @ jac / sigma_seed**2
    info = np.zeros((jac.shape[1], jac.shape[1]))
    for r in runs:
        g = jac[r].sum(axis=0)
        c = sigma_seed**2 / (sigma_obs**2 + len(r) * sigma_seed**2)
        info += jac[r].T @ jac[r] - c * np.outer(g, g)
    return info / sigma_obs**2


def family_gauss_newton(data: ScalingData, spec: ModelSpec, estimates: np.ndarray | None = None,
                        shared_runs: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Each family's estimates (family, param), the Gauss–Newton Hessian of its data's negative log
    likelihood there (family, param, param), and the residual sd (run and checkpoint noise together, at
    least ``MIN_RESIDUAL_SD``).

    ``shared_runs=False``: every row counts as independent with the pooled residual sd.
    ``shared_runs=True``: a run's checkpoints share its deviation, as in the model
    (:func:`run_information`, with the noise split of the pooled residuals, :func:`residual_noise_split`):
    ten checkpoints of one run then inform a family's N-term about as much as one row does, while the
    D-term is informed at the checkpoint noise. On the synthetic 40-family set the independent count
    overstates the N-term's information and understates the D-term's, each about twofold.
    """
    law = spec.law_obj
    names = list(law.sampling)
    theta = family_point_estimates(data, spec) if estimates is None else estimates
    inputs = family_inputs(data, spec)
    resid = [y - law.log_loss(dict(zip(names, th)), z, ref=spec.reference) for th, (z, y) in zip(theta, inputs)]
    pooled = np.concatenate(resid)
    s = max(float(np.sqrt(np.mean(pooled**2))), MIN_RESIDUAL_SD)
    sigma_seed, sigma_obs = s, 0.0
    runs = family_runs(data, spec) if shared_runs else [[] for _ in resid]  # unused at sigma_obs = 0
    if shared_runs:
        offsets = np.cumsum([0] + [len(r) for r in resid])
        seed, obs = residual_noise_split(pooled, [r + o for rf, o in zip(runs, offsets) for r in rf])
        if obs > 0.0:  # runs of two or more rows: the two noise scales are told apart
            sigma_seed, sigma_obs = seed, max(obs, MIN_RESIDUAL_SD)
    eye = np.eye(len(names))
    hess = np.empty((len(theta), len(names), len(names)))
    for f_i, (th, (z, _)) in enumerate(zip(theta, inputs)):
        h = 1e-5
        jac = np.stack([(law.log_loss(dict(zip(names, th + h * e)), z, ref=spec.reference)
                         - law.log_loss(dict(zip(names, th - h * e)), z, ref=spec.reference))
                        / (2 * h) for e in eye], axis=1)
        hess[f_i] = run_information(jac, runs[f_i], sigma_seed, sigma_obs)
    return theta, hess, s


def family_laplace_covariances(data: ScalingData, spec: ModelSpec, prior_sd: np.ndarray,
                               estimates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Gauss–Newton Laplace covariance of each family's sampling-scale parameters around its estimates.

    ``prior_sd``: the sd (per parameter) of an independent normal prior added to the data's Hessian.
    Returns the estimates (family, param), the covariances (family, param, param) and the residual sd
    (:func:`family_gauss_newton`).
    """
    theta, hess, s = family_gauss_newton(data, spec, estimates)
    return theta, np.linalg.inv(hess + np.diag(1.0 / np.asarray(prior_sd, float) ** 2)), s


def family_data_sd(data: ScalingData, spec: ModelSpec,
                   estimates: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Laplace posterior sd of each family's sampling-scale parameters (family, param) and the residual sd.

    The prior added to the data is the wide one of the population mean (``priors.mu``).
    ``estimates``: :func:`family_point_estimates` of ``data`` and ``spec`` when already computed.
    """
    v = np.array([spec.priors.mu[p]["sigma"] for p in spec.law_obj.sampling])
    _, cov, s = family_laplace_covariances(data, spec, v, estimates)
    return np.sqrt(np.diagonal(cov, axis1=1, axis2=2)), s


#: how :func:`family_whitening` maps each family's sampled ``u`` to its parameters (see there)
WHITENING_MODES = ("fixed", "conditional")


def family_whitening(data: ScalingData, spec: ModelSpec, estimates: np.ndarray | None = None,
                     mode: str = "fixed") -> dict:
    """The affine map from each untreated family's sampled ``u_f`` to its parameters ``theta_f``.

    ``mode="fixed"``: ``theta_f = shift_f + chol_f u_f`` with ``shift`` the family's penalised
    least-squares estimates and ``chol`` the Cholesky factor of its Laplace covariance with the prior
    scale of the population spread (``priors.tau``, :attr:`Prior.scale`) as the prior: constant coefficients, an approximation
    of the family's conditional posterior given the population.

    ``mode="conditional"``: the same Laplace approximation of the family's data (the Gauss–Newton
    Hessian ``H_f`` at ``shift_f``) combined, at every step, with the population prior at the sampled
    ``mu`` and ``Sigma``: ``theta_f = m_f + R_f^-T u_f`` with ``R_f R_f' = H_f + Sigma^-1`` and
    ``m_f = (H_f + Sigma^-1)^-1 (H_f shift_f + Sigma^-1 mu)``. A parameter the family's data pin down is
    then sampled centred and one they barely identify non-centred, each as far as the data say; the map
    depends on ``mu`` and ``Sigma``, and the model adds its log Jacobian (``-sum log diag R_f``).

    Either way the prior of ``theta`` is unchanged, so the posterior is the same
    (:func:`..model.hierarchical.build_model`). Returns ``{"mode", "shift", "chol" | "hessian"}``.
    """
    if mode not in WHITENING_MODES:
        raise ValueError(f"whitening mode must be one of {WHITENING_MODES}, got {mode!r}")
    keep = [spec.families.index(f) for f in spec.untreated]
    if mode == "conditional":
        theta, hess, _ = family_gauss_newton(data, spec, estimates, shared_runs=True)
        return {"mode": mode, "shift": theta[keep], "hessian": hess[keep]}
    t = np.array([spec.priors.tau[p].scale for p in spec.law_obj.sampling])
    theta, cov, _ = family_laplace_covariances(data, spec, t, estimates)
    return {"mode": mode, "shift": theta[keep], "chol": np.linalg.cholesky(cov[keep])}


def choose_noncentering(data: ScalingData, spec: ModelSpec, ratio: float = NONCENTRING_RATIO,
                        estimates: np.ndarray | None = None) -> dict[str, float]:
    """``{param: 1.0}`` for each parameter the data identify weakly relative to its population spread."""
    if len(spec.untreated) < 2:  # one family: no family layer, nothing to non-centre
        return {}
    sd, _ = family_data_sd(data, spec, estimates)
    untreated = [spec.families.index(f) for f in spec.untreated]
    med = np.median(sd[untreated], axis=0)
    return {p: 1.0 for p, m in zip(spec.law_obj.sampling, med) if m > ratio * spec.priors.tau[p].scale}
