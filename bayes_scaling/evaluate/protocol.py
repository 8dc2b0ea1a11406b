"""The Hitchhiker's evaluation protocol as pure data operations: split a family, score a prediction.

For a held-out family (Choshen, Zhang & Andreas 2024, section 3):

* **train**: its ``k`` smallest model sizes (every run of those sizes), optionally only the first
  ``fraction`` of each run's training, without checkpoints before ``min_tokens`` and thinned to
  ``max_checkpoints`` per run;
* **target**: its largest model size, scored on the checkpoints in the last ``last_fraction`` (30%)
  of each of its runs — for final-loss data (one row per run) that is every run of that size;
* **scores**: ARE = mean |L_true - L_pred| / L_true over the target points, and the share of target
  points inside the central 50% and 90% predictive intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data import ScalingData, apply_filters
from ..errors import EmptyFamilyError, UnknownFamilyError
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

#: the guide scores the last 30% of the largest model's training
TARGET_LAST_FRACTION = 0.3


@dataclass(frozen=True)
class Split:
    """One held-out task: the new family's training data and its target points."""

    family: str
    k: int
    train: ScalingData
    target: pd.DataFrame
    train_sizes: tuple[float, ...]
    target_size: float

    @property
    def decades(self) -> float:
        """How far the target extrapolates: decades of parameters beyond the largest trained size."""
        return float(np.log10(self.target_size / max(self.train_sizes)))


def last_fraction_mask(tokens: np.ndarray, last_fraction: float, run: np.ndarray | None = None) -> np.ndarray:
    """Rows in the last ``last_fraction`` of their run's tokens (one run when ``run`` is None).

    A run with a single row (final-loss data) always keeps it.
    """
    tokens = np.asarray(tokens, float)
    run_max = (pd.Series(tokens).groupby(np.asarray(run)).transform("max").to_numpy() if run is not None
               else np.full(len(tokens), tokens.max()))
    return tokens >= (1 - last_fraction) * run_max * (1 - 1e-12)


def family_sizes(data: ScalingData, family: str) -> np.ndarray:
    """Distinct model sizes (parameters) of ``family``, ascending."""
    if family not in data.families:
        raise UnknownFamilyError(f"family {family!r} is not in the data; it has {data.families}")
    return np.unique(data.frame.loc[data.frame["family"] == family, "params"].to_numpy())


def max_k(data: ScalingData, family: str) -> int:
    """The largest ``k`` the protocol allows: every size but the target."""
    return len(family_sizes(data, family)) - 1


def split_family(data: ScalingData, family: str, k: int, *, fraction: float | None = None,
                 min_tokens: float | None = None, max_checkpoints: int | None = None,
                 last_fraction: float = TARGET_LAST_FRACTION) -> Split:
    """Train on ``family``'s ``k`` smallest sizes, target its largest (see the module docstring).

    Raises :class:`ValueError` when the family has fewer than ``k + 1`` sizes and
    :class:`EmptyFamilyError` when the filters leave nothing to train on.
    """
    sizes = family_sizes(data, family)
    if k < 1 or k >= len(sizes):
        raise ValueError(f"family {family!r} has {len(sizes)} model sizes; k must be 1..{len(sizes) - 1}, got {k}")
    df = data.frame
    in_fam = df["family"].to_numpy() == family
    train_mask = in_fam & np.isin(df["params"].to_numpy(), sizes[:k])
    train = data.subset(train_mask, name="protocol_train",
                        reason=f"held-out family {family!r}: keep its {k} smallest model size(s)", drops_families=True)
    train = apply_filters(train, min_tokens=min_tokens, fraction=fraction, max_checkpoints=max_checkpoints)
    if len(train) == 0:
        raise EmptyFamilyError(f"the filters removed every training row of family {family!r}")
    big = df[in_fam & (df["params"].to_numpy() == sizes[-1])]
    target = big[last_fraction_mask(big["tokens"], last_fraction, big["run"])].copy()
    return Split(family=family, k=k, train=train, target=target,
                 train_sizes=tuple(float(s) for s in sizes[:k]), target_size=float(sizes[-1]))


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

