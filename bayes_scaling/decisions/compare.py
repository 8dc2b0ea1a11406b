"""Recipe A vs B: the posterior of the loss difference at a target and the probability that A wins.

Both families' predictive draws come from the same posterior draws (one hierarchical fit), so their
shared uncertainty (population, noise scales) cancels in the difference. Two questions:

* ``expected``: is A's configuration better than B's (no seed noise)?
* ``run``: will the one run of A you train beat the one run of B (each with its own seed and
  checkpoint noise)? Always closer to a coin flip.

The extrapolation discrepancy is drawn independently for A and B (the conservative choice: the law's
misfit beyond the data need not be the same for two recipes).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import UnknownFamilyError


def _known(fit: Any, names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in fit.families]
    if unknown:
        raise UnknownFamilyError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; the fit has "
                                 f"{fit.families}. Comparing families needs every one of them in the fit.")


def _joint_draws(fit: Any, families: Sequence[str], params: Any, tokens: Any, random_seed: int) -> xr.Dataset:
    n = np.broadcast_arrays(np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float)))
    n_pts = n[0].size
    fam = np.repeat(np.asarray(families, dtype=object), n_pts)
    p = fit.predict(fam, np.tile(n[0].ravel(), len(families)), np.tile(n[1].ravel(), len(families)),
                    keep_draws=True, random_seed=random_seed)
    return p, n_pts


def compare(fit: Any, a: str, b: str, params: Any, tokens: Any, *, random_seed: int = 0) -> xr.Dataset:
    """Posterior of ``L_a - L_b`` at each target (params, tokens): Dataset over (``sample``, ``target``).

    ``expected_difference`` (configurations) and ``run_difference`` (one run each); ``p_a_better``
    and ``p_a_better_one_run``: the probability that A's loss is lower, per target.
    """
    _known(fit, [a, b])
    if a == b:
        raise ValueError("compare two different families")
    p, n_pts = _joint_draws(fit, [a, b], params, tokens, random_seed)
    out = {}
    for kind in ("expected", "run"):
        draws = p[f"{kind}_loss"].to_numpy()
        out[f"{kind}_difference"] = (("sample", "target"), draws[:, :n_pts] - draws[:, n_pts:])
    ds = xr.Dataset(out, coords={"sample": np.arange(p.sizes["sample"]), "target": np.arange(n_pts),
                                 "params": ("target", p["params"].to_numpy()[:n_pts]),
                                 "tokens": ("target", p["tokens"].to_numpy()[:n_pts])})
    ds["p_a_better"] = ("target", (ds["expected_difference"] < 0).mean("sample").to_numpy())
    ds["p_a_better_one_run"] = ("target", (ds["run_difference"] < 0).mean("sample").to_numpy())
    ds.attrs.update(a=a, b=b, description="difference = loss of A - loss of B (negative: A is better)")
    return ds


def win_probabilities(fit: Any, families: Sequence[str], params: float, tokens: float, *, one_run: bool = False,
                      random_seed: int = 0) -> pd.DataFrame:
    """P(row family's loss < column family's loss) at one target, for every pair, plus P(best)."""
    families = list(families)
    _known(fit, families)
    p, _ = _joint_draws(fit, families, params, tokens, random_seed)
    draws = p["run_loss" if one_run else "expected_loss"].to_numpy()  # (sample, family)
    wins = (draws[:, :, None] < draws[:, None, :]).mean(axis=0)
    table = pd.DataFrame(wins, index=pd.Index(families, name="family"), columns=families)
    best = np.bincount(draws.argmin(axis=1), minlength=len(families)) / draws.shape[0]
    table["p_best"] = best
    return table
