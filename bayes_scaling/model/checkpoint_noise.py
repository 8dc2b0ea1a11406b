"""Checkpoint noise correlated along a run: an Ornstein-Uhlenbeck drift plus white evaluation noise.

Densely logged checkpoints of one run do not scatter independently around the law. Their deviations
drift slowly along training (a ColPret fit's residuals have a lag-1 autocorrelation of 0.77 at
0.1-decade spacing), and on top of that each evaluation has its own jitter (at the 0.002-decade spacing
of a dense log the drift alone would make neighbours nearly equal, which they are not). With
``checkpoint_noise="ou"`` the residual of checkpoint ``i`` of run ``j`` is::

    r_ij = u_j + s_ij + w_ij
    u_j  ~ Normal(0, sigma_seed)                                   the run (seed) effect, as before
    s_ij   Ornstein-Uhlenbeck in x = log10 tokens: stationary sd sigma_obs sqrt(ou_share),
           corr(s_i, s_k) = exp(-|x_i - x_k| / ou_length)          the slow drift
    w_ij ~ Normal(0, sigma_obs sqrt(1 - ou_share))                 evaluation jitter

so ``sigma_obs`` keeps its meaning (the sd of one checkpoint around its run's curve, which is what a
new run's predictive adds) and ``ou_share`` says how much of it is drift. ``ou_share -> 0`` or
``ou_length -> 0`` is the independent model.

The OU process is Markov, so each run's log density is exact and linear in its checkpoints: a Kalman
filter over the state ``(u_j, s_ij)`` in token order, ``phi_i = exp(-(x_i - x_{i-1}) / ou_length)``::

    predict:  s <- phi s,   P_ss <- phi^2 P_ss + (1 - phi^2) so2,   P_us <- phi P_us
    observe:  v = r_i - (m_u + m_s),   S = P_uu + 2 P_us + P_ss + sw2,   log p += log N(v; 0, S)
    update:   K = (P_uu + P_us, P_us + P_ss) / S,   m += K v,   P -= K K^T S

All runs are filtered at once: the rows are laid out as a (checkpoint position, run) grid padded
where a run has fewer checkpoints (:func:`layout`); a padded cell neither moves the state nor adds to
the density. The same step serves pytensor (``pytensor.scan`` in the model) and numpy (the pointwise
log-likelihood of a fit, with leading sample axes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOG_2PI = math.log(2 * math.pi)


def layout(run_index: np.ndarray, log10_tokens: np.ndarray, n_runs: int) -> dict[str, np.ndarray]:
    """The rows as a (position, run) grid in token order within each run.

    ``row`` (int): the row at each cell (0 in padding); ``gap``: log10 tokens since the run's previous
    checkpoint (1.0 where there is none); ``has_prev`` and ``mask`` (0.0 / 1.0): a previous checkpoint
    exists; the cell holds a row. Raises ``ValueError`` for two checkpoints of one run at the same tokens.
    """
    order = np.lexsort((log10_tokens, run_index))
    runs = run_index[order]
    counts = np.bincount(run_index, minlength=n_runs)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(order)) - starts[runs]
    depth = int(counts.max()) if len(counts) else 0
    row = np.zeros((depth, n_runs), dtype=np.int64)
    mask = np.zeros((depth, n_runs))
    gap = np.ones((depth, n_runs))
    row[pos, runs] = order
    mask[pos, runs] = 1.0
    x = log10_tokens[order]
    later = pos > 0
    gap[pos[later], runs[later]] = x[later] - x[np.flatnonzero(later) - 1]
    if (gap[mask > 0] <= 0).any():
        raise ValueError("two checkpoints of one run have the same token count; correlated checkpoint noise "
                         "needs distinct token counts within each run")
    has_prev = mask.copy()
    has_prev[0] = 0.0
    return {"row": row, "gap": gap, "has_prev": has_prev, "mask": mask}


def kalman_step(r: Any, gap: Any, has_prev: Any, mask: Any, m_u: Any, m_s: Any, p_uu: Any, p_us: Any,
                p_ss: Any, length: Any, so2: Any, sw2: Any, xp: Any = np) -> tuple[Any, ...]:
    """One checkpoint position for every run: the filtered state and each run's log-density term."""
    phi = has_prev * xp.exp(-gap / length) + (1.0 - mask)  # 0 at a run's first checkpoint, 1 in padding
    m_s = phi * m_s
    p_ss = phi**2 * p_ss + (1.0 - phi**2) * so2
    p_us = phi * p_us
    v = r - m_u - m_s
    s = p_uu + 2.0 * p_us + p_ss + sw2
    k_u, k_s = (p_uu + p_us) / s, (p_us + p_ss) / s
    term = mask * -0.5 * (LOG_2PI + xp.log(s) + v**2 / s)
    mv, ms = mask * v, mask * s
    return (m_u + k_u * mv, m_s + k_s * mv, p_uu - k_u**2 * ms, p_us - k_u * k_s * ms, p_ss - k_s**2 * ms,
            term)


