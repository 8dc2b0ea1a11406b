"""Real published data, fitted honestly."""

import pytest

import bayes_scaling as bs
from bayes_scaling.data import load_epoch_chinchilla

EPOCH = {"E": 1.817, "A": 482.0, "alpha": 0.348, "B": 2085.4, "beta": 0.366}


@pytest.mark.slow
def test_epoch_chinchilla_intervals_contain_epoch_refit(shared_root):
    data = load_epoch_chinchilla(shared_root, drop_highest_losses=5)
    fit = bs.fit(data, draws=500, tune=500, chains=2, random_seed=0, extrapolation=None)
    s = fit.summary(interval=0.95)
    for k, v in EPOCH.items():
        p = s["parameters"][k]
        assert p["lower"] <= v <= p["upper"], f"{k}: Epoch {v} outside [{p['lower']:.4g}, {p['upper']:.4g}]"
    assert s["divergences"] == 0
    assert any("single family" in n for n in s["notes"])
