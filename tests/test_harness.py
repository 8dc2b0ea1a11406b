"""The borrowed-priors harness end to end on synthetic data with a known law (small NUTS settings)."""

import numpy as np

import bayes_scaling as bs
from bayes_scaling.evaluate import METHODS, HarnessSettings, evaluate_borrowing, summary_table

from conftest import FAST


def test_harness_scores_ours_and_every_baseline(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    settings = HarnessSettings(ks=(1, 2), huber_grid_stride=45, fit_kwargs={k: v for k, v in FAST.items()
                                                                            if k != "random_seed"})
    seen = []
    rows = evaluate_borrowing(data, families=["fam0"], settings=settings, dataset="synthetic",
                              on_family=lambda r: seen.append(len(r)))
    assert seen == [len(rows)] and len(rows) == 2 * len(METHODS)
    assert set(rows["method"]) == set(METHODS) and set(rows["k"]) == {1, 2}
    assert rows["are"].between(0, 1).all() and (rows["n_points"] > 0).all()
    ours = rows[rows["method"] == "bayes_borrowed"].set_index("k")
    assert ours["cover90"].between(0, 1).all() and (ours["cover50"] <= ours["cover90"]).all()
    last = rows[rows["method"] == "last_checkpoint"].set_index("k")
    # the largest model is 8x the smallest: a constant loss misses by far more than the borrowed law
    assert (ours["are"] < last["are"]).all()
    tab = summary_table(rows)
    assert len(tab) == 2 * len(METHODS) and np.isfinite(tab["median_are"]).all()
