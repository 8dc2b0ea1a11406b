"""Filters from "A Hitchhiker's Guide to Scaling Law Estimation" as explicit options.

Every filter returns a new :class:`ScalingData` whose ``dropped`` records how many rows it
removed and why; a family emptied by a filter raises :class:`EmptyFamilyError`.
"""

from __future__ import annotations

import numpy as np

from .container import ScalingData

#: the guide drops checkpoints before 10B tokens ("early checkpoints hurt")
GUIDE_MIN_TOKENS = 10e9


def drop_early_checkpoints(data: ScalingData, min_tokens: float = GUIDE_MIN_TOKENS) -> ScalingData:
    """Drop rows trained on fewer than ``min_tokens`` tokens (the guide's default: 10B)."""
    if not np.isfinite(min_tokens) or min_tokens < 0:
        raise ValueError(f"min_tokens must be a non-negative number, got {min_tokens!r}")
    keep = data.frame["tokens"].to_numpy() >= min_tokens
    return data.subset(keep, name="min_tokens", reason=f"checkpoints before {min_tokens:.3g} tokens")


def keep_fraction_of_run(data: ScalingData, fraction: float) -> ScalingData:
    """Keep only each run's checkpoints within the first ``fraction`` of its tokens.

    Simulates a partially trained run: with ``fraction=0.3`` a run trained to 1T tokens keeps
    the checkpoints at or below 300B tokens.
    """
    if not (0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    df = data.frame
    run_max = df.groupby("run")["tokens"].transform("max").to_numpy()
    keep = df["tokens"].to_numpy() <= fraction * run_max * (1 + 1e-12)
    return data.subset(keep, name="fraction_of_run",
                       reason=f"checkpoints beyond the first {fraction:.0%} of each run's tokens")


def apply_filters(data: ScalingData, *, min_tokens: float | None = None,
                  fraction: float | None = None) -> ScalingData:
    """Apply the optional filters in a fixed order (fraction of run, then min tokens)."""
    if fraction is not None and fraction < 1:
        data = keep_fraction_of_run(data, fraction)
    if min_tokens is not None and min_tokens > 0:
        data = drop_early_checkpoints(data, min_tokens)
    return data
