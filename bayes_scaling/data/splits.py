"""A held-out family split the Hitchhiker's way: train on its smallest model sizes, target its largest.

For a held-out family (Choshen, Zhang & Andreas 2024, section 3):

* **train**: its ``k`` smallest model sizes (every run of those sizes), optionally only the first
  ``fraction`` of each run's training, without checkpoints before ``min_tokens`` and thinned to
  ``max_checkpoints`` per run;
* **target**: its largest model size, the checkpoints in the last ``last_fraction`` (30%) of each of its
  runs; for final-loss data (one row per run) that is every run of that size.

Pure data operations: the evaluation protocol scores predictions of these targets
(:mod:`bayes_scaling.evaluate.protocol`), and a borrowed prior is calibrated on them
(:mod:`bayes_scaling.inference.borrow_calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import EmptyFamilyError, UnknownFamilyError
from .container import ScalingData
from .filters import apply_filters

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
