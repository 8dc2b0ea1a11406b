"""The Hitchhiker's protocol as data operations: splits, scores, thinning, donor baseline, stacking."""

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data import ScalingData, thin_checkpoints
from bayes_scaling.errors import DuplicateRowError, UnknownFamilyError
from bayes_scaling.evaluate import donor_fit, predict_natural, score, split_family
from bayes_scaling.evaluate.protocol import lognormal_interval


def _zoo(sizes=(1e8, 2e8, 4e8, 8e8), checkpoints=10):
    rows = []
    for fam in ("a", "b"):
        for n in sizes:
            for t in np.linspace(0.1, 1.0, checkpoints) * 20 * n:
                rows.append({"family": fam, "params": n, "tokens": t, "loss": 2 + 400 * n**-0.3 + 900 * t**-0.3})
    return ScalingData.from_frame(pd.DataFrame(rows))


def test_split_trains_on_k_smallest_and_targets_last_30_percent_of_the_largest():
    data = _zoo()
    sp = split_family(data, "a", 2)
    assert set(sp.train.frame["params"]) == {1e8, 2e8} and set(sp.train.families) == {"a"}
    assert set(sp.target["params"]) == {8e8} and (sp.target["family"] == "a").all()
    # checkpoints at 10%..100% of 16e9 tokens: those at >= 70% are the target
    assert sp.target["tokens"].min() >= 0.7 * 16e9 * (1 - 1e-9) and len(sp.target) == 4
    assert sp.decades == pytest.approx(np.log10(4))
    assert "protocol_train" in [r.filter for r in sp.train.dropped]


def test_split_applies_fraction_and_thinning_to_the_training_runs_only():
    data = _zoo(checkpoints=30)
    sp = split_family(data, "b", 1, fraction=0.5, max_checkpoints=5)
    assert sp.train.frame["tokens"].max() <= 0.5 * 20 * 1e8 * (1 + 1e-9)
    assert len(sp.train) == 5
    full_last = np.linspace(0.1, 1.0, 30) >= 0.7 - 1e-12
    assert len(sp.target) == full_last.sum()  # the target keeps every checkpoint of its last 30%


def test_split_rejects_impossible_k_and_unknown_family():
    data = _zoo()
    with pytest.raises(ValueError, match="k must be 1..3"):
        split_family(data, "a", 4)
    with pytest.raises(UnknownFamilyError):
        split_family(data, "zzz", 1)


def test_score_by_hand():
    true = np.array([2.0, 4.0])
    s = score(true, np.array([2.2, 4.0]), np.array([1.9, 4.1]), np.array([2.1, 4.2]),
              np.array([1.5, 3.0]), np.array([2.5, 5.0]))
    assert s["are"] == pytest.approx((0.1 + 0.0) / 2)
    assert s["cover50"] == 0.5 and s["cover90"] == 1.0
    assert np.isnan(score(true, true)["cover90"])
    lo, hi = lognormal_interval(np.array([1.0]), 0.1, 0.9)
    assert lo[0] * hi[0] == pytest.approx(1.0) and np.log(hi[0]) == pytest.approx(1.6449 * 0.1, rel=1e-3)


def test_thin_checkpoints_keeps_ends_and_records_the_drop():
    data = _zoo(checkpoints=50)
    thin = thin_checkpoints(data, 6)
    per_run = thin.frame.groupby("run")["tokens"].agg(["size", "min", "max"])
    full = data.frame.groupby("run")["tokens"].agg(["min", "max"])
    assert (per_run["size"] <= 6).all() and (per_run["size"] >= 5).all()
    assert np.allclose(per_run["min"], full["min"]) and np.allclose(per_run["max"], full["max"])
    rec = thin.dropped[-1]
    assert rec.filter == "thin_checkpoints" and rec.rows == len(data) - len(thin)
    with pytest.raises(ValueError):
        thin_checkpoints(data, 1)


def test_donor_fit_picks_the_family_whose_law_generated_the_data():
    donors = {"near": {"E": 1.0, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.36},
              "far": {"E": 1.0, "A": 40.0, "alpha": 0.2, "B": 20000.0, "beta": 0.5}}
    n = np.repeat([1e8, 2e8], 5)
    d = np.tile(np.geomspace(1e9, 4e9, 5), 2)
    loss = predict_natural(dict(donors["near"], E=1.7), n, d)
    p, name = donor_fit(donors, n, d, loss)
    assert name == "near" and p["E"] == pytest.approx(1.7, rel=1e-3) and p["alpha"] == 0.34


def test_concat_stacks_distinct_families_and_refuses_shared_names():
    a = _zoo().select_families(["a"])
    b = _zoo().select_families(["b"])
    both = ScalingData.concat([a, b])
    assert both.families == ["a", "b"] and len(both) == len(a) + len(b)
    with pytest.raises(DuplicateRowError, match="family 'a'"):
        ScalingData.concat([a, a])


def test_datablations_unique_data_runs(shared_root):
    data = bs.data.load_datablations(epochs=1)
    assert data.frame["run"].str.contains("/ep1/").all()
    assert any(r.filter == "epochs" and r.rows > 0 for r in data.dropped)


def test_last_fraction_is_per_run_and_keeps_single_point_runs():
    from bayes_scaling.evaluate import last_checkpoint_mean
    from bayes_scaling.evaluate.protocol import last_fraction_mask

    tokens = np.array([1e9, 5e9, 1e10, 2e9])  # run a: three checkpoints; run b: one final loss
    run = np.array(["a", "a", "a", "b"])
    assert last_fraction_mask(tokens, 0.3, run).tolist() == [False, False, True, True]
    assert last_fraction_mask(tokens, 0.3).tolist() == [False, False, True, False]
    assert last_checkpoint_mean(tokens, np.array([4.0, 3.0, 2.0, 3.0]), 0.3, run=run) == 2.5
