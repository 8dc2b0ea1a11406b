"""The fused rows' kernel (bayes_scaling/model/fused_rows.py) is the elementwise model's density and gradient."""

import numpy as np
import pytensor
import pytest

import bayes_scaling as bs
from bayes_scaling.model import ModelSpec, build_model
from bayes_scaling.model.fused_rows import RowsLoglik, law_layout, rows_value_and_grad
from bayes_scaling.model.hierarchical import model_arrays
from bayes_scaling.model.likelihood import gaussian_run_terms, run_marginal_loglik


def _data(synthetic_truth, uneven: bool = False):
    _, df = synthetic_truth
    if uneven:  # runs of different lengths, one run of a single checkpoint
        df = df.drop(df.index[[0, 1, 2, 5, 9]])
    df = df.assign(flops=6.0 * df["params"] * df["tokens"])
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                     flops="flops")


def _density_and_gradient(model, mode):
    logp = model.logp()
    return model.compile_fn([logp, *pytensor.grad(logp, model.value_vars)], inputs=model.value_vars,
                            point_fn=False, mode=mode)


@pytest.mark.parametrize("law,uneven,mode", [("chinchilla", False, "NUMBA"), ("compute", True, "FAST_COMPILE")])
def test_fused_model_has_the_elementwise_models_density_and_gradient(synthetic_truth, law, uneven, mode):
    """At random points, the fused model's log density and its gradient in every free variable equal those of
    the model built from PyTensor's elementwise operations (numba: nutpie's kernel; FAST_COMPILE: the Op's numpy
    implementation, which PyMC's own sampler runs, on PyTensor's Python linker: nothing compiled in C)."""
    data = _data(synthetic_truth, uneven)
    spec = ModelSpec.from_data(data, law)
    fused, plain = build_model(data, spec), build_model(data, spec, fused=False)
    assert any(isinstance(node.op, RowsLoglik) for node in pytensor.graph.traversal.applys_between(
        fused.value_vars, [fused.logp()]))
    assert not any(isinstance(node.op, RowsLoglik) for node in pytensor.graph.traversal.applys_between(
        plain.value_vars, [plain.logp()]))
    f_fused, f_plain = _density_and_gradient(fused, mode), _density_and_gradient(plain, mode)
    start = fused.initial_point(random_seed=0)
    rng = np.random.default_rng(3)
    for _ in range(3):
        point = [start[v.name] + 0.3 * rng.standard_normal(np.shape(start[v.name])) for v in fused.value_vars]
        got, want = f_fused(*point), f_plain(*point)
        assert np.isfinite(float(got[0]))
        for g, w in zip(got, want):
            assert np.allclose(g, w, rtol=1e-9, atol=1e-8)
        assert max(np.abs(np.asarray(w)).max() for w in want[1:]) > 1.0  # a gradient worth comparing


def test_run_terms_are_the_run_marginal_and_its_derivatives():
    """gaussian_run_terms: the run marginal's value and its analytic derivatives against central differences,
    an empty run included (it adds nothing)."""
    rng = np.random.default_rng(0)
    s1, s2, n = rng.normal(0, 0.1, 5), rng.uniform(0.01, 0.05, 5), np.array([1.0, 3.0, 10.0, 40.0, 0.0])
    s1[-1] = s2[-1] = 0.0
    ss2, so2 = 0.02**2, 0.01**2
    value, d_s1, d_s2, d_ss2, d_so2 = gaussian_run_terms(s1, s2, n, ss2, so2)
    assert np.allclose(value, run_marginal_loglik(s1, s2, n, np.sqrt(ss2), np.sqrt(so2)))
    assert value[-1] == pytest.approx(0.0, abs=1e-9) and d_ss2[-1] == pytest.approx(0.0, abs=1e-6)

    def numeric(k, h):
        args = [s1, s2, ss2, so2]
        up, down = list(args), list(args)
        up[k], down[k] = args[k] + h, args[k] - h
        f = lambda a: gaussian_run_terms(a[0], a[1], n, a[2], a[3])[0]  # noqa: E731
        return (f(up) - f(down)) / (2 * h)

    for k, analytic, h in [(0, d_s1, 1e-6), (1, np.broadcast_to(d_s2, n.shape), 1e-7), (2, d_ss2, 1e-9),
                           (3, d_so2, 1e-10)]:
        assert np.allclose(numeric(k, h), analytic, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("law", ["chinchilla", "compute"])
def test_numba_kernel_is_the_numpy_computation(synthetic_truth, law):
    """The two implementations of the Op (numba for nutpie, numpy for PyMC's sampler) agree on every output."""
    from pytensor.compile.mode import Mode

    data = _data(synthetic_truth, uneven=True)
    spec = ModelSpec.from_data(data, law)
    arr = model_arrays(data, spec)
    law = spec.law_obj
    rng = np.random.default_rng(1)
    theta = rng.normal(-1.0, 0.3, (len(spec.families), len(law.sampling)))
    z = np.stack([arr[f"z_{inp}"] for _, _, inp in law.terms])
    args = (theta, 0.013, 0.007, arr["log_loss"], z, arr["family_index"], arr["run_index"], arr["n_per_run"])
    want = rows_value_and_grad(*args, **law_layout(law))
    variables = [pytensor.tensor.as_tensor_variable(a).type() for a in args]
    outputs = RowsLoglik(**law_layout(law))(*variables)
    got = pytensor.function(variables, outputs, mode=Mode(linker="numba"))(*args)
    for g, w in zip(got, want):
        assert np.allclose(g, w, rtol=1e-10, atol=1e-9)


def test_fused_rows_have_a_first_derivative_only(synthetic_truth):
    """Differentiating the gradient outputs (a second derivative) is refused, not silently wrong."""
    data = _data(synthetic_truth)
    spec = ModelSpec.from_data(data)
    arr = model_arrays(data, spec)
    theta = pytensor.tensor.dmatrix("theta")
    out = RowsLoglik(**law_layout(spec.law_obj))(theta, 0.01, 0.01, arr["log_loss"],
                                                 np.stack([arr["z_params"], arr["z_tokens"]]),
                                                 arr["family_index"], arr["run_index"], arr["n_per_run"])
    pytensor.grad(out[0], theta)  # first derivative: fine
    with pytest.raises(NotImplementedError, match="first derivative"):
        pytensor.grad(out[1].sum(), theta)
