"""The PyMC model's structure: whitening and block non-centring are the same prior on theta."""

import numpy as np
import pymc as pm
import pytest

import bayes_scaling as bs
from bayes_scaling.inference.parameterisation import choose_noncentering, family_data_sd, family_whitening
from bayes_scaling.model import ModelSpec, build_model


# densities and prior draws evaluated at a few points (conftest.python_linker)
pytestmark = pytest.mark.usefixtures("python_linker")


def _data(synthetic_truth):
    _, df = synthetic_truth
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")


def _theta_function(model):
    """theta as a function of the model's free values."""
    theta = model.replace_rvs_by_values([model["theta"]])[0]
    return model.compile_fn(theta, inputs=model.value_vars, on_unused_input="ignore")


@pytest.mark.parametrize("mode", ["fixed", "conditional"])
def test_whitened_family_layer_is_the_centred_density_of_theta(synthetic_truth, mode):
    """theta = map(u) per family: the whitened model's log density of u is the centred one's at theta(u)
    plus the map's log Jacobian (zero for the fixed map), found here by finite differences."""
    data = _data(synthetic_truth)
    spec = ModelSpec.from_data(data)
    w = family_whitening(data, spec, mode=mode)
    assert w["shift"].shape == (3, 5) and w["mode"] == mode
    if mode == "fixed":
        assert w["chol"].shape == (3, 5, 5)
        assert np.allclose(np.triu(w["chol"], 1), 0.0) and (np.diagonal(w["chol"], axis1=1, axis2=2) > 0).all()
    else:
        assert w["hessian"].shape == (3, 5, 5) and np.allclose(w["hessian"], np.swapaxes(w["hessian"], 1, 2))
    centred, white = build_model(data, spec), build_model(data, spec, w)
    free = {v.name for v in white.free_RVs}
    assert "theta_whitened" in free and "theta" not in free
    lp_c, lp_w = centred.compile_logp(), white.compile_logp()
    theta_of = _theta_function(white)
    rng = np.random.default_rng(0)
    start = white.initial_point(random_seed=0)
    for _ in range(3):
        point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in start.items()}
        theta = theta_of(point)
        h, jac = 1e-6, np.empty((3, 5, 5))
        for j in range(5):
            step = np.zeros((3, 5))
            step[:, j] = h
            up = dict(point, theta_whitened=point["theta_whitened"] + step)
            down = dict(point, theta_whitened=point["theta_whitened"] - step)
            jac[:, :, j] = (theta_of(up) - theta_of(down)) / (2 * h)  # families do not depend on each other
        log_jac = np.linalg.slogdet(jac)[1].sum()
        if mode == "fixed":
            assert np.allclose(jac, w["chol"], atol=1e-6)
            assert np.allclose(theta, w["shift"] + (w["chol"] @ point["theta_whitened"][..., None])[..., 0], atol=1e-8)
        cpoint = {k: v for k, v in point.items() if k != "theta_whitened"} | {"theta": theta}
        lp_free = 0.0 if mode == "fixed" else log_jac  # the fixed map's constant Jacobian is left out
        assert lp_w(point) == pytest.approx(lp_c(cpoint) + lp_free, rel=1e-7, abs=1e-5)
    # u = 0 starts the sampler: the family estimates (fixed); a non-centred or single-family layer is not whitened
    from bayes_scaling.inference.compiled import CompiledModel

    cm = CompiledModel.build(data, spec, whiten=mode)
    model, init, whitened = cm.model, cm.initvals, cm.whitened
    assert whitened == mode and np.all(init["theta_whitened"] == 0)
    if mode == "fixed":
        assert np.allclose(_theta_function(model)(model.initial_point()), w["shift"])
    assert CompiledModel.build(data, ModelSpec.from_data(data, noncentering={"log_alpha": 1}), whiten=mode).whitened is None
    assert CompiledModel.build(data, spec, whiten=False).whitened is None
    one = data.subset((data.frame["family"] == "fam0").to_numpy(), name="one family", reason="test", drops_families=True)
    assert CompiledModel.build(one, ModelSpec.from_data(one), whiten=mode).whitened is None
    with pytest.raises(ValueError, match="whiten must be"):
        bs.fit(data, sampler=dict(whiten="partly"))


@pytest.mark.parametrize("degree", [1.0, 0.4])
def test_block_noncentring_is_the_same_prior_on_theta(synthetic_truth, degree):
    """Full (degree 1) and partial (0.4) non-centring of a block: the same prior on theta as centred."""
    data = _data(synthetic_truth)
    centred = build_model(data, ModelSpec.from_data(data))
    assert "eta" not in centred.named_vars and "theta" in [v.name for v in centred.free_RVs]  # centred default
    spec = ModelSpec.from_data(data, noncentering={"log_alpha": degree, "log_beta": 1})
    assert spec.noncentering == {"log_alpha": degree, "log_beta": 1.0}
    model = build_model(data, spec)
    assert list(model.coords["noncentred_param"]) == ["log_alpha", "log_beta"]
    assert {v.name for v in model.free_RVs} >= {"eta", "theta_centred"}
    assert np.isfinite(model.compile_logp()(model.initial_point(random_seed=0)))
    # the same joint prior of (mu, Sigma, theta): compare prior draws of theta's deviations from mu
    draws = {}
    for name, m in (("centred", centred), ("block", model)):
        with m:
            dev = pm.draw(m["theta"] - m["mu"][None, :], draws=3000, random_seed=1)  # (draw, family, param)
        draws[name] = dev.reshape(-1, dev.shape[-1])
    a, b = draws["centred"], draws["block"]
    assert np.allclose(np.median(np.abs(a), axis=0), np.median(np.abs(b), axis=0), rtol=0.08)
    ca, cb = np.corrcoef(a.T), np.corrcoef(b.T)
    assert np.max(np.abs(ca - cb)) < 0.06
    if degree < 1:  # partial: the sampled eta's prior sd scales with the spread as d^(1 - degree)
        with model:
            eta, d = pm.draw([model["eta"], model["tau"]], draws=3000, random_seed=2)
        spread = np.abs(eta[:, :, 0]).mean(axis=1)
        alpha = list(spec.law_obj.sampling).index("log_alpha")
        assert np.corrcoef(np.log(spread), np.log(d[:, alpha]))[0, 1] > 0.3


