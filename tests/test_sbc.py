"""Simulation-based calibration, small: the machinery runs end to end and ranks are not grossly off.

The full run (100 simulations, chi-square per parameter, rank histograms) is benchmarks/sbc.py; its
result is on the benchmarks page. Here: 8 simulations, so only a gross miscalibration (every true
value below or above every posterior draw) can fail the test.
"""

import numpy as np
import pandas as pd
import pytest

from bayes_scaling.evaluate.sbc import default_design, sbc, simulate_losses, uniformity
from bayes_scaling.laws import get_law
from bayes_scaling.model import ModelSpec, Priors


def test_uniformity_test_detects_skewed_ranks_and_passes_uniform_ones():
    rng = np.random.default_rng(0)
    L = 99
    ok = pd.DataFrame({"x": rng.integers(0, L + 1, 400)})
    bad = pd.DataFrame({"x": np.minimum(rng.integers(0, 20, 400), L)})
    assert uniformity(ok, L, ["x"])["p_value"].iloc[0] > 0.001
    assert uniformity(bad, L, ["x"])["p_value"].iloc[0] < 1e-10


def test_simulated_losses_follow_the_law_at_zero_noise():
    design = default_design()
    lw = get_law("chinchilla")
    spec = ModelSpec.from_data(design, lw, Priors.default(lw, 3.0))
    theta = np.tile(np.array([0.5, 0.0, np.log(0.3), 0.0, np.log(0.3)]), (3, 1))
    sim = simulate_losses(design, spec, theta, 0.0, 0.0, np.random.default_rng(0))
    nat = lw.to_natural(dict(zip(lw.sampling, theta[0])), spec.reference)
    expect = lw.natural_loss(nat, {"params": sim.frame["params"].to_numpy(), "tokens": sim.frame["tokens"].to_numpy()})
    np.testing.assert_allclose(sim.frame["loss"].to_numpy(), expect, rtol=1e-10)


@pytest.mark.slow
def test_small_sbc_runs_and_ranks_are_not_degenerate():
    ranks = sbc(n_sims=8, draws=100, thin=2, random_seed=3)
    L, names = ranks.attrs["L"], ranks.attrs["names"]
    assert L == 100 and len(ranks) == 8
    frac = ranks[names].to_numpy() / L
    # a broken sampler or model puts true values outside the posterior: ranks pile up at 0 or L
    assert ((frac == 0) | (frac == 1)).mean() < 0.25
    assert 0.2 < frac.mean() < 0.8
