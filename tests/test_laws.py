import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_scaling.laws import CHINCHILLA, COMPUTE, reference_scales, standardized_inputs
from bayes_scaling.model.likelihood import run_marginal_loglik

REF = {"params": 3e8, "tokens": 6e9, "flops": 1e19}
NAT = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}


def test_natural_sampling_round_trip():
    th = CHINCHILLA.from_natural(NAT, REF)
    back = CHINCHILLA.to_natural(th, REF)
    for k in NAT:
        assert back[k] == pytest.approx(NAT[k], rel=1e-12)


def test_anchored_law_equals_natural_law():
    th = CHINCHILLA.from_natural(NAT, REF)
    n = np.array([1e8, 7e9, 7e10])
    d = np.array([2e9, 2e11, 2e12])
    z = standardized_inputs(CHINCHILLA, {"params": n, "tokens": d}, REF)
    assert np.allclose(CHINCHILLA.loss(th, z), CHINCHILLA.natural_loss(NAT, {"params": n, "tokens": d}))
    # Epoch's values at Chinchilla's 70B / 1.4T
    assert CHINCHILLA.natural_loss(NAT, {"params": 70e9, "tokens": 1.4e12}) == pytest.approx(
        1.8 + 480 * 70e9**-0.35 + 2000 * 1.4e12**-0.37)


@pytest.mark.parametrize("law", [CHINCHILLA, COMPUTE])
def test_numpy_and_pytensor_agree(law):
    rng = np.random.default_rng(0)
    theta = {p: rng.normal(-0.5, 0.3, size=7) for p in law.sampling}
    z = {inp: rng.normal(0, 2, size=7) for inp in law.inputs}
    sym_t = {p: pt.dvector(p) for p in law.sampling}
    sym_z = {inp: pt.dvector("z_" + inp) for inp in law.inputs}
    f = pytensor.function(list(sym_t.values()) + list(sym_z.values()), law.log_loss(sym_t, sym_z, xp=pt))
    got = f(*theta.values(), *z.values())
    assert np.allclose(got, law.log_loss(theta, z))


def test_monotone_decreasing_in_n_and_d():
    th = CHINCHILLA.from_natural(NAT, REF)
    n = np.geomspace(1e7, 1e12, 50)
    z = standardized_inputs(CHINCHILLA, {"params": n, "tokens": np.full(50, 1e10)}, REF)
    assert np.all(np.diff(CHINCHILLA.loss(th, z)) < 0)
    z = standardized_inputs(CHINCHILLA, {"params": np.full(50, 1e9), "tokens": n}, REF)
    assert np.all(np.diff(CHINCHILLA.loss(th, z)) < 0)
    # limit: L -> E as N, D -> infinity
    z = standardized_inputs(CHINCHILLA, {"params": np.array([1e30]), "tokens": np.array([1e30])}, REF)
    assert CHINCHILLA.loss(th, z)[0] == pytest.approx(NAT["E"], rel=1e-6)


def test_reference_scale_is_geometric_mean():
    ref = reference_scales(CHINCHILLA, {"params": np.array([1e8, 1e10]), "tokens": np.array([1e9, 1e11])})
    assert ref["params"] == pytest.approx(1e9) and ref["tokens"] == pytest.approx(1e10)


def test_marginal_run_likelihood_matches_multivariate_normal():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.02, size=6)
    ss, so = 0.015, 0.007
    cov = so**2 * np.eye(6) + ss**2 * np.ones((6, 6))
    expected = multivariate_normal(np.zeros(6), cov).logpdf(r)
    got = run_marginal_loglik(r.sum(), (r**2).sum(), 6.0, ss, so)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n", [1, 6])
def test_robust_run_likelihood_matches_multivariate_t(n):
    from scipy.stats import multivariate_t

    rng = np.random.default_rng(4)
    r = rng.normal(0, 0.02, size=n)
    ss, so, nu = 0.015, 0.007, 3.5
    shape = so**2 * np.eye(n) + ss**2 * np.ones((n, n))
    expected = multivariate_t(np.zeros(n), shape, df=nu).logpdf(r)
    got = run_marginal_loglik(r.sum(), (r**2).sum(), float(n), ss, so, nu=nu)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("law", [CHINCHILLA, COMPUTE])
def test_level_vector_multiplies_the_loss_at_every_scale(law):
    th = law.from_natural({k: NAT[k] for k in law.natural}, REF)
    shifted = {p: th[p] + 0.3 * v for p, v in zip(law.sampling, law.level_vector)}
    cols = {"params": np.geomspace(1e7, 1e11, 5), "tokens": np.geomspace(1e8, 1e13, 5), "flops": np.geomspace(1e16, 1e24, 5)}
    z = standardized_inputs(law, cols, REF)
    assert np.allclose(law.log_loss(shifted, z) - law.log_loss(th, z), 0.3)
    assert law.level_vector[list(law.sampling).index("log_alpha")] == 0
