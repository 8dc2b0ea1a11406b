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
                  sigma_obs: float = 0.005, ou_length: float | None = None, ou_share: float = 1.0) -> pd.DataFrame:
    """Checkpoint losses of runs of each family: every size trained to ``tokens_per_param * N`` tokens,
    ``checkpoints`` log-spaced checkpoints from 10% of the run, ``seeds`` runs per size.

    log loss = log L_true(N, D) + u_run + e, with u_run ~ N(0, sigma_seed), e ~ N(0, sigma_obs)
    independent, or (``ou_length`` in decades of tokens) the correlated noise of
    :mod:`bayes_scaling.model.checkpoint_noise`: an Ornstein-Uhlenbeck drift of sd ``sigma_obs sqrt(ou_share)``
    with correlation ``exp(-|log10 D_i - log10 D_k| / ou_length)`` plus white jitter of sd
    ``sigma_obs sqrt(1 - ou_share)``.
    """
    rows = []
    for fam, nat in families.items():
        for n in sizes:
            for s in range(seeds):
                u = sigma_seed * rng.standard_normal()
                d = np.geomspace(0.1, 1.0, checkpoints) * tokens_per_param * n
                mean = CHINCHILLA.natural_loss(nat, {"params": n, "tokens": d})
                loss = np.exp(np.log(mean) + u + checkpoint_noise(np.log10(d), sigma_obs, ou_length, ou_share, rng))
                for dk, lk in zip(d, loss):
                    rows.append({"family": fam, "run": f"{fam}/N={n:.3g}/seed={s}", "seed": s, "params": n,
                                 "tokens": dk, "loss": lk})
    return pd.DataFrame(rows)


def checkpoint_noise(log10_tokens: np.ndarray, sigma_obs: float, ou_length: float | None, ou_share: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Noise of one run's checkpoints (increasing tokens): independent, or OU drift plus white jitter."""
    z = rng.standard_normal(len(log10_tokens))
    if ou_length is None:
        return sigma_obs * z
    phi = np.exp(-np.diff(log10_tokens) / ou_length)
    drift = z.copy()
    for i in range(1, len(z)):
        drift[i] = phi[i - 1] * drift[i - 1] + np.sqrt(1.0 - phi[i - 1] ** 2) * z[i]
    jitter = rng.standard_normal(len(z))
    return sigma_obs * (np.sqrt(ou_share) * drift + np.sqrt(1.0 - ou_share) * jitter)


def simulate_tasks(tasks: Mapping[str, Mapping[str, float]], rng: np.random.Generator, *,
                   sizes: Sequence[float] = (2e7, 5e7, 1.2e8, 3e8), tokens_per_param: Sequence[float] = (20.0, 60.0),
                   checkpoints: int = 6, sigma_seed: float = 0.01, sigma_loss: float = 0.004,
                   sigma_acc: float = 0.008, family: str = "synthetic") -> pd.DataFrame:
    """A long table of task evaluations (one row per checkpoint and task) from known laws.

    ``tasks`` maps a task name to its truth: ``E, A, alpha, B, beta`` of the task-loss law, and ``chance``,
    ``upper``, ``slope``, ``midpoint`` of the link (:mod:`bayes_scaling.laws.accuracy`). Each run is one size
    trained to ``tokens_per_param`` x its size, evaluated at ``checkpoints`` points over its last half; a run's
    seed shifts its log task loss on every task by the same draw.
    """
    from ..laws.accuracy import accuracy

    rows = []
    for n in sizes:
        for r in tokens_per_param:
            run = f"N={n:.3g}-x{r:g}"
            seed = sigma_seed * rng.standard_normal()
            for d in np.linspace(0.5, 1.0, checkpoints) * n * r:
                for name, t in tasks.items():
                    loss = (t["E"] + t["A"] * n ** -t["alpha"] + t["B"] * d ** -t["beta"]) * np.exp(
                        seed + sigma_loss * rng.standard_normal())
                    acc = accuracy(loss, t["chance"], t["upper"], t["slope"], t["midpoint"], np)
                    rows.append({"family": family, "run": run, "params": n, "tokens": d, "task": name,
                                 "chance": t["chance"], "task_loss": loss,
                                 "accuracy": float(np.clip(acc + sigma_acc * rng.standard_normal(), 0, 1))})
    return pd.DataFrame(rows)
