"""Real data: Epoch's 240 Chinchilla points (a single family of final losses)."""

import pytest

import bayes_scaling as bs
from bayes_scaling.data import load_epoch_chinchilla

#: Epoch's refit (Besiroglu et al. 2024: Huber loss on log loss, five highest losses dropped)
EPOCH = {"E": 1.817, "A": 482.0, "alpha": 0.348, "B": 2085.4, "beta": 0.366}


@pytest.fixture(scope="module")
def epoch_summary(shared_root):
    data = load_epoch_chinchilla(shared_root, drop_highest_losses=5)
    fit = bs.fit(data, dict(extrapolation=None, likelihood="student_t"),
                 dict(draws=500, tune=500, chains=2, random_seed=0))
    return fit.summary(interval=0.95)


@pytest.mark.slow
def test_epoch_chinchilla_robust_fit_is_clean(epoch_summary):
    s = epoch_summary
    assert s["divergences"] == 0 and s["max_rhat"] <= 1.01
    assert any("single family" in n for n in s["notes"])
    # the points read off a figure are heavy-tailed: the learned degrees of freedom say so
    assert s["parameters"]["nu"]["upper"] < 10


@pytest.mark.slow
def test_epoch_chinchilla_intervals_contain_epoch_refit(epoch_summary):
    s = epoch_summary
    for k, v in EPOCH.items():
        p = s["parameters"][k]
        assert p["lower"] <= v <= p["upper"], f"{k}: Epoch {v} outside [{p['lower']:.4g}, {p['upper']:.4g}]"
