"""The point-estimate baselines recover a known law and behave as the guide describes."""

import numpy as np

from bayes_scaling.evaluate import fixed_n_term_fit, huber_fit, last_checkpoint_mean, predict_natural
from bayes_scaling.evaluate.baselines import MUENNIGHOFF_ALPHA

TRUTH = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.36}


def _grid():
    n, d = np.meshgrid([5e7, 1e8, 3e8, 1e9, 3e9], [1e9, 3e9, 1e10, 3e10, 1e11])
    return n.ravel(), d.ravel()


def test_huber_fit_recovers_noise_free_law():
    n, d = _grid()
    loss = predict_natural(TRUTH, n, d)
    p = huber_fit(n, d, loss, grid_stride=15)
    assert np.allclose(predict_natural(p, n, d), loss, rtol=1e-3)
    assert abs(p["alpha"] - TRUTH["alpha"]) < 0.05 and abs(p["E"] - TRUTH["E"]) < 0.1


def test_huber_fit_ignores_an_outlier():
    n, d = _grid()
    loss = predict_natural(TRUTH, n, d)
    loss[3] *= 1.5
    p = huber_fit(n, d, loss, grid_stride=15)
    good = np.arange(len(n)) != 3
    assert np.allclose(predict_natural(p, n, d)[good], loss[good], rtol=5e-3)


def test_fixed_n_term_keeps_muennighoff_values():
    n, d = np.full(8, 1e8), np.geomspace(1e9, 2e10, 8)
    loss = predict_natural(TRUTH, n, d)
    p = fixed_n_term_fit(n, d, loss)
    assert p["alpha"] == MUENNIGHOFF_ALPHA
    assert np.allclose(predict_natural(p, n, d), loss, rtol=5e-3)  # one size: D-term and E absorb the rest


def test_last_checkpoint_mean_uses_the_last_30_percent():
    t = np.arange(1, 11) * 1e9
    loss = np.linspace(4.0, 3.0, 10)
    assert last_checkpoint_mean(t, loss) == np.mean(loss[t >= 7e9])
