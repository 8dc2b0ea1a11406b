"""Summaries of posterior draws of decision quantities (median and an interval per quantity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def summarize(ds: xr.Dataset, interval: float = 0.9, dim: str = "sample") -> pd.DataFrame:
    """One row per quantity (and per coordinate of the other dims): median, lower, upper, mean.

    Quantiles are taken over ``dim``; infinite draws (a loss that is never reached) are kept, so a
    quantile can be ``inf``, and the share of them is reported in ``share_infinite``.
    """
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    rows = []
    for name, da in ds.data_vars.items():
        if dim not in da.dims:
            continue
        other = [d for d in da.dims if d != dim]
        stacked = da.transpose(dim, *other).to_numpy().reshape(da.sizes[dim], -1)
        index = pd.MultiIndex.from_product([da[d].to_numpy() for d in other], names=other) if other else [None]
        for j, key in enumerate(index):
            x = stacked[:, j]
            finite = x[np.isfinite(x)]
            row = {"quantity": name}
            if other:
                row.update(dict(zip(other, key if isinstance(key, tuple) else (key,))))
            # with infinite draws, interpolating between two of them gives nan: take the nearest rank
            q = np.quantile(x, [0.5, lo, hi], method="linear" if len(finite) == len(x) else "nearest")
            row.update(median=q[0], lower=q[1], upper=q[2], mean=float(finite.mean()) if len(finite) else np.nan,
                       share_infinite=float(1 - len(finite) / len(x)))
            rows.append(row)
    return pd.DataFrame(rows)

