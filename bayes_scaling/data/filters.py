"""Filters from "A Hitchhiker's Guide to Scaling Law Estimation" as explicit options.

Every filter returns a new :class:`ScalingData` whose ``dropped`` records how many rows it
removed and why; a family emptied by a filter raises :class:`EmptyFamilyError`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    keep = share_of_run(data.frame) <= fraction * (1 + 1e-12)
    return data.subset(keep, name="fraction_of_run",
                       reason=f"checkpoints beyond the first {fraction:.0%} of each run's tokens")


def drop_start_of_run(data: ScalingData, share: float) -> ScalingData:
    """Drop each run's checkpoints within the first ``share`` of its tokens (its warm-up and the steep
    early phase, which sit off a law fitted to the rest); a run's last checkpoint is always kept."""
    if not (0 <= share < 1):
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    keep = share_of_run(data.frame) >= share
    return data.subset(keep, name="start_of_run", reason=f"checkpoints within the first {share:.0%} of each run's tokens")


def share_of_run(frame: pd.DataFrame, by: tuple[str, ...] = ("run",)) -> np.ndarray:
    """Each row's tokens as a share of its run's last checkpoint's (runs keyed by the columns ``by``)."""
    final = frame.groupby(list(by))["tokens"].transform("max")
    return (frame["tokens"] / final).to_numpy(dtype=float)


def keep_final_checkpoint(data: ScalingData) -> ScalingData:
    """Keep only each run's last checkpoint (its final loss).

    For runs whose intermediate checkpoints are not the loss a run of that length would reach (a
    constant or warmup-stable learning rate without cooldown), fit the final losses only.
    """
    df = data.frame
    keep = (df["tokens"] == df.groupby("run")["tokens"].transform("max")).to_numpy()
    return data.subset(keep, name="final_checkpoint", reason="intermediate checkpoints (final loss of each run only)")


def thin_checkpoints(data: ScalingData, max_per_run: int) -> ScalingData:
    """Keep at most ``max_per_run`` checkpoints of each run, spread evenly in log tokens.

    The first and last checkpoints are always kept; each other kept checkpoint is the one nearest to
    an evenly spaced log-token target. Dense logging (thousands of checkpoints of one run) carries
    little more information about a law than a dozen well-spread points, because the run's
    checkpoints share its seed deviation and their noise is small.
    """
    keep = thinned(data.frame, max_per_run, ("run",))
    return data.subset(keep, name="thin_checkpoints",
                       reason=f"at most {int(max_per_run)} checkpoints per run, evenly spread in log tokens")


def thinned(frame: pd.DataFrame, max_per_run: int, by: tuple[str, ...]) -> np.ndarray:
    """Row mask of :func:`thin_checkpoints` on a frame with a ``tokens`` column: at most ``max_per_run`` rows of
    each ``by`` group (a run, or a run and task), evenly spread in log tokens, its first and last kept."""
    if int(max_per_run) != max_per_run or max_per_run < 2:
        raise ValueError(f"max_per_run must be an integer >= 2, got {max_per_run!r}")
    keep = np.zeros(len(frame), dtype=bool)
    log_t = np.log(frame["tokens"].to_numpy())
    for idx in frame.groupby(list(by), sort=False).indices.values():
        if len(idx) <= max_per_run:
            keep[idx] = True
            continue
        order = idx[np.argsort(log_t[idx], kind="stable")]
        lt = log_t[order]
        targets = np.linspace(lt[0], lt[-1], int(max_per_run))
        pos = np.clip(np.searchsorted(lt, targets), 1, len(lt) - 1)
        nearest = np.where(targets - lt[pos - 1] <= lt[pos] - targets, pos - 1, pos)
        keep[order[np.unique(np.r_[0, nearest, len(lt) - 1])]] = True
    return keep


def apply_filters(data: ScalingData, *, min_tokens: float | None = None, fraction: float | None = None,
                  max_checkpoints: int | None = None) -> ScalingData:
    """Apply the optional filters in a fixed order (fraction of run, min tokens, thinning)."""
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r} (e.g. 0.3 keeps each run's first 30%)")
    if fraction is not None and fraction < 1:
        data = keep_fraction_of_run(data, fraction)
    if min_tokens is not None and min_tokens > 0:
        data = drop_early_checkpoints(data, min_tokens)
    if max_checkpoints is not None:
        data = thin_checkpoints(data, max_checkpoints)
    return data
