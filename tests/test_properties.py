"""Property-based tests (hypothesis): the laws' shape, numpy vs pytensor, and input validation."""

import math

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import bayes_scaling as bs
from bayes_scaling.errors import DataValidationError
from bayes_scaling.laws import get_law
from bayes_scaling.mixing import law as mixing_law
from bayes_scaling.laws.forms import standardized_inputs

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

natural = st.fixed_dictionaries({
    "E": st.floats(0.5, 3.0), "A": st.floats(1.0, 1e4), "alpha": st.floats(0.05, 0.9),
    "B": st.floats(1.0, 1e5), "beta": st.floats(0.05, 0.9)})
size = st.floats(1e6, 1e12)
tokens = st.floats(1e8, 1e14)
factor = st.floats(1.01, 100.0)


@SETTINGS
@given(natural, size, tokens, factor)
# Found by hypothesis in CI: the D-term's decrease (~1e-12) is below the resolution of a loss of 1024.
@example({"E": 2.0, "A": 2424.0, "alpha": 0.0625, "B": 1.0, "beta": 0.84375}, 1e6, 8.9e13, 1.125)
def test_chinchilla_loss_decreases_in_n_and_d_and_stays_above_e(nat, n, d, k):
    law = get_law("chinchilla")
    x = {"params": n, "tokens": d}
    base = law.natural_loss(nat, x)
    bigger_n = law.natural_loss(nat, {"params": n * k, "tokens": d})
    more_d = law.natural_loss(nat, {"params": n, "tokens": d * k})
    # The exact decrease of each term; where it is below the float resolution of the loss
    # (a D-term of 1e-12 on a loss of 1000), a strict '<' cannot hold in floating point, so
    # the law must then at least not increase.
    drops = {"N": nat["A"] * n ** -nat["alpha"] * (1 - k ** -nat["alpha"]),
             "D": nat["B"] * d ** -nat["beta"] * (1 - k ** -nat["beta"])}
    resolvable = 8 * np.finfo(float).eps * base
    for term, after in (("N", bigger_n), ("D", more_d)):
        assert after <= base
        if drops[term] > resolvable:
            assert after < base
            assert base - after == pytest.approx(drops[term], rel=1e-6, abs=4 * resolvable)
    assert base > nat["E"]


@SETTINGS
@given(natural)
def test_chinchilla_limits(nat):
    law = get_law("chinchilla")
    huge = law.natural_loss(nat, {"params": 1e300, "tokens": 1e300})
    assert huge == pytest.approx(nat["E"], rel=1e-9)
    only_d = law.natural_loss(nat, {"params": 1e300, "tokens": 1e10})
    assert only_d == pytest.approx(nat["E"] + nat["B"] * 1e10 ** (-nat["beta"]), rel=1e-9)


@SETTINGS
@given(natural, size, tokens, st.floats(1e7, 1e10), st.floats(1e9, 1e12))
def test_sampling_scale_round_trip_and_same_loss(nat, n, d, n0, d0):
    law = get_law("chinchilla")
    ref = {"params": n0, "tokens": d0}
    theta = law.from_natural(nat, ref)
    back = law.to_natural(theta, ref)
    for k in nat:
        assert back[k] == pytest.approx(nat[k], rel=1e-9)
    z = standardized_inputs(law, {"params": np.array([n]), "tokens": np.array([d])}, ref)
    assert float(law.loss(theta, z)[0]) == pytest.approx(law.natural_loss(nat, {"params": n, "tokens": d}), rel=1e-9)


_theta_sym = {p: pt.dscalar(p) for p in get_law("chinchilla").sampling}
_z_sym = {"params": pt.dvector("zn"), "tokens": pt.dvector("zd")}
_pt_log_loss = pytensor.function(list(_theta_sym.values()) + list(_z_sym.values()),
                                 get_law("chinchilla").log_loss(_theta_sym, _z_sym, xp=pt))


