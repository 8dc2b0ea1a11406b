"""The same model compiles to the same PyTensor cache keys in every process, so a later process reads it back."""

import itertools
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special

from bayes_scaling.inference.stable_cache_keys import digamma, install


@pytest.mark.parametrize("x", [1e-300, 1e-8, 0.3, 1.0, 2.5, 9.99, 10.0, 10.5, 37.0, 1e4, 1e300, math.inf,
                               -1e-8, -0.5, -2.5, -7.3, -1e3 + 0.25])
def test_digamma_is_scipys(x):
    assert digamma(x) == pytest.approx(float(scipy.special.psi(x)), rel=2e-14, abs=1e-14)


@pytest.mark.parametrize("x", [0.0, -0.0, -1.0, -4.0, -math.inf, math.nan])
def test_digamma_at_the_poles_is_scipys(x):
    np.testing.assert_equal(digamma(x), float(scipy.special.psi(x)))


def test_digamma_compiled_by_numba_in_a_pytensor_graph_is_scipys():
    import pytensor
    import pytensor.tensor as pt

    install()
    x = pt.vector("x")
    f = pytensor.function([x], pt.psi(x), mode="NUMBA")
    grid = np.concatenate([np.geomspace(1e-6, 1e6, 200), -np.linspace(0.1, 20.3, 57), [0.0, -3.0]])
    np.testing.assert_allclose(f(grid), scipy.special.psi(grid), rtol=1e-13, atol=1e-13)


def test_a_broadcasts_length_checks_follow_the_order_of_its_inputs():
    """PyTensor gathers the lengths in a set, whose order (by object id) changes between processes."""
    import pytensor.scalar as ps
    from pytensor.tensor.extra_ops import broadcast_shape

    install()
    lengths = [ps.int64(name) for name in "abc"]
    for order in itertools.permutations(lengths):
        (checked,) = broadcast_shape(*[(n,) for n in order], arrays_are_shapes=True)
        assert checked.owner.inputs[0] is order[0]  # the Assert returns the first length, checked against the rest


KEYS = textwrap.dedent("""
    import warnings
    warnings.simplefilter("ignore")
    import numpy as np
    import bayes_scaling as bs
    from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
    from bayes_scaling.inference import compile_numba
    from bayes_scaling.inference.compiled import CompiledModel
    from bayes_scaling.inference.fit import model_spec
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    rng = np.random.default_rng(0)
    df = simulate_runs(simulate_family_parameters(3, rng), rng, sizes=(2e7, 5e7, 1e8), checkpoints=4)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    for likelihood, whiten in (("normal", "conditional"), ("student_t", "fixed")):
        spec, estimates = model_spec(data, "chinchilla", None, likelihood=likelihood)
        logp_fn, _ = compile_numba._functions(CompiledModel.build(data, spec, estimates, whiten=whiten).model)
        print(likelihood, whiten, numba_funcify_and_cache_key(logp_fn.maker.fgraph)[1])
""")


def test_the_log_densitys_graph_function_has_one_cache_key_in_every_process(tmp_path):
    """The conditional whitening (length checks of a layout read at run time) and the Student-t likelihood
    (digamma in its gradient): without the mending the first key differs between processes and the second is
    None (not cached)."""
    runs = [subprocess.Popen([sys.executable, "-c", KEYS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONHASHSEED": str(seed)})
            for seed in (1, 2)]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        outputs.append(out.split())
    first, second = outputs
    assert len(first) == 6 and first == second
    assert "None" not in first