def noise_scales(sigma_seed: Any, sigma_obs: Any, ou_share: Any) -> tuple[Any, Any, Any]:
    """Variances (seed, OU drift, white jitter) from the model's scales."""
    so2 = sigma_obs**2
    return sigma_seed**2, so2 * ou_share, so2 * (1.0 - ou_share)


def run_covariance(log10_tokens: np.ndarray, sigma_seed: Any, sigma_obs: Any, ou_share: Any = None,
                   ou_length: Any = None) -> np.ndarray:
    """The covariance (..., K, K) of one run's K checkpoint log losses around its law, the scales (...,).

    ``sigma_seed^2`` everywhere (the run's shared deviation) plus ``sigma_obs^2`` times the checkpoint
    noise's correlation: the identity for independent noise (``ou_share`` None), else
    ``ou_share exp(-|x_p - x_q| / ou_length) + (1 - ou_share) I`` with ``x`` the log10 tokens.
    """
    x = np.asarray(log10_tokens, float)
    eye = np.eye(len(x))
    col = lambda v: np.asarray(v, float)[..., None, None]
    corr = eye if ou_share is None else (col(ou_share) * np.exp(-np.abs(x[:, None] - x[None, :]) / col(ou_length))
                                         + (1.0 - col(ou_share)) * eye)
    return col(sigma_seed) ** 2 + col(sigma_obs) ** 2 * corr


def run_loglik_numpy(resid: np.ndarray, grid: dict[str, np.ndarray], sigma_seed: np.ndarray,
                     sigma_obs: np.ndarray, ou_share: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each run's log density, ``resid`` (..., obs) and scales broadcasting as (..., 1) -> (..., run)."""
    ss2, so2, sw2 = noise_scales(sigma_seed, sigma_obs, ou_share)
    lead = resid.shape[:-1]
    n_runs = grid["row"].shape[1]
    zeros = np.zeros((*lead, n_runs))
    state = (zeros, zeros, zeros + ss2, zeros, zeros + so2)
    total = zeros.copy()
    for k in range(grid["row"].shape[0]):
        *state, term = kalman_step(resid[..., grid["row"][k]], grid["gap"][k], grid["has_prev"][k], grid["mask"][k],
                                   *state, length, so2, sw2)
        total = total + term
    return total


def run_loglik_pytensor(resid: Any, row: Any, gap: Any, has_prev: Any, mask: Any, sigma_seed: Any, sigma_obs: Any,
                        ou_share: Any, length: Any) -> Any:
    """Each run's log density in pytensor: a ``scan`` of :func:`kalman_step` over checkpoint positions."""
    import pytensor
    import pytensor.tensor as pt

    ss2, so2, sw2 = noise_scales(sigma_seed, sigma_obs, ou_share)
    zeros = pt.zeros(row.shape[1])
    outputs = pytensor.scan(
        lambda r, g, h, m, mu_, ms_, puu, pus, pss, ell, o2, w2: kalman_step(r, g, h, m, mu_, ms_, puu, pus, pss,
                                                                            ell, o2, w2, xp=pt),
        sequences=[resid[row], gap, has_prev, mask],
        outputs_info=[zeros, zeros, zeros + ss2, zeros, zeros + so2, None],
        non_sequences=[length, so2, sw2], return_list=True, return_updates=False)
    return outputs[-1].sum(axis=0)