@SETTINGS
@given(st.lists(st.floats(-3, 3), min_size=5, max_size=5),
       st.lists(st.floats(-8, 8), min_size=1, max_size=6), st.floats(-8, 8))
def test_numpy_and_pytensor_agree(theta, zn, zd):
    law = get_law("chinchilla")
    th = dict(zip(law.sampling, theta))
    zn_a = np.array(zn)
    zd_a = np.full_like(zn_a, zd)
    np_val = law.log_loss(th, {"params": zn_a, "tokens": zd_a})
    pt_val = _pt_log_loss(*theta, zn_a, zd_a)
    np.testing.assert_allclose(pt_val, np_val, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.floats(100, 1e5), st.floats(0.5, 4), st.floats(0.3, 1.5), st.floats(0.005, 0.3),
       st.floats(1e3, 1e6), st.floats(1e-3, 0.9), factor)
def test_bimix_loss_decreases_in_steps_and_share(ab, cb, a, b, s, r, k):
    base = mixing_law.natural_loss(ab, cb, a, b, s, r)
    assert mixing_law.natural_loss(ab, cb, a, b, s * k, r) < base
    assume(r * k <= 1.0)
    assert mixing_law.natural_loss(ab, cb, a, b, s, r * k) < base


# ------------------------------------------------------------------ validation: malformed frames never pass silently
good_rows = st.lists(st.tuples(st.sampled_from(["f1", "f2"]), st.floats(1e6, 1e10), st.floats(1e8, 1e12),
                               st.floats(1.5, 6.0)), min_size=2, max_size=12)
BAD_VALUES = [np.nan, np.inf, -np.inf, 0.0, -1.0]


@SETTINGS
@given(good_rows, st.sampled_from(["params", "tokens", "loss"]), st.sampled_from(BAD_VALUES), st.data())
def test_a_bad_value_anywhere_raises(rows, column, bad, data):
    df = pd.DataFrame(rows, columns=["family", "params", "tokens", "loss"])
    df["run"] = [f"r{i}" for i in range(len(df))]
    i = data.draw(st.integers(0, len(df) - 1))
    df.loc[i, column] = bad
    with pytest.raises(DataValidationError):
        bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")


@SETTINGS
@given(good_rows, st.sampled_from(["family", "params", "tokens", "loss"]))
def test_a_missing_column_raises(rows, column):
    df = pd.DataFrame(rows, columns=["family", "params", "tokens", "loss"]).drop(columns=column)
    with pytest.raises(DataValidationError, match=column):
        bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss")


@pytest.mark.filterwarnings("ignore::bayes_scaling.errors.SeedSpreadWarning")
@SETTINGS
@given(good_rows)
def test_duplicated_checkpoints_raise_and_valid_frames_keep_every_row(rows):
    df = pd.DataFrame(rows, columns=["family", "params", "tokens", "loss"])
    df["run"] = [f"r{i}" for i in range(len(df))]
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    assert len(data) == len(df) and math.isclose(data.frame["loss"].sum(), df["loss"].sum())
    dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataValidationError):
        bs.ScalingData.from_frame(dup, family="family", params="params", tokens="tokens", loss="loss", run="run")


@SETTINGS
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6), st.sampled_from(BAD_VALUES + [0.5]))
def test_mixing_shares_must_be_positive_and_sum_to_one(shares, bad):
    doms = [f"d{i}" for i in range(len(shares))]
    total = sum(shares)
    props = pd.DataFrame({"mixture": "m", "domain": doms, "proportion": [s / total for s in shares]})
    losses = pd.DataFrame({"mixture": "m", "domain": doms, "step": 1e4, "val_loss": 2.0})
    assert len(bs.mixing.MixingData.from_frames(losses, props)) == len(doms)
    props.loc[0, "proportion"] = bad if bad != 0.5 else props.loc[0, "proportion"] + 0.5
    with pytest.raises(DataValidationError):
        bs.mixing.MixingData.from_frames(losses, props)
