"""One cell of the experiment grid: a fit and its scores (what a worker runs).

Pure functions of their arguments (data, cell, settings, and for ``borrowed`` the population prior),
so that a cell gives the same result wherever and whenever it runs: its random seed is derived from
the cell's coordinates, not from the order in which cells happen to be scheduled.
"""

from __future__ import annotations

import time
import warnings
import zlib
from typing import Any, Mapping

import numpy as np

from ..data import ScalingData, apply_filters
from ..errors import BayesScalingError, SamplingWarning
from ..evaluate.harness import bayes_scored
from ..evaluate.protocol import max_k, split_family
from ..model import PopulationPrior
from .config import FitSettings

#: what every finished cell records (NaN where it does not apply)
SCORES = ("are", "cover50", "cover90", "width50", "width90", "n_points", "train_rows", "decades", "divergences",
          "max_rhat", "min_ess_bulk", "seconds")


def cell_seed(settings: FitSettings, *key: Any) -> int:
    """A seed that depends only on the settings' seed and the cell's coordinates."""
    return (settings.random_seed * 1_000_003 + zlib.crc32(repr(key).encode())) % (2**31 - 1)


def pool_data(data: ScalingData, min_tokens: float, settings: FitSettings) -> ScalingData:
    """The dataset as every fit in the grid sees it: early-checkpoint cut and thinning applied."""
    return apply_filters(data, min_tokens=min_tokens or None, max_checkpoints=settings.max_checkpoints)


def population_prior(data: ScalingData, heldout: str, min_tokens: float, settings: FitSettings) -> PopulationPrior:
    """The population prior a ``borrowed`` cell uses: a fit of every family but ``heldout``."""
    from ..inference import fit as fit_law

    pool = pool_data(data, min_tokens, settings)
    others = [f for f in pool.families if f != heldout]
    seed = cell_seed(settings, "population", heldout, float(min_tokens))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # its diagnostics travel with the prior's source
        pop = fit_law(pool.select_families(others), settings.model, settings.seeded(seed))
    prior = PopulationPrior.from_fit(pop, random_seed=seed)
    d = pop.diagnostics
    prior.source += (f" (population fit: divergences {d.divergences}, max R-hat {d.max_rhat:.3f}, "
                     f"min bulk ESS {d.min_ess_bulk:.0f})")
    return prior


def run_cell(data: ScalingData, cell: Mapping[str, Any], settings: FitSettings,
             prior: PopulationPrior | None = None) -> dict[str, Any]:
    """Fit one cell and score the held-out family's largest model; never raises for a cell that cannot run.

    Returns the scores of :data:`SCORES` and ``status``: ``"ok"``, ``"not applicable: ..."`` (k is
    not below the family's number of sizes) or ``"failed: ..."`` (e.g. the filters leave no training
    rows), so that a deterministic failure is recorded once and not retried on resume.
    """
    out: dict[str, Any] = {s: np.nan for s in SCORES}
    fam, k, source = cell["heldout"], int(cell["k"]), cell["prior"]
    if k > max_k(data, fam):
        return {**out, "status": f"not applicable: {fam} has {max_k(data, fam) + 1} model sizes, k must be below"}
    t0 = time.perf_counter()
    try:
        split = split_family(data, fam, k, fraction=cell["fraction"] if cell["fraction"] < 1 else None,
                             min_tokens=cell["min_tokens"] or None, max_checkpoints=settings.max_checkpoints,
                             last_fraction=settings.last_fraction)
        train = None
        if source == "pooled":
            others = pool_data(data, cell["min_tokens"], settings)
            others = others.select_families([f for f in others.families if f != fam])
            train = ScalingData.concat([others, split.train], source=f"pooled: {fam} with {len(others.families)} "
                                                                     "other families")
        elif source == "borrowed" and prior is None:
            raise ValueError("a borrowed cell needs its population prior")
        row = bayes_scored(split, prior if source == "borrowed" else None, settings.model, settings.sampler,
                           cell_seed(settings, *(cell[a] for a in sorted(cell))), train=train, method=source)
    except (BayesScalingError, ValueError) as exc:
        return {**out, "seconds": time.perf_counter() - t0, "status": f"failed: {type(exc).__name__}: {exc}"}
    out.update({s: float(row[s]) for s in SCORES if s in row})
    out.update(train_rows=float(len(split.train) if train is None else len(train)), decades=split.decades,
               status="ok")
    return out
