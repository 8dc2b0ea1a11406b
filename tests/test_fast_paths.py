"""The fast paths: the ADVI approximation and sampling with one BLAS thread per chain."""

import numpy as np
import pytest
from conftest import FAST

import bayes_scaling as bs


@pytest.mark.slow  # ADVI compiles the model in PyTensor's C backend: minutes on a new machine
def test_fit_approximate_gives_a_marked_fit_near_nuts(synthetic_truth, small_fit):
    _, df = synthetic_truth
    approx = bs.inference.fit_approximate(df, method="advi", iterations=4000, draws=500)
    assert approx.sampler_info["sampler"] == "advi"
    assert any("approximate posterior" in p for p in approx.diagnostics.problems)
    # the PSIS check ran, and an unreliable approximation is listed among the problems
    k_hat = approx.sampler_info["pareto_k_hat"]
    assert not np.isnan(k_hat)
    assert (k_hat > 0.7) == any("Pareto k-hat" in p for p in approx.diagnostics.problems)
    a = approx.idata.posterior["mu"].mean(("chain", "draw"))
    b = small_fit.idata.posterior["mu"].mean(("chain", "draw"))
    sd = small_fit.idata.posterior["mu"].std(("chain", "draw"))
    assert float(np.max(np.abs((a - b) / sd))) < 3.0
    pred = approx.predict(family="fam0", params=1e9, tokens=2e10)
    assert np.isfinite(pred["expected_mean"]).all()


def test_pareto_k_hat_separates_a_good_from_a_bad_approximation():
    import pymc as pm

    from bayes_scaling.inference.approximate import pareto_k_hat

    y = np.random.default_rng(0).normal(1.0, 1.0, 50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        sigma = pm.HalfNormal("sigma", 5.0)
        pm.Normal("y", mu, sigma, observed=y)
        good = pm.fit(20_000, method="fullrank_advi", random_seed=1, progressbar=False)
        bad = pm.fit(1, method="advi", random_seed=1, progressbar=False, start={"mu": 8.0})
    # near-Gaussian posterior of (mu, log sigma): a converged full-rank Gaussian is close to it
    assert pareto_k_hat(good, model) < 0.5
    # a Gaussian centred 50 posterior sd away from the posterior: the weights have no usable tail
    assert not pareto_k_hat(bad, model) <= 0.7


def _blas_threads() -> list[int]:
    import threadpoolctl

    return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]


def test_chains_sample_with_one_blas_thread_and_the_limit_is_lifted_after(synthetic_truth, small_fit, monkeypatch):
    """Two chains on two cores with multithreaded BLAS ran 3x slower per step (docs/benchmarks.md).

    ``small_fit`` compiles the model this fit reuses."""
    import nutpie
    import threadpoolctl

    _, df = synthetic_truth
    seen = []
    real = nutpie.sample

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(nutpie, "sample", spy)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}  # BLAS is loaded (numpy's) and would use two threads
        fit = bs.fit(df, dict(extrapolation=None), sampler=FAST)
        assert set(_blas_threads()) == {2}  # restored after sampling
    assert seen and all(set(s) == {1} for s in seen)
    assert fit.idata.posterior.sizes["chain"] == FAST["chains"]
