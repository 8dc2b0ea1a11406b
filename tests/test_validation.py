"""One test per validation error of the data layer (and priors)."""

import math

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.errors import (
    DuplicateRowError,
    EmptyFamilyError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositiveValueError,
    PerplexityLikeLossError,
    PriorError,
    SeedSpreadWarning,
    UnknownFamilyError,
)


def build(df, **kw):
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", **kw)


def test_valid_frame_builds(frame):
    d = build(frame)
    assert len(d) == 8 and d.families == ["a", "b"]
    assert len(d.runs) == 4  # default run = (family, params)
    assert np.allclose(d.frame["flops"], 6 * d.frame["params"] * d.frame["tokens"])


def test_missing_column(frame):
    with pytest.raises(MissingColumnError, match="loss='val_loss'"):
        bs.ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="val_loss")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(frame, bad):
    frame.loc[2, "loss"] = bad
    with pytest.raises(NonFiniteValueError, match="'loss'"):
        build(frame)


@pytest.mark.parametrize("col", ["params", "tokens", "loss"])
def test_non_positive(frame, col):
    frame.loc[1, col] = 0.0
    with pytest.raises(NonPositiveValueError, match=col):
        build(frame)


def test_duplicated_run_tokens(frame):
    frame.loc[1, "tokens"] = frame.loc[0, "tokens"]
    with pytest.raises(DuplicateRowError, match="share a \\(run, tokens\\)"):
        build(frame)


def test_perplexity_like_loss(frame):
    frame["loss"] = np.exp(frame["loss"])  # perplexities ~20-37
    with pytest.raises(PerplexityLikeLossError, match="loss_kind='perplexity'"):
        build(frame)
    d = build(frame, loss_kind="perplexity")
    assert d.frame["loss"].max() < 4


def test_empty_family_after_filter(frame):
    frame.loc[frame["family"] == "a", "tokens"] = [1e8, 2e8, 3e8, 4e8]
    d = build(frame)
    with pytest.raises(EmptyFamilyError, match="'a'"):
        bs.data.drop_early_checkpoints(d, 1e9)


def test_filters_count_dropped_rows(frame):
    d = build(frame)
    f = bs.data.drop_early_checkpoints(d, 3e9)
    assert len(f) == 4
    assert f.dropped[-1].rows == 4 and f.dropped[-1].filter == "min_tokens"
    g = bs.data.keep_fraction_of_run(d, 0.5)
    # each run has tokens (t, 2t): the first half keeps only t
    assert len(g) == 4 and g.dropped[-1].filter == "fraction_of_run"


def test_run_in_two_families(frame):
    frame["run"] = "same"
    frame["tokens"] = np.arange(1, 9) * 1e9
    with pytest.raises(DuplicateRowError, match="more than one family"):
        build(frame, run="run")


def test_non_numeric_column(frame):
    frame["params"] = "1.3B"
    with pytest.raises(NonFiniteValueError, match="not numeric"):
        build(frame)


def test_unknown_family_selection(frame):
    with pytest.raises(UnknownFamilyError, match="zzz"):
        build(frame).select_families(["zzz"])


def test_impossible_priors():
    law = bs.laws.CHINCHILLA
    p = bs.Priors.default(law, 3.0)
    with pytest.raises(PriorError, match="positive"):
        bs.Prior("Gamma", alpha=2.0, beta=-1.0)
    p.tau["log_alpha"] = bs.Prior("Normal", mu=0.0, sigma=0.1)  # a spread cannot be negative
    with pytest.raises(PriorError, match=r"priors.tau\['log_alpha'\].*support"):
        p.validate(law)
    p = bs.Priors.default(law, 3.0)
    p.mu["gamma"] = bs.Prior("Normal", mu=1.0, sigma=1.0)
    with pytest.raises(PriorError, match="sampling parameters"):
        p.validate(law)
    p = bs.Priors.default(law, 3.0)
    p.sigma_total = 0.05  # a number where a Prior belongs
    with pytest.raises(PriorError, match="is not a Prior"):
        p.validate(law)
    with pytest.raises(PriorError, match="positive finite"):
        bs.Prior("HalfNormal", sigma=math.nan)
    with pytest.raises(PriorError):
        bs.Priors.default(law, -1.0)


def _two_seed_frame(factor):
    rows = []
    for seed, scale in ((1, 1.0), (2, factor)):
        for d in (1e9, 2e9, 4e9):
            rows.append({"family": "a", "params": 1e8, "tokens": d, "loss": scale * (3.0 + 1e9 / d), "seed": seed})
    return pd.DataFrame(rows)


def test_seed_keyed_runs_a_factor_apart_warn():
    import warnings

    with pytest.warns(SeedSpreadWarning, match="same evaluation"):
        d = build(_two_seed_frame(4.0), seed="seed")
    assert len(d.runs) == 2  # nothing dropped: the warning only says what to check
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeedSpreadWarning)
        build(_two_seed_frame(1.02), seed="seed")  # a 2% seed difference is plausible: silent
