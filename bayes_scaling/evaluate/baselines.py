"""Point-estimate baselines that the Bayesian fit is compared with (the Hitchhiker's protocol).

All work on plain arrays in natural units and return natural parameters ``E, A, alpha, B, beta`` of
the Chinchilla law (or, for :func:`last_checkpoint_mean`, a constant loss):

* :func:`huber_fit` — per-family fit of all five parameters by the Huber loss on log loss from a
  grid of initial points with L-BFGS (Hoffmann et al. 2022; Besiroglu et al. 2024, delta = 1e-3).
* :func:`fixed_n_term_fit` — the guide's one-model baseline: log A = 6.2554 and alpha = 0.3527 fixed
  (Muennighoff et al. 2023), log B, log E and beta fitted with the same Huber objective.
* :func:`donor_fit` — borrowing another family's point estimates: its Huber fit with E refitted to
  the new family's data, from the donor that fits those data best.
* :func:`variable_projection_fit` — a grid over the exponents (alpha, beta) with E, A, B, which enter
  linearly, solved by non-negative least squares on the relative loss at each grid point, the best
  point refined by L-BFGS over the exponents (the inner problem re-solved at every step).
* :func:`last_checkpoint_mean` — the mean loss of the last checkpoints of the largest trained model.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.special import logsumexp

from ..laws import CHINCHILLA
from .protocol import TARGET_LAST_FRACTION, last_fraction_mask

#: Muennighoff et al. (2023) N-term, used by the guide's one-model baseline
MUENNIGHOFF_LOG_A = 6.2554
MUENNIGHOFF_ALPHA = 0.3527
HUBER_DELTA = 1e-3

#: initial-point grid of Hoffmann et al. / Epoch (log E, log A, log B, alpha, beta)
_GRID = {"log_E": (-1.0, -0.5, 0.0, 0.5, 1.0), "log_A": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
         "log_B": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0), "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
         "beta": (0.0, 0.5, 1.0, 1.5, 2.0)}


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _log_terms(log_e: float, log_a: float, alpha: float, log_b: float, beta: float,
               log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    return np.stack([np.full_like(log_n, log_e), log_a - alpha * log_n, log_b - beta * log_d])


def _huber_objective(log_n: np.ndarray, log_d: np.ndarray, y: np.ndarray, delta: float, fixed: dict[int, float]):
    """Huber loss of log-loss residuals and its exact gradient in the free coordinates of
    (log E, log A, log B, alpha, beta); ``fixed`` maps coordinate index to a held value."""
    free = [i for i in range(5) if i not in fixed]

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        full = np.empty(5)
        full[free] = x
        for i, v in fixed.items():
            full[i] = v
        log_e, log_a, log_b, alpha, beta = full
        terms = _log_terms(log_e, log_a, alpha, log_b, beta, log_n, log_d)
        pred = logsumexp(terms, axis=0)
        w = np.exp(terms - pred)  # d pred / d term
        r = pred - y
        dr = np.clip(r, -delta, delta)
        grad = np.array([np.sum(dr * w[0]), np.sum(dr * w[1]), np.sum(dr * w[2]),
                         -np.sum(dr * w[1] * log_n), -np.sum(dr * w[2] * log_d)])
        return float(np.sum(_huber(r, delta))), grad[free]

    return f


def _fit(objective, grid: list[tuple[float, ...]]) -> np.ndarray:
    best_x, best_f = None, np.inf
    for x0 in grid:
        res = minimize(objective, np.asarray(x0, dtype=float), jac=True, method="L-BFGS-B")
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f = res.x, res.fun
    if best_x is None:
        raise RuntimeError("no initial point of the grid gave a finite Huber loss")
    return best_x


def huber_fit(params: np.ndarray, tokens: np.ndarray, loss: np.ndarray, delta: float = HUBER_DELTA,
              grid_stride: int = 1) -> dict[str, float]:
    """All five Chinchilla parameters by Huber loss on log loss (grid of starts, L-BFGS).

    ``grid_stride`` > 1 thins the 4,500-point initial grid (every ``grid_stride``-th point) for speed.
    """
    obj = _huber_objective(np.log(params), np.log(tokens), np.log(loss), delta, fixed={})
    grid = list(itertools.product(*_GRID.values()))[::grid_stride]
    log_e, log_a, log_b, alpha, beta = _fit(obj, grid)
    return {"E": float(np.exp(log_e)), "A": float(np.exp(log_a)), "alpha": float(alpha),
            "B": float(np.exp(log_b)), "beta": float(beta)}


def fixed_n_term_fit(params: np.ndarray, tokens: np.ndarray, loss: np.ndarray,
                     delta: float = HUBER_DELTA) -> dict[str, float]:
    """The guide's one-model baseline: A, alpha fixed at Muennighoff's values; E, B, beta fitted."""
    obj = _huber_objective(np.log(params), np.log(tokens), np.log(loss), delta,
                           fixed={1: MUENNIGHOFF_LOG_A, 3: MUENNIGHOFF_ALPHA})
    grid = list(itertools.product(_GRID["log_E"], _GRID["log_B"], _GRID["beta"]))
    log_e, log_b, beta = _fit(obj, grid)
    return {"E": float(np.exp(log_e)), "A": float(np.exp(MUENNIGHOFF_LOG_A)), "alpha": MUENNIGHOFF_ALPHA,
            "B": float(np.exp(log_b)), "beta": float(beta)}


#: the exponent grid of :func:`variable_projection_fit`
VARPRO_EXPONENTS = np.linspace(0.02, 1.5, 38)


def variable_projection_fit(params: np.ndarray, tokens: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """Chinchilla parameters by variable projection: for exponents (alpha, beta), E, A and B are the
    non-negative least-squares solution of ``L = E + A N^-alpha + B D^-beta`` on relative errors (each row
    divided by its loss); the exponents minimise the remaining residual, on :data:`VARPRO_EXPONENTS` and then
    by L-BFGS from the best grid point."""
    n, d, y = (np.asarray(v, float) for v in (params, tokens, loss))
    w = 1.0 / y

    def inner(alpha: float, beta: float) -> tuple[float, np.ndarray]:
        design = np.column_stack([np.ones_like(n), n ** -alpha, d ** -beta]) * w[:, None]
        coef, rnorm = nnls(design, y * w)
        return rnorm, coef

    best = min(((inner(a, b)[0], a, b) for a in VARPRO_EXPONENTS for b in VARPRO_EXPONENTS), key=lambda t: t[0])
    res = minimize(lambda x: inner(*x)[0], np.array(best[1:]), method="L-BFGS-B", bounds=[(1e-3, 3.0)] * 2)
    alpha, beta = (res.x if res.fun <= best[0] else np.array(best[1:]))
    e, a, b = inner(alpha, beta)[1]
    return {"E": float(e), "A": float(a), "alpha": float(alpha), "B": float(b), "beta": float(beta)}


def predict_natural(p: dict[str, float], params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Chinchilla loss E + A N^-alpha + B D^-beta at each point."""
    return CHINCHILLA.natural_loss(p, {"params": np.asarray(params, float), "tokens": np.asarray(tokens, float)})


