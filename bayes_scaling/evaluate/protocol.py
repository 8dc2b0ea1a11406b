"""The Hitchhiker's evaluation protocol: split a family (:mod:`bayes_scaling.data.splits`), score a prediction.

* **scores**: ARE = mean |L_true - L_pred| / L_true over the target points, and the share of target
  points inside the central 50% and 90% predictive intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.splits import (TARGET_LAST_FRACTION, Split, family_sizes, last_fraction_mask, max_k,  # noqa: F401 - the splits it scores
                           split_family)
from ..inference.config import SamplerConfig
from ..model.config import ModelConfig
from ..predict import are

#: the sampler of the evaluations' many fits unless their settings say otherwise: shorter than a user's fit,
#: with a fixed number of draws and the fixed whitening, so that every fit of an evaluation samples alike
#: and a stored evaluation reproduces draw for draw
EVALUATION_SAMPLER = SamplerConfig(draws=500, tune=500, chains=2, until_converged=False, whiten=True)


def evaluation_configs(model: Any, sampler: Any) -> tuple[ModelConfig, SamplerConfig]:
    """The model and sampler of an evaluation's fits: the defaults (:data:`EVALUATION_SAMPLER`'s for the sampler)
    changed by what its settings give (a configuration, or a dict of the settings that differ)."""
    return ModelConfig.coerce(model), EVALUATION_SAMPLER.merged(sampler)


def score(true: np.ndarray, median: np.ndarray, lower50: np.ndarray | None = None, upper50: np.ndarray | None = None,
          lower90: np.ndarray | None = None, upper90: np.ndarray | None = None) -> dict[str, float]:
    """ARE of the point prediction, its signed mean log error ``log_bias`` (> 0: predicted too high) and,
    when intervals are given, their coverage and relative width."""
    true, median = np.asarray(true, float), np.asarray(median, float)
    out = {"are": are(true, median), "n_points": int(len(true)),
           "log_bias": float(np.mean(np.log(median) - np.log(true)))}
    for level, lo, hi in (("50", lower50, upper50), ("90", lower90, upper90)):
        if lo is None or hi is None:
            out[f"cover{level}"] = np.nan
            out[f"width{level}"] = np.nan
            continue
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        out[f"cover{level}"] = float(np.mean((true >= lo) & (true <= hi)))
        out[f"width{level}"] = float(np.mean((hi - lo) / median))
    return out


def lognormal_interval(median: np.ndarray, log_sd: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of a log-normal around ``median`` with log-scale sd ``log_sd``."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    median = np.asarray(median, float)
    return median * np.exp(-z * log_sd), median * np.exp(z * log_sd)


#: the quantiles :func:`score` takes, in its order: median, then the 50% and the 90% interval's ends
SCORED_QUANTILES = (0.5, 0.25, 0.75, 0.05, 0.95)


def draw_bands(log_draws: np.ndarray) -> np.ndarray:
    """(5, point): :data:`SCORED_QUANTILES` of predictive log-loss draws (sample, point), as losses."""
    return np.exp(np.quantile(log_draws, SCORED_QUANTILES, axis=0))


def lognormal_bands(median: np.ndarray, log_sd: float) -> np.ndarray:
    """(5, point): the median and the 50% and 90% log-normal intervals around it, in :func:`score`'s order."""
    median = np.asarray(median, float)
    return np.vstack([median, *lognormal_interval(median, log_sd, 0.5), *lognormal_interval(median, log_sd, 0.9)])

