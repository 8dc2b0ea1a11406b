"""Likelihood of log loss with the run (seed) effect integrated out.

For run ``j`` with checkpoints ``i = 1..n_j``::

    log y_ij = log L(theta_family(j), N_j, D_ij) + u_j + e_ij,
    u_j ~ Normal(0, sigma_seed)     (one deviation shared by all checkpoints of the run)
    e_ij ~ Normal(0, sigma_obs)     (checkpoint / evaluation noise)

so the residuals ``r_j = log y_j - log L`` of a run are jointly normal with covariance
``sigma_obs^2 I + sigma_seed^2 11^T``. Its log density has a closed form in the run's sums
``S1 = sum r`` and ``S2 = sum r^2``::

    log p(r_j) = -1/2 [ n log 2pi + (n-1) log so2 + log(so2 + n ss2) + (S2 - ss2 S1^2 / (so2 + n ss2)) / so2 ]

Integrating ``u_j`` out exactly removes one latent variable per run (thousands of them for real zoos)
and the funnel between ``sigma_seed`` and the run effects, without changing the model.
The same function serves pytensor (the model) and numpy (pointwise log-likelihood, ``xp=numpy``).

**Robust option** (``likelihood="student_t"``): the run's residual vector follows a multivariate
Student-t with the same scale matrix and ``nu`` degrees of freedom, i.e. the whole run shares one
variance-inflation factor ``w_j ~ InvGamma(nu/2, nu/2)``. A run (or, for final-loss data, a single
point) that sits far off the law is down-weighted instead of dragging the law towards it: the
Bayesian counterpart of the Huber loss used by Hoffmann et al. and Epoch. Its density has the same
ingredients::

    log p(r_j) = lgamma((nu+n)/2) - lgamma(nu/2) - n/2 log(nu pi) - 1/2 log|Sigma| - (nu+n)/2 log(1 + Q/nu)

with ``log|Sigma| = (n-1) log so2 + log(so2 + n ss2)`` and ``Q`` the quadratic form above.

Checkpoint noise correlated along a run (``checkpoint_noise="ou"``) has its own likelihood, a Kalman
filter over each run's checkpoints: :mod:`.checkpoint_noise`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special

LOG_2PI = math.log(2 * math.pi)


def run_marginal_loglik(s1: Any, s2: Any, n: Any, sigma_seed: Any, sigma_obs: Any, xp: Any = np,
                        nu: Any = None) -> Any:
    """Log density of each run's residuals with the run effect integrated out (see module doc).

    ``nu=None``: Gaussian; otherwise the multivariate Student-t with ``nu`` degrees of freedom.
    """
    so2 = sigma_obs**2
    ss2 = sigma_seed**2
    denom = so2 + n * ss2
    quad = run_quadratic(s1, s2, n, ss2, so2)
    log_det = (n - 1) * xp.log(so2) + xp.log(denom)
    if nu is None:
        return -0.5 * (n * LOG_2PI + log_det + quad)
    gammaln = scipy.special.gammaln if xp is np else xp.gammaln
    return (gammaln((nu + n) / 2) - gammaln(nu / 2) - 0.5 * n * xp.log(nu * math.pi) - 0.5 * log_det
            - 0.5 * (nu + n) * xp.log1p(quad / nu))


def run_quadratic(s1: Any, s2: Any, n: Any, ss2: Any, so2: Any) -> Any:
    """``Q = r^T Sigma^-1 r`` of each run's residuals from their sums and the variances ``ss2 = sigma_seed^2``,
    ``so2 = sigma_obs^2``: chi-square with ``n`` degrees of freedom when the run follows the Gaussian model
    (the quadratic form of the module doc)."""
    return (s2 - ss2 * s1**2 / (so2 + n * ss2)) / so2


def gaussian_run_terms(s1: Any, s2: Any, n: Any, ss2: Any, so2: Any) -> tuple[Any, Any, Any, Any, Any]:
    """The Gaussian :func:`run_marginal_loglik` and its derivatives, from the variances ``ss2 = sigma_seed^2``,
    ``so2 = sigma_obs^2``: ``(log p, d/dS1, d/dS2, d/d ss2, d/d so2)``.

    Arithmetic and ``np.log`` only, so that numba compiles it for scalars (:mod:`.fused_rows`) and numpy
    runs it on arrays of runs. With ``denom = so2 + n ss2`` and ``Q`` the quadratic form::

        d/dS1  = ss2 S1 / (denom so2)          d/dS2 = -1 / (2 so2)
        d/dss2 = -(n / denom - S1^2 / denom^2) / 2
        d/dso2 = -((n - 1) / so2 + 1 / denom - S2 / so2^2 + ss2 S1^2 (denom + so2) / (denom so2)^2) / 2
    """
    denom = so2 + n * ss2
    quad = (s2 - ss2 * s1**2 / denom) / so2
    loglik = -0.5 * (n * LOG_2PI + (n - 1) * np.log(so2) + np.log(denom) + quad)
    d_ss2 = -0.5 * (n / denom - s1**2 / denom**2)
    d_so2 = -0.5 * ((n - 1) / so2 + 1 / denom - s2 / so2**2 + ss2 * s1**2 * (denom + so2) / (denom * so2) ** 2)
    return loglik, ss2 * s1 / (denom * so2), -0.5 / so2, d_ss2, d_so2


def run_sums_numpy(residual: np.ndarray, run_index: np.ndarray, n_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-run S1, S2 of residuals with a leading sample axis: ``residual`` (..., obs)."""
    lead = residual.shape[:-1]
    flat = residual.reshape(-1, residual.shape[-1])
    s1 = np.zeros((flat.shape[0], n_runs))
    s2 = np.zeros((flat.shape[0], n_runs))
    np.add.at(s1, (slice(None), run_index), flat)
    np.add.at(s2, (slice(None), run_index), flat**2)
    return s1.reshape(*lead, n_runs), s2.reshape(*lead, n_runs)
