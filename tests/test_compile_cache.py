"""A compiled model serves every fit of the same structure, and only those, with the same posterior."""

import dataclasses

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.inference import compile_cache
from bayes_scaling.inference.fit import model_spec
from bayes_scaling.model import build_model


def _data(df, families, drop_every=None):
    sub = df[df["family"].isin(families)]
    if drop_every:
        sub = sub.iloc[::drop_every]
    return bs.ScalingData.from_frame(sub, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")


def _key(data, priors=None, likelihood="normal"):
    spec, _ = model_spec(data, "chinchilla", priors, likelihood=likelihood)
    return compile_cache.structure_key(build_model(data, spec))


def test_structure_key_ignores_data_values_but_not_structure(synthetic_truth):
    _, df = synthetic_truth
    two = _key(_data(df, ["fam0", "fam1"]))
    # other families, other losses, other row and run counts, another median loss, another number of families:
    # the same computation (dimension lengths reach the compiled code at run time, as data do)
    assert _key(_data(df, ["fam1", "fam2"], drop_every=2)) == two
    assert _key(_data(df, ["fam0", "fam1", "fam2"])) == two
    assert _key(_data(df, ["fam0", "fam1"]), likelihood="student_t") != two
    data = _data(df, ["fam0", "fam1"])
    spec, _ = model_spec(data, "chinchilla", None)
    wider = dataclasses.replace(spec.priors, sigma_total=bs.Prior("HalfNormal", sigma=2 * spec.priors.sigma_total["sigma"]))
    assert _key(data, priors=wider) != two  # a prior constant that is not data is part of the structure


def test_reused_compiled_model_gives_the_same_posterior(small_fit, synthetic_truth, monkeypatch, tmp_path):
    _, df = synthetic_truth
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))  # no model compiled by an earlier test
    prior = bs.PopulationPrior.from_fit(small_fit, draws=400)
    small = df[df["params"] == df["params"].min()]

    def one(fam, name):
        return _data(small.assign(family=np.where(small["family"] == fam, name, small["family"])), [name])

    settings = dict(borrow=prior, sampler=dict(draws=100, tune=100, chains=2, random_seed=5))
    compile_cache.clear()
    first = bs.fit(one("fam0", "new_a"), **settings)
    reused = bs.fit(one("fam2", "new_b"), **settings)
    assert not first.sampler_info["compile_cache_hit"] and reused.sampler_info["compile_cache_hit"]
    assert (first.sampler_info["compile_source"], reused.sampler_info["compile_source"]) == ("compiled", "memory")
    assert compile_cache.stats()["hits"] >= 1
    assert list(reused.idata.posterior["theta"].coords["family"].values) == ["new_b"]
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE", "0")
    fresh = bs.fit(one("fam2", "new_b"), **settings)
    assert not fresh.sampler_info["compile_cache_hit"]
    for var in ("mu", "sigma_total", "seed_share"):
        np.testing.assert_array_equal(reused.idata.posterior[var].to_numpy(), fresh.idata.posterior[var].to_numpy())
    # and the data really were swapped: new_b's posterior is not new_a's
    assert not np.allclose(first.idata.posterior["mu"].to_numpy(), reused.idata.posterior["mu"].to_numpy())


def test_a_model_compiled_for_two_families_computes_the_log_density_of_three(synthetic_truth, python_linker,
                                                                              monkeypatch, tmp_path):
    _, df = synthetic_truth
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE_DIR", str(tmp_path))
    compile_cache.clear()
    models = []
    for families in (["fam0", "fam1"], ["fam0", "fam1", "fam2"]):
        data = _data(df, families)
        spec, _ = model_spec(data, "chinchilla", None)
        models.append(build_model(data, spec))
    compile_cache.compile_nutpie(models[0], {}, backend="numba")
    compiled, source, _ = compile_cache.compile_nutpie(models[1], {}, backend="numba")
    assert source == "memory"
    model = models[1]
    names, slices, shapes = compiled.shape_info
    assert list(compiled.coords["family"]) == ["fam0", "fam1", "fam2"]
    assert compiled.n_dim == sum(np.size(value) for value in model.initial_point().values())
    logp_of, dlogp_of = model.compile_logp(), model.compile_dlogp()  # PyTensor's own, by name, for reference
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = np.asarray(compiled.initial_point_func(int(rng.integers(1000))), float)
        point = {name: x[sl].reshape(shape) for name, sl, shape in zip(names, slices, shapes)
                 if sl.stop <= compiled.n_dim}
        logp, grad, code = _logp_and_gradient(compiled, x)
        assert code == 0
        np.testing.assert_allclose(logp, logp_of(point), rtol=1e-10)
        np.testing.assert_allclose(grad, dlogp_of(point), rtol=1e-8, atol=1e-10)
    assert _logp_and_gradient(compiled, x[:-1])[2] == -1  # a vector of another length is refused, not read past


def test_an_exception_inside_the_graph_is_nutpies_recoverable_error_and_prints_nothing(capfd):
    """The C entry point calls the graph function by symbol: an exception raised in it (here an assertion on the
    parameter) must come back as nutpie's recoverable code 1, as a non-finite density does, not end the sampler
    and not print a traceback at every such draw."""
    import pymc as pm
    from pytensor.raise_op import Assert

    from bayes_scaling.inference.compile_numba import compile_model

    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0, shape=2)
        pm.Potential("checked", Assert("x[0] below 5")(x.sum() * 0.0, x[0] < 5.0))
    compiled = compile_model(model, {}, None)
    logp, grad, code = _logp_and_gradient(compiled, np.array([1.0, -2.0]))
    assert code == 0
    np.testing.assert_allclose(grad, [-1.0, 2.0])
    np.testing.assert_allclose(logp, -np.log(2 * np.pi) - 2.5)
    assert _logp_and_gradient(compiled, np.array([6.0, 0.0]))[2] == 1
    assert _logp_and_gradient(compiled, np.array([1.0, -2.0]))[2] == 0  # and the next call is sound
    captured = capfd.readouterr()
    assert "Exception" not in captured.err + captured.out and "Assert" not in captured.err + captured.out


def _logp_and_gradient(compiled, x):
    """nutpie's C entry point of the log density and gradient, called as nutpie calls it."""
    import ctypes

    signature = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, *[ctypes.c_void_p] * 4)
    grad, logp = np.zeros_like(x), np.zeros(())
    code = signature(compiled.compiled_logp_func.address)(len(x), x.ctypes.data, grad.ctypes.data, logp.ctypes.data,
                                                          compiled.user_data.ctypes.data)
    return float(logp), grad, code


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_cache_can_be_switched_off(value, monkeypatch):
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE", value)
    assert not compile_cache.enabled()
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE", "1")
    assert compile_cache.enabled()


def test_value_digest_is_by_value_never_by_address():
    assert compile_cache._value_digest(slice(1, None)) == compile_cache._value_digest(slice(1, None))
    assert compile_cache._value_digest(slice(1, None)) != compile_cache._value_digest(slice(2, None))
    assert compile_cache._value_digest(np.arange(3.0)) == compile_cache._value_digest(np.arange(3.0))
    assert compile_cache._value_digest(np.arange(3.0)) != compile_cache._value_digest(np.arange(3))
