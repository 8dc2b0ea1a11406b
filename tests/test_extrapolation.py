"""The extrapolation discrepancy: leave-largest-out split, (kappa, drift) posterior, end to end."""

import numpy as np

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.inference.extrapolation import discrepancy_posterior, holdout_split

from conftest import FAST


def test_discrepancy_posterior_recovers_drift_and_scale():
    rng = np.random.default_rng(0)
    n = 400
    dist = rng.uniform(0.1, 1.0, n)
    var = np.full(n, 0.002**2)
    true_kappa, true_drift = 0.02, -0.03
    resid = dist * (true_drift + true_kappa * rng.standard_normal(n)) + 0.002 * rng.standard_normal(n)
    k, m = discrepancy_posterior(resid, var, dist, np.ones(n), 0.05, 0.05, 4000, rng)
    assert abs(np.median(m) - true_drift) < 0.005
    assert abs(np.median(k) - true_kappa) < 0.005
    assert np.quantile(m, 0.05) < true_drift < np.quantile(m, 0.95)


def test_discrepancy_posterior_without_signal_stays_near_zero():
    rng = np.random.default_rng(1)
    n = 200
    dist = rng.uniform(0.1, 0.5, n)
    var = np.full(n, 0.01**2)
    resid = 0.01 * rng.standard_normal(n)
    k, m = discrepancy_posterior(resid, var, dist, np.ones(n), 0.05, 0.05, 4000, rng)
    assert np.quantile(k, 0.95) < 0.03 and abs(np.median(m)) < 0.01


def test_discrepancy_evidence_prefers_the_growth_law_that_made_the_residuals():
    rng = np.random.default_rng(2)
    n = 300
    dist = rng.uniform(0.05, 1.0, n)
    var = np.full(n, 0.002**2)
    for true_power in (1.0, 2.0):
        resid = 0.05 * dist**true_power * rng.standard_normal(n) + 0.002 * rng.standard_normal(n)
        ev = {q: discrepancy_posterior(resid, var, dist**q, np.ones(n), 0.25, 0.1, 100, rng,
                                       return_evidence=True)[2] for q in (1.0, 2.0)}
        assert max(ev, key=ev.get) == true_power
    # the evidence is the normalised marginal likelihood: compare with an independent trapezoid quadrature
    # on a finer, wider grid of its own
    from scipy.stats import halfnorm, norm

    d, r, v = np.array([0.2, 0.5, 1.0]), np.array([0.01, -0.03, 0.08]), np.full(3, 0.01**2)
    ev = discrepancy_posterior(r, v, d, np.ones(3), 0.25, 0.1, 10, rng, n_grid=601, return_evidence=True)[2]
    k, m = np.linspace(0.0, 2.5, 2001), np.linspace(-0.6, 0.6, 2001)
    kk, mm = np.meshgrid(k, m, indexing="ij")
    dens = halfnorm.pdf(kk, scale=0.25) * norm.pdf(mm, scale=0.1)
    for di, ri, vi in zip(d, r, v):
        dens = dens * norm.pdf(ri, mm * di, np.sqrt(vi + (kk * di) ** 2))
    exact = np.trapezoid(np.trapezoid(dens, m, axis=1), k)
    assert abs(ev - np.log(exact)) < 0.02
    # centred (drift_scale=None): drift is 0 in every draw, and the evidence integrates over kappa alone
    kc, mc, evc = discrepancy_posterior(r, v, d, np.ones(3), 0.25, None, 50, rng, n_grid=601, return_evidence=True)
    assert np.all(mc == 0.0) and np.all(kc >= 0)
    dens = halfnorm.pdf(k, scale=0.25)
    for di, ri, vi in zip(d, r, v):
        dens = dens * norm.pdf(ri, 0.0, np.sqrt(vi + (k * di) ** 2))
    assert abs(evc - np.log(np.trapezoid(dens, k))) < 0.02


def test_holdout_split_takes_whole_top_runs_per_family(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    held, desc = holdout_split(data, 0.3)
    f = data.frame.assign(held=held)
    assert f.groupby("run")["held"].nunique().max() == 1  # whole runs
    for fam, g in f.groupby("family"):
        assert g["held"].any() and not g["held"].all()
        assert g.loc[g["held"], "params"].min() == g["params"].max()  # the largest models go
    assert "held out" in desc


def test_learned_discrepancy_end_to_end():
    """A law whose form is wrong beyond the data (an extra bend) is caught by leave-largest-out."""
    rng = np.random.default_rng(5)
    fams = simulate_family_parameters(4, rng)
    df = simulate_runs(fams, rng, sizes=(3e7, 6e7, 1.2e8, 2.4e8, 4.8e8), checkpoints=4, sigma_seed=0.003,
                       sigma_obs=0.002)
    c = 6 * df["params"] * df["tokens"]
    df["loss"] = df["loss"] * np.exp(-0.05 * (np.log10(c) - np.log10(c.min())) ** 2)  # bends below the law
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    fit = bs.fit(data, extrapolation="learn", **FAST)
    ex = fit.extrapolation
    assert ex["mode"] == "learn" and ex["calibrated"] and ex["heldout_runs"] >= 3
    assert ex["heldout_are"] > 0.02  # the bend shows in the held-out runs ...
    assert ex["drift_median"] < 0  # ... which sit below the law: a downward drift is learned
    assert "kappa" in fit.idata.posterior and "drift" in fit.idata.posterior
    fam = data.families[0]
    far = float(fit.predict(fam, 4e9, 8e10)["expected_median"][0])
    inside = float(fit.predict(fam, 3e7, 6e8)["expected_median"][0])
    post = fit.idata.posterior
    kappa = post["kappa"].to_numpy().ravel()
    fit.set_extrapolation(kappa, ex, drift=np.zeros_like(kappa))  # the same fit without the drift
    assert float(fit.predict(fam, 4e9, 8e10)["expected_median"][0]) > far  # drift pulls far predictions down
    assert np.isclose(float(fit.predict(fam, 3e7, 6e8)["expected_median"][0]), inside)  # not inside the data
    fit.set_extrapolation(kappa, ex, drift=np.full_like(kappa, ex["drift_median"]))
    s = fit.summary()
    assert s["parameters"]["drift"]["median"] < 0
