"""Synthetic scaling data with known truth (for recovery tests, calibration and benchmarks)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..laws import CHINCHILLA

#: natural Chinchilla parameters near Epoch's refit, the default truth of a population
DEFAULT_POPULATION = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}


def simulate_family_parameters(n_families: int, rng: np.random.Generator,
                               population: Mapping[str, float] = DEFAULT_POPULATION,
                               spread: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Natural parameters of ``n_families`` families: log-normal spread around ``population``."""
    spread = spread or {"E": 0.08, "A": 0.3, "alpha": 0.06, "B": 0.3, "beta": 0.06}
    return {f"fam{i}": {k: float(v * np.exp(spread[k] * rng.standard_normal())) for k, v in population.items()}
            for i in range(n_families)}


def simulate_runs(families: Mapping[str, Mapping[str, float]], rng: np.random.Generator, *,
                  sizes: Sequence[float] = (5e7, 1e8, 2e8, 4e8, 8e8), tokens_per_param: float = 20.0,
                  checkpoints: int = 8, seeds: int = 1, sigma_seed: float = 0.01,
                  sigma_obs: float = 0.005) -> pd.DataFrame:
    """Checkpoint losses of runs of each family: every size trained to ``tokens_per_param * N`` tokens,
    ``checkpoints`` log-spaced checkpoints from 10% of the run, ``seeds`` runs per size.

    log loss = log L_true(N, D) + u_run + e, with u_run ~ N(0, sigma_seed), e ~ N(0, sigma_obs).
    """
    rows = []
    for fam, nat in families.items():
        for n in sizes:
            for s in range(seeds):
                u = sigma_seed * rng.standard_normal()
                d = np.geomspace(0.1, 1.0, checkpoints) * tokens_per_param * n
                mean = CHINCHILLA.natural_loss(nat, {"params": n, "tokens": d})
                loss = np.exp(np.log(mean) + u + sigma_obs * rng.standard_normal(checkpoints))
                for dk, lk in zip(d, loss):
                    rows.append({"family": fam, "run": f"{fam}/N={n:.3g}/seed={s}", "seed": s, "params": n,
                                 "tokens": dk, "loss": lk})
    return pd.DataFrame(rows)