def test_noncentering_rejects_unknown_parameters_and_degrees_outside_0_1(synthetic_truth):
    data = _data(synthetic_truth)
    with pytest.raises(ValueError, match="not sampling parameters"):
        ModelSpec.from_data(data, noncentering={"alpha": 1})
    with pytest.raises(ValueError, match="must lie in"):
        ModelSpec.from_data(data, noncentering={"log_alpha": 1.5})
    assert ModelSpec.from_data(data, noncentering={"log_alpha": 0, "log_beta": 0.5}).noncentering == {"log_beta": 0.5}
    with pytest.raises(ValueError, match="'auto'"):
        bs.fit(data, sampler=dict(noncentering="yes"))


def test_auto_noncentring_picks_the_weakly_identified_exponent():
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs

    rng = np.random.default_rng(3)
    # few sizes, dense checkpoints: the D-term is pinned down per family, the N-term is not
    df = simulate_runs(simulate_family_parameters(6, rng), rng, sizes=(5e7, 1e8, 2e8), checkpoints=12)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    spec = ModelSpec.from_data(data)
    sd, resid = family_data_sd(data, spec)
    names = list(spec.law_obj.sampling)
    assert sd.shape == (6, 5) and 0.001 < resid < 0.05
    assert np.median(sd[:, names.index("log_alpha")]) > np.median(sd[:, names.index("log_beta")])
    chosen = choose_noncentering(data, spec)
    assert "log_alpha" in chosen and "log_beta" not in chosen
    one = data.select_families([data.families[0]])
    assert choose_noncentering(one, ModelSpec.from_data(one)) == {}


def test_noise_split_recovers_run_and_checkpoint_sd():
    from bayes_scaling.inference.parameterisation import residual_noise_split

    rng = np.random.default_rng(0)
    runs = [np.arange(10 * j, 10 * j + 10) for j in range(400)]
    resid = np.concatenate([0.02 * rng.standard_normal() + 0.005 * rng.standard_normal(10) for _ in runs])
    seed, obs = residual_noise_split(resid, runs)
    assert abs(seed - 0.02) < 0.002 and abs(obs - 0.005) < 0.0003
    # runs of one row: the two cannot be told apart, everything is run noise
    single = [np.array([j]) for j in range(50)]
    assert residual_noise_split(resid[:50], single) == (pytest.approx(np.sqrt(np.mean(resid[:50] ** 2))), 0.0)


def test_run_information_is_the_shared_deviation_covariance():
    from bayes_scaling.inference.parameterisation import run_information

    rng = np.random.default_rng(1)
    runs = [np.arange(0, 4), np.arange(4, 5), np.arange(5, 12)]
    jac = rng.standard_normal((12, 3))
    expected = sum(jac[r].T @ np.linalg.inv(0.01**2 * np.eye(len(r)) + 0.03**2 * np.ones((len(r), len(r)))) @ jac[r]
                   for r in runs)
    np.testing.assert_allclose(run_information(jac, runs, 0.03, 0.01), expected, rtol=1e-10)
    np.testing.assert_allclose(run_information(jac, runs, 0.03, 0.0), jac.T @ jac / 0.03**2, rtol=1e-12)


def test_laplace_counts_a_runs_checkpoints_once_for_the_n_term():
    """Ten checkpoints of one run share its deviation: the N-exponent's data sd is wider than if every row
    were independent, the D-exponent's narrower (it is informed at the checkpoint noise). The conditional
    whitening uses the shared count; the fixed one keeps the independent count."""
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
    from bayes_scaling.inference.parameterisation import family_gauss_newton

    rng = np.random.default_rng(4)
    df = simulate_runs(simulate_family_parameters(4, rng), rng, checkpoints=10, sigma_seed=0.01, sigma_obs=0.005)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    spec = ModelSpec.from_data(data)
    names = list(spec.law_obj.sampling)
    theta, iid, s = family_gauss_newton(data, spec)
    _, shared, s_shared = family_gauss_newton(data, spec, theta, shared_runs=True)
    assert s_shared == s
    prior = np.eye(len(names)) / 4.0  # a weak prior keeps the single-row directions finite
    sd = np.sqrt(np.diagonal(np.linalg.inv(shared + prior), axis1=1, axis2=2))
    sd_iid = np.sqrt(np.diagonal(np.linalg.inv(iid + prior), axis1=1, axis2=2))
    ratio = np.median(sd / sd_iid, axis=0)
    assert ratio[names.index("log_alpha")] > 1.5 and ratio[names.index("log_beta")] < 0.8
    assert np.array_equal(family_whitening(data, spec, theta, "conditional")["hessian"], shared)
