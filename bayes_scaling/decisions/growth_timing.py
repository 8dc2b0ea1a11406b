"""When to grow: the G_stack growth-timing guideline as a Bayesian regression.

Du et al. (2024) fit the tokens ``d`` to spend on the small model before stacking it (growth factor
g = 4) as::

    log10(d) = a log10(N) + b / log10(C) + c,    C = 6 N D of the target,
    a = 0.88, b = 163.27, c = -5.74 (the paper's constants, the default)

Here the guideline is a Bayesian linear regression with a conjugate normal-inverse-gamma prior centred
on the paper's constants, so the default prediction is exactly the paper's table (Llama2-7B with 2T
tokens: 11.11B) and one's own growth experiments (rows of N, D and the best d found) update it.

The paper publishes no uncertainty for its constants, so the default interval is an explicit
assumption, not a measurement: in centred coordinates (x = log10 N - 10, 1/log10 C - 1/23) the prior
puts sd 0.1 dex on the guideline's value at N = 1e10, C = 1e23, sd 0.05 on the slope a and 10 on b, and
a residual scatter of the best d around the guideline of 0.1 dex (the paper swept d on a grid about a
factor 2 apart, so the best d is itself known to about +/-0.15 dex). With no data, the 90% interval is
about x/÷ 1.7. Predictions are Student-t on log10 d (the noise scale is uncertain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MissingColumnError, NonFiniteValueError, NonPositiveValueError
from ..laws.flops import training_flops

#: the paper's constants (a, b, c) and growth factor
PAPER_COEFFICIENTS = (0.88, 163.27, -5.74)
PAPER_GROWTH_FACTOR = 4
#: centring of the features: log10 N around 10, 1 / log10 C around 1 / 23
_CENTRE = (10.0, 1.0 / 23.0)
#: prior sd of (a, b, value at the centre) and the prior mean residual sd, in dex
_PRIOR_SD = (0.05, 10.0, 0.1)
_RESIDUAL_SD = 0.1
_PRIOR_SHAPE = 3.0


def guideline_log10(params: Any, tokens: Any, coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS) -> np.ndarray:
    """log10 of the growth tokens d by the guideline formula (C = 6 N D)."""
    a, b, c = coefficients
    n = np.asarray(params, dtype=float)
    return a * np.log10(n) + b / np.log10(training_flops(n, np.asarray(tokens, dtype=float))) + c


def _features(params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Centred design matrix: (log10 N - 10, 1/log10 C - 1/23, 1)."""
    n = np.asarray(params, dtype=float).ravel()
    c = training_flops(n, np.asarray(tokens, dtype=float).ravel())
    return np.column_stack([np.log10(n) - _CENTRE[0], 1.0 / np.log10(c) - _CENTRE[1], np.ones_like(n)])


def _to_centred(coef: tuple[float, float, float]) -> np.ndarray:
    a, b, c = coef
    return np.array([a, b, c + a * _CENTRE[0] + b * _CENTRE[1]])


#: centred -> raw (a, b, c) is linear: raw = T @ centred
_T = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-_CENTRE[0], -_CENTRE[1], 1.0]])


def _positive(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if np.any(~np.isfinite(x)):
        raise NonFiniteValueError(f"{name} has NaN or infinite values; remove or fix those rows")
    if np.any(x <= 0):
        raise NonPositiveValueError(f"{name} must be positive (got min {x.min():g})")
    return x


@dataclass(frozen=True)
class GrowthTiming:
    """Normal-inverse-gamma posterior of the guideline's coefficients (centred coordinates).

    ``mean`` (3,), ``cov_unit`` (3, 3): coefficients ~ N(mean, sigma^2 cov_unit);
    sigma^2 ~ InvGamma(shape, scale). :meth:`paper` is the default prior; :meth:`update` adds data.
    """

    mean: np.ndarray
    cov_unit: np.ndarray
    shape: float
    scale: float
    growth_factor: int = PAPER_GROWTH_FACTOR
    n_obs: int = 0

    @classmethod
    def paper(cls) -> "GrowthTiming":
        """The paper's constants with the default (assumed) uncertainty described in the module."""
        sd = np.array(_PRIOR_SD)
        return cls(mean=_to_centred(PAPER_COEFFICIENTS), cov_unit=np.diag((sd / _RESIDUAL_SD) ** 2),
                   shape=_PRIOR_SHAPE, scale=_RESIDUAL_SD**2 * (_PRIOR_SHAPE - 1.0))

    def update(self, frame: pd.DataFrame, *, params: str = "params", tokens: str = "tokens",
               growth_tokens: str = "growth_tokens") -> "GrowthTiming":
        """The posterior after observing the best growth tokens of some (N, D) targets (one row each)."""
        missing = [c for c in (params, tokens, growth_tokens) if c not in frame.columns]
        if missing:
            raise MissingColumnError(f"growth-timing data lacks column(s) {missing}; it needs one row per target "
                                     f"with its size ({params!r}), tokens ({tokens!r}) and best growth tokens "
                                     f"({growth_tokens!r})")
        n, d = _positive(frame[params], params), _positive(frame[tokens], tokens)
        y = np.log10(_positive(frame[growth_tokens], growth_tokens))
        x = _features(n, d)
        prec0 = np.linalg.inv(self.cov_unit)
        prec = prec0 + x.T @ x
        cov = np.linalg.inv(prec)
        mean = cov @ (prec0 @ self.mean + x.T @ y)
        scale = self.scale + 0.5 * float(y @ y + self.mean @ prec0 @ self.mean - mean @ prec @ mean)
        return GrowthTiming(mean=mean, cov_unit=cov, shape=self.shape + 0.5 * len(y), scale=scale,
                            growth_factor=self.growth_factor, n_obs=self.n_obs + len(y))

    def predict(self, params: Any, tokens: Any, interval: float = 0.9) -> pd.DataFrame:
        """Growth tokens d (the median: the guideline itself under the default) with its interval."""
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        n, d = np.broadcast_arrays(_positive(params, "params"), _positive(tokens, "tokens"))
        x = _features(n, d)
        loc = x @ self.mean
        scale = np.sqrt(self.scale / self.shape * (1.0 + np.einsum("ij,jk,ik->i", x, self.cov_unit, x)))
        q = stats.t.ppf((1 + interval) / 2, df=2 * self.shape)
        return pd.DataFrame({"params": n, "tokens": d, "growth_tokens": 10.0**loc,
                             "lower": 10.0 ** (loc - q * scale), "upper": 10.0 ** (loc + q * scale),
                             "growth_factor": self.growth_factor, "interval": interval})

    def coefficients(self, interval: float = 0.9) -> pd.DataFrame:
        """Marginal posterior of the raw coefficients a, b, c (Student-t)."""
        mean = _T @ self.mean
        cov = _T @ self.cov_unit @ _T.T * self.scale / self.shape
        q = stats.t.ppf((1 + interval) / 2, df=2 * self.shape)
        sd = np.sqrt(np.diag(cov))
        return pd.DataFrame({"coefficient": ["a", "b", "c"], "mean": mean, "lower": mean - q * sd,
                             "upper": mean + q * sd, "sd": sd})
