import atexit
import os
import shutil
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytensor
import pytest

import bayes_scaling as bs
from bayes_scaling.data import data_root
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.laws import Law, Parameter

warnings.simplefilter("ignore", FutureWarning)

# compiled models go to a folder of this session only (bayes_scaling/inference/compile_store.py): a disk cache
# left by an earlier run or another version of the code cannot change what the tests see
_COMPILED = tempfile.mkdtemp(prefix="bayes_scaling_test_compiled_")
os.environ["BAYES_SCALING_COMPILE_CACHE_DIR"] = _COMPILED
atexit.register(shutil.rmtree, _COMPILED, ignore_errors=True)

#: small but real NUTS settings for end-to-end fits on 2 cores
FAST = dict(draws=300, tune=300, chains=2, random_seed=1)

#: Kaplan et al. 2020 written through the law interface (as docs/howto/your_own_law.md writes it)
KAPLAN = Law(
    name="kaplan_test",
    formula="((N_c / params)**(alpha_N / alpha_D) + D_c / tokens)**alpha_D",
    parameters=(Parameter("N_c", anchor=("params", 1.0), loc=12.0, scale=3.0),
                Parameter("alpha_N", loc="log(0.08)", scale=0.5, spread=0.15),
                Parameter("D_c", anchor=("tokens", 1.0), loc=8.0, scale=3.0),
                Parameter("alpha_D", loc="log(0.1)", scale=0.5, spread=0.15)),
)


@pytest.fixture
def python_linker():
    """PyTensor functions that the test compiles itself (a log density at a few points, prior draws) run on the
    Python linker.

    Each is evaluated a few times, and PyTensor's default linker would first compile every operation of its
    graph in C: a minute or more in the first process on a machine, whose PyTensor cache is empty. Sampling is not
    affected: nutpie compiles the model with numba as in users' fits, and the tests of a backend name it.
    """
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        yield


@pytest.fixture(scope="session")
def shared_root():
    """The shared published data folder (../shared/data in CI).

    A clone without it skips the real-data tests with the reason; CI sets BAYES_SCALING_REQUIRE_DATA=1,
    so there a missing folder fails instead of skipping.
    """
    try:
        return data_root()
    except FileNotFoundError as exc:
        if os.environ.get("BAYES_SCALING_REQUIRE_DATA") == "1":
            raise
        pytest.skip(f"real-data test skipped: {exc}")


@pytest.fixture
def frame():
    return pd.DataFrame({
        "family": ["a"] * 4 + ["b"] * 4,
        "params": [1e8, 1e8, 4e8, 4e8] * 2,
        "tokens": [1e9, 2e9, 4e9, 8e9] * 2,
        "loss": [3.5, 3.3, 3.0, 2.9, 3.6, 3.4, 3.1, 3.0],
    })


@pytest.fixture(scope="session")
def synthetic_truth():
    rng = np.random.default_rng(42)
    fams = simulate_family_parameters(3, rng)
    df = simulate_runs(fams, rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=5, seeds=2, sigma_seed=0.01, sigma_obs=0.004)
    return fams, df


@pytest.fixture(scope="session")
def small_fit(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    # 500 tuning steps: with FAST's 300, whether the chains agree on three families' spread (R-hat 1.02 or 1.10)
    # turns on floating-point rounding, which differs between the first process on a machine (PyTensor compiling
    # its operations) and later ones (reading them from its cache)
    return bs.fit(data, dict(extrapolation=0.02), sampler={**FAST, "tune": 500})
