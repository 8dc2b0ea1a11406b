"""Correlated checkpoint noise (OU drift plus jitter, a Kalman filter): likelihood, model, errors, recovery."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_runs
from bayes_scaling.errors import DataValidationError, SamplingWarning
from bayes_scaling.inference import compile_cache
from bayes_scaling.inference.fitted import run_log_likelihood
from bayes_scaling.model import ModelSpec, build_model
from bayes_scaling.model.checkpoint_noise import layout, run_covariance, run_loglik_numpy
from bayes_scaling.model.likelihood import run_marginal_loglik, run_sums_numpy

TRUE = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}


def _shuffled_runs(rng):
    """Three runs (5, 1 and 7 checkpoints) in shuffled row order, with their log10 tokens."""
    runs = np.repeat([0, 1, 2], [5, 1, 7])
    x = np.concatenate([rng.uniform(9, 11, 5), [10.0], rng.uniform(9, 11, 7)])
    perm = rng.permutation(len(runs))
    return runs[perm], x[perm]


def _dense(x, ss, so, share, ell):
    d = np.abs(x[:, None] - x[None, :])
    cov = so**2 * (share * np.exp(-d / ell) + (1 - share) * (d == 0)) + ss**2
    np.testing.assert_allclose(run_covariance(x, ss, so, share, ell), cov, rtol=1e-12)  # the planner's form
    return cov


def test_kalman_run_likelihood_matches_the_dense_covariance():
    rng = np.random.default_rng(1)
    runs, x = _shuffled_runs(rng)
    r = rng.normal(0, 0.05, len(runs))
    ss, so, share, ell = 0.02, 0.03, 0.7, 0.4
    got = run_loglik_numpy(r, layout(runs, x, 3), ss, so, share, ell)
    for j in range(3):
        m = runs == j
        expected = multivariate_normal(np.zeros(m.sum()), _dense(x[m], ss, so, share, ell)).logpdf(r[m])
        assert got[j] == pytest.approx(expected, rel=1e-10)


def test_kalman_broadcasts_over_posterior_draws():
    rng = np.random.default_rng(5)
    runs, x = _shuffled_runs(rng)
    r = rng.normal(0, 0.05, (2, 3, len(runs)))  # (chain, draw, obs)
    ss, so = rng.uniform(0.01, 0.03, (2, 3, 1)), rng.uniform(0.01, 0.03, (2, 3, 1))
    share, ell = rng.uniform(0.2, 0.9, (2, 3, 1)), rng.uniform(0.1, 1.0, (2, 3, 1))
    got = run_loglik_numpy(r, layout(runs, x, 3), ss, so, share, ell)
    one = run_loglik_numpy(r[1, 2], layout(runs, x, 3), ss[1, 2, 0], so[1, 2, 0], share[1, 2, 0], ell[1, 2, 0])
    assert got.shape == (2, 3, 3)
    np.testing.assert_allclose(got[1, 2], one, rtol=1e-12)


@pytest.mark.parametrize("share, ell", [(0.0, 0.4), (0.8, 1e-9)])
def test_no_drift_or_no_correlation_is_the_independent_model(share, ell):
    rng = np.random.default_rng(2)
    runs, x = _shuffled_runs(rng)
    r = rng.normal(0, 0.05, len(runs))
    s1, s2 = run_sums_numpy(r, runs, 3)
    independent = run_marginal_loglik(s1, s2, np.bincount(runs).astype(float), 0.02, 0.03)
    np.testing.assert_allclose(run_loglik_numpy(r, layout(runs, x, 3), 0.02, 0.03, share, ell), independent,
                               rtol=1e-10)


def test_layout_puts_each_run_in_token_order():
    runs = np.array([1, 0, 1, 0, 1])
    x = np.array([10.0, 9.5, 9.0, 9.0, 9.7])
    g = layout(runs, x, 2)
    np.testing.assert_array_equal(g["row"], [[3, 2], [1, 4], [0, 0]])
    np.testing.assert_array_equal(g["mask"], [[1, 1], [1, 1], [0, 1]])
    np.testing.assert_array_equal(g["has_prev"], [[0, 0], [1, 1], [0, 1]])
    np.testing.assert_allclose(g["gap"], [[1.0, 1.0], [0.5, 0.7], [1.0, 0.3]])
    with pytest.raises(ValueError, match="same token count"):
        layout(np.array([0, 0]), np.array([9.0, 9.0]), 1)


def _data(ou_length=0.3, ou_share=0.8, checkpoints=20, families=("a",), seed=0):
    rng = np.random.default_rng(seed)
    df = simulate_runs({f: TRUE for f in families}, rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=checkpoints,
                       seeds=2, sigma_seed=0.01, sigma_obs=0.01, ou_length=ou_length, ou_share=ou_share)
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed", source="synthetic OU")


def test_checkpoint_noise_errors_say_what_is_wrong():
    data = _data(checkpoints=3)
    with pytest.raises(ValueError, match="checkpoint_noise must be one of"):
        ModelSpec.from_data(data, checkpoint_noise="ar1")
    final = data.subset(data.frame.groupby("run")["tokens"].transform("max").eq(data.frame["tokens"]).to_numpy(),
                        name="final", reason="final losses only")
    with pytest.raises(DataValidationError, match="single point"):
        ModelSpec.from_data(final, checkpoint_noise="ou")
    with pytest.raises(ValueError, match="student_t"):
        ModelSpec.from_data(data, checkpoint_noise="ou", likelihood="student_t")


@pytest.mark.usefixtures("python_linker")  # the reference density, evaluated at two points
def test_the_model_potential_is_the_numpy_log_likelihood():
    """The PyMC graph and the pointwise numpy log-likelihood compute the same OU run densities."""
    data = _data(checkpoints=6, families=("a", "b"))
    spec = ModelSpec.from_data(data, checkpoint_noise="ou")
    model = build_model(data, spec)
    point = model.initial_point()
    point["ou_length_log__"] = np.array(np.log(0.7))
    names = ["theta", "sigma_seed", "sigma_obs", "ou_share", "ou_length"]
    outs = model.replace_rvs_by_values([model["log_likelihood_runs"], *[model[n] for n in names]])
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    pot, *vals = f(point)
    assert np.isfinite(pot) and float(vals[-1]) == pytest.approx(0.7)
    post = xr.Dataset({n: (("chain", "draw", *(("family", "param") if n == "theta" else ())), np.asarray(v)[None, None])
                       for n, v in zip(names, vals)})
    assert float(run_log_likelihood(post, data, spec).sum()) == pytest.approx(float(pot), rel=1e-9)


@pytest.mark.slow
def test_ou_fit_recovers_the_correlation_length_and_checkpoint_noise(tmp_path, monkeypatch):
    """End to end on synthetic OU drift plus jitter (truth: ou_length 0.3 decades, ou_share 0.8, sigma_obs 0.01)."""
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))  # no model compiled by an earlier test
    data = _data(ou_length=0.3, ou_share=0.8, checkpoints=20)
    compile_cache.clear()  # no model of this structure compiled by an earlier test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit = bs.fit(data, dict(checkpoint_noise="ou", extrapolation=None), dict(draws=300, tune=300, chains=2))
    post = fit.idata.posterior
    lo, hi = post["ou_length"].quantile([0.05, 0.95]).values
    assert lo < 0.3 < hi
    for name, truth in (("sigma_obs", 0.01), ("ou_share", 0.8)):
        lo, hi = post[name].quantile([0.05, 0.95]).values
        assert lo < truth < hi, name
    s = fit.summary()
    assert s["checkpoint_noise"] == "ou" and "ou_length" in s["parameters"]
    assert fit.idata.log_likelihood["runs"].sizes["run"] == len(data.runs)
    # the Kalman scan compiled with JAX (seconds, the "auto" backend's choice when JAX is installed); with
    # numba (35-60 s) the compiled model is kept, and another data set of the same structure reuses it
    assert fit.sampler_info["backend"] == ("jax" if compile_cache.jax_available() else "numba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        numba = bs.fit(_data(checkpoints=14, seed=1), dict(checkpoint_noise="ou", extrapolation=None),
                       dict(draws=50, tune=50, chains=2, backend="numba"))
        again = bs.fit(_data(checkpoints=9, seed=2), dict(checkpoint_noise="ou", extrapolation=None),
                       dict(draws=50, tune=50, chains=2))
    assert numba.sampler_info["backend"] == "numba" and numba.sampler_info["compile_source"] == "compiled"
    assert again.sampler_info["backend"] == "numba" and again.sampler_info["compile_source"] == "memory"
    assert np.isfinite(numba.idata.posterior["ou_length"]).all()


def test_cli_passes_the_checkpoint_noise_to_fit():
    from bayes_scaling.cli import build_parser
    from bayes_scaling.cli.options import _configs

    base = ["fit", "data.csv", "--params", "N", "--tokens", "D", "--loss", "L", "--out", "fit.nc"]
    assert _configs(build_parser().parse_args([*base, "--checkpoint-noise", "ou"]))[0].checkpoint_noise == "ou"
    assert _configs(build_parser().parse_args(base))[0].checkpoint_noise == "independent"
    assert _configs(build_parser().parse_args(base))[1].backend == "auto"
    assert _configs(build_parser().parse_args([*base, "--backend", "jax"]))[1].backend == "jax"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--checkpoint-noise", "ar1"])


def test_compile_cache_key_sees_through_the_kalman_scan():
    """Two OU models of one structure share a compiled model; a different OU prior or the noise model does not."""
    from bayes_scaling.inference.compile_cache import structure_key
    from bayes_scaling.laws import get_law
    from bayes_scaling.model import Priors

    def key(data, noise="ou", priors=None):
        return structure_key(build_model(data, ModelSpec.from_data(data, priors=priors, checkpoint_noise=noise)))

    a, b = _data(checkpoints=6, seed=0), _data(checkpoints=9, seed=1)
    pri = Priors.default(get_law("chinchilla"), 3.0)
    pri.ou_length = bs.Prior("LogNormal", mu=np.log(0.5), sigma=1.0)
    assert key(a) == key(b)
    assert key(a) != key(a, noise="independent")
    assert key(a) != key(a, priors=pri)
