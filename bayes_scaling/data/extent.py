"""How far a point lies from a family's data, in each direction users extrapolate.

A family's *extent* is the box its fitted rows span, in decades (log10):

- ``flops``: the largest training compute C;
- ``params``: the largest model N;
- ``ratio``: the range of tokens per parameter D / N (its smallest and largest);
- ``epochs``: the most passes over the unique data, D / U (only where the data count unique tokens ``U``).

The distance of a query point from that box has one coordinate per direction (:data:`DIRECTIONS`):

- ``flops``: decades of compute beyond the largest fitted compute (0 inside);
- ``params``: decades of parameters beyond the largest fitted model (0 inside);
- ``ratio``: decades of tokens per parameter outside the trained range, signed: positive beyond the
  largest (over-training), negative below the smallest (under-training), 0 inside;
- ``epochs``: decades of epochs beyond the most repeated run (0 inside, and 0 for data without a count of
  unique tokens: every token seen once).

An allocation away from the compute optimum at a new budget leaves the box in ``params`` (a model
larger than any trained) or in ``ratio`` (a small model trained on more tokens per parameter than
any run), so the three directions also measure it. A new family is measured from the union of the
fitted families' boxes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

#: the directions of the extrapolation distance, in the order of its columns
DIRECTIONS = ("flops", "params", "ratio", "epochs")
#: the directions every fit can leave its data in; the rest (``epochs``) only data with ``unique_tokens`` can
BASE_DIRECTIONS = DIRECTIONS[:3]
#: what a distance in each direction measures, in words (warnings and the report)
DIRECTION_MEANING = {"flops": "compute beyond the largest run", "params": "parameters beyond the largest model",
                     "ratio": "tokens per parameter outside the trained range",
                     "epochs": "epochs beyond the most repeated run"}
#: the columns :func:`distances` reads from a table of points, where present
DISTANCE_COLUMNS = ("params", "tokens", "flops", "unique_tokens")
#: levels (log10 of a run's compute, its size, or its tokens per parameter) closer than this many decades are
#: one level: sizes or budgets read off a figure differ in the third digit
LEVEL_GAP = 0.05


def levels(values: np.ndarray) -> np.ndarray:
    """Level index of each value (log10 scale), 0 for the largest; values closer than :data:`LEVEL_GAP` to
    the next larger one share its level."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values)
    level = np.zeros(len(order), dtype=int)
    current, last = 0, None
    for i in order:
        if last is not None and last - values[i] > LEVEL_GAP:
            current += 1
        level[i] = current
        last = values[i]
    return level


def directions_of(frame: pd.DataFrame) -> tuple[str, ...]:
    """The directions a fit of ``frame`` can leave its data in: :data:`BASE_DIRECTIONS`, and ``epochs`` where the
    data count unique tokens."""
    return DIRECTIONS if "unique_tokens" in frame else BASE_DIRECTIONS


def log_epochs(columns: Mapping[str, Any]) -> np.ndarray | None:
    """log10 of the epochs (tokens / unique tokens) of each point, None without ``unique_tokens``."""
    if "unique_tokens" not in columns:
        return None
    return np.log10(np.asarray(columns["tokens"], dtype=float)) - np.log10(np.asarray(columns["unique_tokens"],
                                                                                        dtype=float))


def family_extents(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each family's extent (log10 scale): ``{family: {flops, params, ratio_min, ratio_max}}``, and ``epochs``
    where the data count unique tokens."""
    lc = np.log10(frame["flops"].to_numpy(dtype=float))
    ln = np.log10(frame["params"].to_numpy(dtype=float))
    lr = np.log10(frame["tokens"].to_numpy(dtype=float)) - ln
    le = log_epochs(frame)
    g = pd.DataFrame({"family": frame["family"].to_numpy(), "flops": lc, "params": ln, "ratio": lr,
                      **({} if le is None else {"epochs": le})}).groupby("family")
    out = {}
    for fam, part in g:
        out[str(fam)] = {"flops": float(part["flops"].max()), "params": float(part["params"].max()),
                         "ratio_min": float(part["ratio"].min()), "ratio_max": float(part["ratio"].max())}
        if le is not None:
            out[str(fam)]["epochs"] = float(part["epochs"].max())
    return out


def union_extent(extents: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The box that holds every family's extent (where a new family is measured from)."""
    vals = list(extents.values())
    out = {"flops": max(e["flops"] for e in vals), "params": max(e["params"] for e in vals),
           "ratio_min": min(e["ratio_min"] for e in vals), "ratio_max": max(e["ratio_max"] for e in vals)}
    if all("epochs" in e for e in vals):
        out["epochs"] = max(e["epochs"] for e in vals)
    return out


def distance_columns(table: Any) -> dict[str, np.ndarray]:
    """The :data:`DISTANCE_COLUMNS` a table of points (a DataFrame, or a prediction's Dataset) holds, as arrays."""
    return {c: np.asarray(table[c], dtype=float) for c in DISTANCE_COLUMNS if c in table}


def distances(extents: Mapping[str, Mapping[str, float]], family: Sequence[str],
              columns: Mapping[str, Any]) -> np.ndarray:
    """Distance of each point from its family's extent: (point, direction) in decades (see :data:`DIRECTIONS`).

    ``columns`` holds ``params``, ``tokens`` and ``flops`` per point (and ``unique_tokens``, for the epochs). A
    family the extents do not hold (a new family) is measured from their union. An extent without a key (a fit
    stored with the compute extent only, or of data without unique tokens) contributes no distance in that
    direction.
    """
    union = union_extent(extents)
    fam = list(family)
    box = [extents.get(f, union) for f in fam]

    def bound(key: str, default: float) -> np.ndarray:
        return np.array([b.get(key, default) for b in box], dtype=float)

    lc = np.log10(np.asarray(columns["flops"], dtype=float))
    ln = np.log10(np.asarray(columns["params"], dtype=float))
    lr = np.log10(np.asarray(columns["tokens"], dtype=float)) - ln
    out = np.zeros((len(fam), len(DIRECTIONS)))
    out[:, 0] = np.maximum(0.0, lc - bound("flops", np.inf))
    out[:, 1] = np.maximum(0.0, ln - bound("params", np.inf))
    out[:, 2] = np.maximum(0.0, lr - bound("ratio_max", np.inf)) - np.maximum(0.0, bound("ratio_min", -np.inf) - lr)
    le = log_epochs(columns)
    if le is not None:
        out[:, 3] = np.maximum(0.0, le - bound("epochs", np.inf))
    return out


def per_direction(draws: Any) -> np.ndarray:
    """Draws of a per-direction quantity as (sample, direction); the directions the draws do not hold (the
    compute direction alone as (sample,), or the base directions of a fit without unique tokens) get zeros."""
    v = np.asarray(draws, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if v.shape[1] < len(DIRECTIONS):
        v = np.column_stack([v, np.zeros((len(v), len(DIRECTIONS) - v.shape[1]))])
    return v
