"""Posterior recovery on synthetic data with known family parameters and known sigma_seed."""

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs

from conftest import FAST


@pytest.mark.slow
def test_truth_inside_90_intervals_for_80_percent_of_parameters():
    hits, total, seed_hits = 0, 0, 0
    n_sets = 3
    for k in range(n_sets):
        rng = np.random.default_rng(100 + k)
        fams = simulate_family_parameters(3, rng)
        df = simulate_runs(fams, rng, sizes=(5e7, 1.5e8, 4e8, 1e9), checkpoints=6, seeds=2,
                           sigma_seed=0.012, sigma_obs=0.004)
        data = bs.ScalingData.from_frame(df, run="run", seed="seed")
        fit = bs.fit(data, dict(extrapolation=None), sampler=dict(FAST, random_seed=k))
        tab = fit.parameter_table(interval=0.9).set_index(["level", "parameter"])
        for fam, nat in fams.items():
            for p, v in nat.items():
                lo, hi = tab.loc[(fam, p), ["lower", "upper"]]
                hits += lo <= v <= hi
                total += 1
        for p, v in (("sigma_seed", 0.012), ("sigma_obs", 0.004)):
            lo, hi = tab.loc[("noise", p), ["lower", "upper"]]
            hits += lo <= v <= hi
            total += 1
            seed_hits += (p == "sigma_seed") and (lo <= v <= hi)
    assert hits / total >= 0.8, f"only {hits}/{total} truths inside their 90% intervals"
    assert seed_hits >= n_sets - 1