def last_checkpoint_mean(tokens: np.ndarray, loss: np.ndarray, last_fraction: float = TARGET_LAST_FRACTION,
                         run: np.ndarray | None = None) -> float:
    """Mean loss of the checkpoints in the last ``last_fraction`` of each run's tokens (one run when
    ``run`` is None)."""
    return float(np.asarray(loss, float)[last_fraction_mask(tokens, last_fraction, run)].mean())


def donor_fit(donors: dict[str, dict[str, float]], params: np.ndarray, tokens: np.ndarray, loss: np.ndarray,
              delta: float = HUBER_DELTA) -> tuple[dict[str, float], str]:
    """Borrow another family's point estimates: the guide's transfer baseline.

    Each donor's ``A, alpha, B, beta`` are kept and only ``E`` is refitted (Huber on log loss) to the
    new family's data; the donor whose refitted law fits that data best is returned with its name.
    """
    if not donors:
        raise ValueError("donor_fit needs at least one donor family's parameters")
    log_n, log_d, y = np.log(params), np.log(tokens), np.log(loss)
    best: tuple[float, dict[str, float], str] | None = None
    for name, p in donors.items():
        fixed = {1: np.log(p["A"]), 2: np.log(p["B"]), 3: p["alpha"], 4: p["beta"]}
        obj = _huber_objective(log_n, log_d, y, delta, fixed=fixed)
        x = _fit(obj, [(v,) for v in _GRID["log_E"]])
        value = obj(x)[0]
        if best is None or value < best[0]:
            best = (value, dict(p, E=float(np.exp(x[0]))), name)
    assert best is not None
    return best[1], best[2]


def log_residual_scale(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Robust sd (1.4826 x MAD) of log residuals: the error bar a least-squares fitter would quote."""
    r = np.log(np.asarray(observed, float)) - np.log(np.asarray(predicted, float))
    return float(1.4826 * np.median(np.abs(r - np.median(r))))
