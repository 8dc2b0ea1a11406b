"""Solving the Chinchilla law for decisions: the compute-optimal allocation and the tokens to a loss.

Pure numpy on natural parameters (E, A, alpha, B, beta); every argument broadcasts, so one call
handles all posterior draws at once.

Compute-optimal allocation (Hoffmann et al. 2022, eq. 4) with C = 6 N D: minimising
``E + A N^-alpha + B (C / 6N)^-beta`` over N gives::

    N* = G (C/6)^(beta / (alpha + beta)),   D* = G^-1 (C/6)^(alpha / (alpha + beta)),
    G  = (alpha A / (beta B))^(1 / (alpha + beta))

For any other FLOPs function ``flops(N, D)`` (increasing in D), or any other law of N and D,
:func:`optimum_search` searches log N on a grid (D solved from the budget at each grid size, the same for every draw) and refines
the minimum of each draw by a parabola through the three grid points around it.

Tokens to reach a loss at size N::

    D(L) = (B / (L - E - A N^-alpha))^(1 / beta)      (infinite when L <= E + A N^-alpha)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .flops import FLOPS_PER_PARAM_TOKEN
from .forms import CHINCHILLA

#: grid of the numeric optimum: log10 N from the 6ND optimum -/+ this many decades ...
_GRID_DECADES = 3.0
#: ... with this many points (0.01 decade apart)
_GRID_POINTS = 601


def chinchilla_loss(E: Any, A: Any, alpha: Any, B: Any, beta: Any, params: Any, tokens: Any) -> np.ndarray:
    """L = E + A N^-alpha + B D^-beta (:meth:`Law.natural_loss` of the Chinchilla law, positional)."""
    return CHINCHILLA.natural_loss({"E": E, "A": A, "alpha": alpha, "B": B, "beta": beta},
                                   {"params": np.asarray(params, dtype=float), "tokens": np.asarray(tokens, dtype=float)})


def closed_form_optimum(E: Any, A: Any, alpha: Any, B: Any, beta: Any, flops: Any) -> dict[str, np.ndarray]:
    """N*, D* and the loss there for C = 6 N D (broadcasting over parameters and budgets)."""
    s = alpha + beta
    g = np.power(alpha * A / (beta * B), 1.0 / s)
    c6 = np.asarray(flops, dtype=float) / FLOPS_PER_PARAM_TOKEN
    n = g * np.power(c6, beta / s)
    d = c6 / n
    return {"params": n, "tokens": d, "loss": chinchilla_loss(E, A, alpha, B, beta, n, d)}


def tokens_for_budget(flops_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], params: np.ndarray,
                      budget: float, iterations: int = 200) -> np.ndarray:
    """D such that ``flops_fn(N, D) = budget`` for each N (bisection in log D; increasing in D)."""
    n = np.asarray(params, dtype=float)
    lo, hi = np.full(n.shape, -10.0), np.full(n.shape, 40.0)  # log10 D in [1e-10, 1e40]
    f_lo, f_hi = flops_fn(n, 10.0**lo), flops_fn(n, 10.0**hi)
    if np.any(f_lo > budget) or np.any(f_hi < budget) or np.any(~np.isfinite(f_lo)):
        raise ValueError("flops(N, D) must be finite and increasing in D, reaching the budget for some D > 0")
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = flops_fn(n, 10.0**mid) > budget
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
        if np.max(hi - lo) < 1e-12:
            break
    return 10.0 ** (0.5 * (lo + hi))


def numeric_optimum(E: np.ndarray, A: np.ndarray, alpha: np.ndarray, B: np.ndarray, beta: np.ndarray,
                    budget: float, flops_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """N*, D* and the loss there for one budget and any FLOPs function; parameters are 1-D draws."""
    col = (lambda v: np.asarray(v, dtype=float)[:, None])
    return optimum_search(lambda n, d: chinchilla_loss(col(E), col(A), col(alpha), col(B), col(beta), n, d),
                          budget, flops_fn)


def optimum_search(loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], budget: float,
                   flops_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """N*, D* and the loss there for one budget, any law and any FLOPs function.

    ``loss_fn(n, d)`` returns each draw's loss (draw, G) at sizes and tokens (1, G), or (draw, 1) at (draw, 1)."""
    guess = np.sqrt(budget / (FLOPS_PER_PARAM_TOKEN * 20.0))  # 20 tokens per parameter, only to centre the grid
    log_n = np.log10(guess) + np.linspace(-_GRID_DECADES, _GRID_DECADES, _GRID_POINTS)
    n_grid = 10.0**log_n
    d_grid = tokens_for_budget(flops_fn, n_grid, budget)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = loss_fn(n_grid[None, :], d_grid[None, :])
    loss = np.where(np.isfinite(loss), loss, np.inf)
    k = np.argmin(loss, axis=1)
    if np.any((k == 0) | (k == len(log_n) - 1)):
        raise ValueError(f"the optimum of some draws lies beyond {_GRID_DECADES:g} decades of N from "
                         f"sqrt(C / 120); check the FLOPs function")
    rows = np.arange(len(k))
    y0, y1, y2 = loss[rows, k - 1], loss[rows, k], loss[rows, k + 1]
    denom = y0 - 2 * y1 + y2
    step = log_n[1] - log_n[0]
    shift = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
    n = 10.0 ** (log_n[k] + np.clip(shift, -1, 1) * step)
    d = tokens_for_budget(flops_fn, n, budget)
    return {"params": n, "tokens": d, "loss": loss_fn(n[:, None], d[:, None])[:, 0]}


def tokens_to_loss(E: Any, A: Any, alpha: Any, B: Any, beta: Any, params: Any, loss: Any) -> np.ndarray:
    """Tokens a model of ``params`` parameters needs to reach ``loss``; ``inf`` where it never does."""
    gap = np.asarray(loss, dtype=float) - E - A * np.power(params, -alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.power(B / gap, 1.0 / beta)
    return np.where(gap > 0, d, np.inf)


def speedup(tokens_scratch: Any, tokens_grown: Any) -> np.ndarray:
    """Speedup of a grown model: D_scratch / D_grown - 1 (tokens to the same loss, same size)."""
    return np.asarray(tokens_scratch, dtype=float) / np.asarray(tokens_grown, dtype=float) - 1.0


def token_saving(tokens_scratch: Any, tokens_grown: Any) -> np.ndarray:
    """Fraction of the tokens saved: 1 - D_grown / D_scratch."""
    return 1.0 - np.asarray(tokens_grown, dtype=float) / np.asarray(tokens_scratch, dtype=float)
