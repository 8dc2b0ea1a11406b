"""Runs off the law: found, named, and down-weighted by the likelihood the default fit chooses."""

import numpy as np
import pytest
from conftest import FAST
from scipy import stats

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.inference.outliers import outlier_table
from bayes_scaling.model.likelihood import run_quadratic, run_sums_numpy


def test_the_quadratic_form_of_a_run_that_follows_the_model_is_chi_square():
    rng = np.random.default_rng(0)
    n, ss, so, runs = 6, 0.03, 0.01, 20000
    r = ss * rng.standard_normal((runs, 1)) + so * rng.standard_normal((runs, n))
    s1, s2 = run_sums_numpy(r.ravel()[None], np.repeat(np.arange(runs), n), runs)
    q = run_quadratic(s1[0], s2[0], n, ss**2, so**2)
    assert stats.kstest(q, stats.chi2(n).cdf).pvalue > 0.01


@pytest.fixture(scope="module")
def zoo_with_a_broken_run():
    """Three synthetic families, one run of fam1 ended 25% above its law (e.g. stopped in warm-up)."""
    rng = np.random.default_rng(11)
    df = simulate_runs(simulate_family_parameters(3, rng), rng, sizes=(5e7, 1e8, 2e8, 4e8), checkpoints=5)
    broken = sorted(df.loc[df["family"] == "fam1", "run"].unique())[1]
    df.loc[df["run"] == broken, "loss"] *= 1.25
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    return data, broken


@pytest.mark.slow
def test_a_broken_run_is_named_and_the_auto_likelihood_refits_robustly(zoo_with_a_broken_run):
    data, broken = zoo_with_a_broken_run
    normal = bs.fit(data, dict(likelihood="normal", extrapolation=None), sampler=FAST)
    table = outlier_table(normal).set_index("run")
    assert table["outlier"].tolist().count(True) == 1 and table.loc[broken, "outlier"]
    assert any(broken in n and "outliers under the normal likelihood" in n for n in normal.notes())

    auto = bs.fit(data, dict(likelihood="auto", extrapolation=None), sampler=FAST)
    assert auto.spec.likelihood == "student_t" and auto.spec.likelihood_choice["outliers"] == [broken]
    weights = outlier_table(auto).set_index("run")["weight"]
    assert weights[broken] < 0.5 and (weights.drop(broken) > 0.5).all()
    assert any("robust (Student-t) likelihood" in n and broken in n for n in auto.notes())
    # the broken run no longer drags fam1's curve: its other runs are predicted closer to the truth
    fam1 = data.frame[(data.frame["family"] == "fam1") & (data.frame["run"] != broken)]
    err = {name: np.mean(np.abs(np.log(f.predict("fam1", fam1["params"], fam1["tokens"])["expected_median"]
                                       / fam1["loss"].to_numpy())))
           for name, f in (("normal", normal), ("auto", auto))}
    assert err["auto"] < err["normal"]


def test_a_zoo_that_follows_the_law_keeps_the_normal_likelihood(small_fit):
    table = outlier_table(small_fit)
    assert not table["outlier"].any() and table["weight"].isna().all()
    assert (table["tail_probability"] > 0).all() and len(table) == len(small_fit.spec.runs)
