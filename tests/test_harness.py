"""The borrowed-priors harness end to end on synthetic data with a known law (small NUTS settings)."""

import numpy as np
import pytest
import bayes_scaling as bs
import pandas as pd

from bayes_scaling.evaluate import METHODS, HarnessSettings, calibration_table, evaluate_borrowing, summary_table

from conftest import FAST


@pytest.mark.slow
def test_harness_scores_ours_and_every_baseline(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    settings = HarnessSettings(ks=(1, 2), huber_grid_stride=45, sampler={k: v for k, v in FAST.items()
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
    assert np.isfinite(rows["log_bias"]).all()


def test_score_signs_the_bias():
    from bayes_scaling.evaluate import score

    high = score(np.array([2.0, 4.0]), np.array([2.2, 4.4]))
    assert np.isclose(high["are"], 0.1) and np.isclose(high["log_bias"], np.log(1.1))
    assert np.isclose(score(np.array([2.0]), np.array([1.8]))["log_bias"], np.log(0.9))


def test_calibration_table_pools_tasks_against_the_binomial_range():
    rows = pd.DataFrame({"dataset": ["a"] * 6 + ["b"] * 4, "method": "bayes_borrowed", "k": [1] * 5 + [2] * 5,
                         "cover90": [1, 1, 1, 1, 0.5, 1, 1, 0, 1, 1], "are": 0.02, "log_bias": -0.01})
    rows = pd.concat([rows, rows.assign(method="huber", cover90=0.0)])
    tab = calibration_table(rows).set_index("k")
    assert list(tab.index) == [1, 2, "all"] and tab.loc["all", "tasks"] == 10 and tab.loc["all", "datasets"] == 2
    assert np.isclose(tab.loc[1, "coverage"], 4.5 / 5) and np.isclose(tab.loc[2, "all_inside"], 0.8)
    lo, hi = tab.loc["all", "calibrated_range"]
    assert lo == 0.7 and hi == 1.0  # binomial(10, 0.9): 5% and 95% quantiles 7 and 10
    assert tab.loc["all", "median_log_bias"] == -0.01


def test_paired_table_compares_the_same_tasks_with_a_sign_test():
    from bayes_scaling.evaluate import paired_table

    fams = [f"f{i}" for i in range(8)]
    ours = pd.DataFrame({"dataset": "a", "family": fams, "k": 1, "method": "bayes_borrowed", "are": 0.01})
    worse = ours.assign(method="huber", are=[0.04] * 7 + [0.005])  # ours closer on 7 of 8 tasks
    extra = pd.DataFrame({"dataset": ["a"], "family": ["only_huber"], "k": [1], "method": ["huber"], "are": [9.0]})
    tab = paired_table(pd.concat([ours, worse, extra])).set_index(["baseline", "k"])
    row = tab.loc[("huber", "all")]
    assert row["tasks"] == 8 and row["wins"] == 7 and row["losses"] == 1  # the unpaired task is left out
    assert np.isclose(row["sign_test_p"], 18 / 256)  # two-sided binomial(8, 1/2): P(<= 1) + P(>= 7)
    assert np.isclose(row["median_log_ratio"], np.log(0.25))
    assert np.isclose(row["median_are"], 0.01) and np.isclose(row["baseline_median_are"], 0.04)
    assert list(tab.index.get_level_values("baseline").unique()) == ["huber"]
    with pytest.raises(ValueError, match="scored twice"):  # one dataset's rows of two runs pooled by mistake
        paired_table(pd.concat([ours, worse, ours]))


def test_ou_request_on_one_point_runs_fits_the_identical_independent_model(small_fit, synthetic_truth):
    """Runs revealed at a single checkpoint (a planning backtest's early stops) have nothing to correlate:
    the scorer fits the independent model, which is the same model there, and says so in the row."""
    from bayes_scaling.evaluate.harness import bayes_scored
    from bayes_scaling.evaluate.protocol import Split

    _, df = synthetic_truth
    fam = bs.ScalingData.from_frame(df[df["family"] == "fam0"], family="family", params="params", tokens="tokens",
                                    loss="loss", run="run", seed="seed").frame
    small = fam[fam["params"] == fam["params"].min()]
    first = small[small["tokens"] == small["tokens"].min()]  # each seed's run stopped at its first checkpoint
    train = bs.ScalingData.from_frame(first, family="family", params="params", tokens="tokens", loss="loss",
                                      run="run", seed="seed")
    assert not train.has_checkpoint_curves
    split = Split(family="fam0", k=1, train=train, target=fam[fam["params"] == fam["params"].max()],
                  train_sizes=(float(small["params"].iloc[0]),), target_size=float(fam["params"].max()))
    row = bayes_scored(split, bs.PopulationPrior.from_fit(small_fit, draws=400), bs.ModelConfig(checkpoint_noise="ou"),
                       bs.SamplerConfig(**FAST))
    assert "independent checkpoint noise" in row["detail"] and 0 <= row["are"] < 1
