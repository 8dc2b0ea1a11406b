"""The prior predictive check: weakly informative priors cover the data without absurd width."""

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs


# densities and prior draws evaluated at a few points (conftest.python_linker)
pytestmark = pytest.mark.usefixtures("python_linker")


def test_prior_predictive_covers_data_and_stays_sensible():
    truth = simulate_family_parameters(3, np.random.default_rng(1))
    data = bs.ScalingData.from_frame(simulate_runs(truth, np.random.default_rng(2)), family="family", params="params",
                                     tokens="tokens", loss="loss", run="run")
    chk = bs.inference.prior_predictive_check(data, draws=300, random_seed=0)
    assert chk.attrs["coverage"] >= 0.95
    assert 1.5 < chk.attrs["median_ratio_upper_lower"] < 100  # informative enough to exclude nonsense
    assert np.all(chk["run_lower"] > 0.05) and np.all(chk["run_upper"] < 500)
    tab = bs.inference.prior_check_table(chk)
    assert set(tab.index) == set(data.families) and (tab["covered"] > 0.9).all()
