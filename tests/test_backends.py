"""Two compile backends: numba (kept and reused across fits of one structure) and JAX (compiles in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_runs
from bayes_scaling.inference import compile_cache
from bayes_scaling.model import ModelSpec, build_model

TRUE = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}


def _data(checkpoints=6, families=("a", "b"), seed=0):
    rng = np.random.default_rng(seed)
    df = simulate_runs({f: TRUE for f in families}, rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=checkpoints,
                       seeds=2, sigma_seed=0.01, sigma_obs=0.01, ou_length=0.3, ou_share=0.8)
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed", source="synthetic OU")


def _model(data, noise):
    return build_model(data, ModelSpec.from_data(data, checkpoint_noise=noise))


def test_auto_picks_jax_for_a_small_kalman_scan_and_numba_otherwise(monkeypatch):
    compile_cache.clear()
    data = _data()  # 2 families x 3 sizes x 2 seeds x 6 checkpoints: 72 rows
    ou, indep = _model(data, "ou"), _model(data, "independent")
    assert compile_cache.has_scan(ou) and not compile_cache.has_scan(indep)
    key = compile_cache.structure_key(ou)
    assert compile_cache.resolve_backend("auto", indep, compile_cache.structure_key(indep)) == "numba"
    assert compile_cache.resolve_backend("auto", ou, key) == "jax"
    assert compile_cache.resolve_backend("numba", ou, key) == "numba"
    assert compile_cache.resolve_backend("jax", indep, None) == "jax"
    # more rows: sampling, where numba's gradient is faster, outweighs numba's compile
    monkeypatch.setattr(compile_cache, "JAX_MAX_ROWS", 71)
    assert compile_cache.resolve_backend("auto", ou, key) == "numba"
    monkeypatch.setattr(compile_cache, "JAX_MAX_ROWS", 72)
    assert compile_cache.resolve_backend("auto", ou, key) == "jax"
    # a structure already compiled by numba in this process is reused whatever the model holds
    compile_cache._CACHE[key] = object()
    try:
        assert compile_cache.resolve_backend("auto", ou, key) == "numba"
    finally:
        compile_cache.clear()
    with pytest.raises(ValueError, match="backend must be one of"):
        compile_cache.resolve_backend("c", ou, key)
    monkeypatch.setattr(compile_cache, "jax_available", lambda: False)
    assert compile_cache.resolve_backend("auto", ou, key) == "numba"
    with pytest.raises(ImportError, match=r"bayes_scaling\[jax\]"):
        compile_cache.resolve_backend("jax", ou, key)


def test_a_mixture_fits_its_components_with_one_numba_model_unless_told_otherwise(monkeypatch):
    """Several fits of one structure: "auto" compiles once with numba instead of JAX per fit."""
    n = compile_cache.REPEATED_FITS_NUMBA
    assert compile_cache.backend_for_fits("auto", n) == "numba"
    assert compile_cache.backend_for_fits("auto", n - 1) == "auto"  # the single-fit rule decides
    assert compile_cache.backend_for_fits("jax", n) == "jax" and compile_cache.backend_for_fits("numba", 1) == "numba"
    monkeypatch.setenv("BAYES_SCALING_COMPILE_CACHE", "0")  # nothing to reuse: a numba compile per fit
    assert compile_cache.backend_for_fits("auto", n) == "auto"


@pytest.mark.usefixtures("python_linker")  # the reference density, evaluated at two points
@pytest.mark.parametrize("noise", ["independent", "ou"])
def test_jax_compiles_the_same_log_density_and_gradient(noise):
    """nutpie's JAX function equals PyTensor's own log density and gradient at two points."""
    import pytensor

    model = _model(_data(), noise)
    compiled = compile_cache._compile_jax(model, {}, None)
    point = model.initial_point()
    names = [v.name for v in compiled._variables if v.name in point]  # nutpie's flat layout, in its order
    assert sorted(names) == sorted(point)
    by_name = {v.name: v for v in model.value_vars}
    inputs = [by_name[n] for n in names]
    logp = model.logp()
    ref = model.compile_fn([logp, *pytensor.grad(logp, inputs)], inputs=inputs, point_fn=False)
    rng = np.random.default_rng(3)
    for _ in range(2):
        values = [np.asarray(point[n]) + 0.1 * rng.standard_normal(np.shape(point[n])) for n in names]
        x = np.concatenate([v.ravel() for v in values])
        value, grad = compiled._make_logp_func()(x, **compiled._shared_data)
        want, *grads = ref(*values)
        assert value == pytest.approx(float(want), rel=1e-10)
        np.testing.assert_allclose(grad, np.concatenate([np.ravel(g) for g in grads]), rtol=1e-8, atol=1e-8)
