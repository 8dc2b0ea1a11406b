"""Decisions: compute-optimal allocation, recipe A vs B, model growth (G_stack) and its timing."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data import ScalingData, loaders
from bayes_scaling.data.synthetic import DEFAULT_POPULATION, simulate_runs
from bayes_scaling.decisions import GrowthTiming, summarize
from bayes_scaling.decisions.compute_optimal import require_tokens_law
from bayes_scaling.errors import (MissingColumnError, NonPositiveValueError, PriorError, UnknownFamilyError,
                                  UnsupportedLawError)
from bayes_scaling.laws import solve
from bayes_scaling.model import ModelSpec, Priors

from conftest import FAST

EPOCH = dict(E=1.817, A=482.0, alpha=0.348, B=2085.4, beta=0.366)
HOFFMANN = dict(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)
CHINCHILLA_COMPUTE = 5.76e23


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bayes_scaling.cli", *args], capture_output=True, text=True)


# ---------------------------------------------------------------------------- the law solved
def test_closed_form_optimum_is_the_minimum_on_the_budget_line():
    opt = solve.closed_form_optimum(**EPOCH, flops=1e22)
    assert 6 * opt["params"] * opt["tokens"] == pytest.approx(1e22)
    for f in (0.9, 1.1):  # moving along the budget line in either direction costs loss
        n = opt["params"] * f
        assert solve.chinchilla_loss(**EPOCH, params=n, tokens=1e22 / (6 * n)) > opt["loss"]


def test_numeric_optimum_matches_closed_form_and_handles_other_flops():
    rng = np.random.default_rng(0)
    draws = {k: v * np.exp(0.05 * rng.standard_normal(200)) for k, v in EPOCH.items()}
    closed = solve.closed_form_optimum(**draws, flops=1e23)
    numeric = solve.numeric_optimum(**draws, budget=1e23, flops_fn=lambda n, d: 6 * n * d)
    np.testing.assert_allclose(numeric["params"], closed["params"], rtol=1e-3)
    np.testing.assert_allclose(numeric["loss"], closed["loss"], rtol=1e-9)
    # 8 N D FLOPs: the same as 6 N D with three quarters of the budget
    eight = solve.numeric_optimum(**draws, budget=1e23, flops_fn=lambda n, d: 8 * n * d)
    np.testing.assert_allclose(eight["params"], solve.closed_form_optimum(**draws, flops=0.75e23)["params"], rtol=1e-3)


def test_tokens_for_budget_rejects_flops_that_never_reach_it():
    with pytest.raises(ValueError, match="increasing in D"):
        solve.tokens_for_budget(lambda n, d: np.minimum(6 * n * d, 1.0), np.array([1e9]), 1e20)


def test_tokens_to_loss_inverts_the_law_and_flags_unreachable_losses():
    n = np.array([1e9, 7e9])
    d = np.array([2e10, 3e11])
    loss = solve.chinchilla_loss(**EPOCH, params=n, tokens=d)
    np.testing.assert_allclose(solve.tokens_to_loss(**EPOCH, params=n, loss=loss), d, rtol=1e-9)
    floor = EPOCH["E"] + EPOCH["A"] * 1e9 ** -EPOCH["alpha"]
    assert np.isinf(solve.tokens_to_loss(**EPOCH, params=1e9, loss=floor - 0.01))


def test_the_papers_growth_speedup_arithmetic():
    """G_stack: a 7B model reaches the 300B-token scratch loss after 194B tokens."""
    assert round(float(solve.speedup(300e9, 194e9)) * 100, 1) == 54.6
    assert round(float(solve.token_saving(300e9, 194e9)) * 100) == 35


def test_chinchilla_paper_parameters_and_epoch_refit_disagree_on_tokens_per_param():
    ratio = {k: float(solve.closed_form_optimum(**p, flops=CHINCHILLA_COMPUTE)["tokens"]
                      / solve.closed_form_optimum(**p, flops=CHINCHILLA_COMPUTE)["params"])
             for k, p in (("epoch", EPOCH), ("paper", HOFFMANN))}
    assert ratio["epoch"] == pytest.approx(18.4, abs=0.1)
    assert ratio["paper"] == pytest.approx(92.6, abs=0.2)


# ---------------------------------------------------------------------------- growth timing
def test_growth_timing_default_reproduces_the_published_table():
    table = GrowthTiming.paper().predict([7e9, 13e9, 70e9, 8e9], [2e12, 2e12, 2e12, 15e12])
    assert [round(v / 1e9, 2) for v in table["growth_tokens"]] == [11.11, 15.84, 42.48, 6.58]
    assert (table["lower"] < table["growth_tokens"]).all() and (table["growth_tokens"] < table["upper"]).all()
    assert (table["growth_factor"] == 4).all()


def test_growth_timing_update_recovers_known_coefficients_and_covers():
    rng = np.random.default_rng(1)
    truth = (0.85, 160.0, -5.5)  # a zoo whose best growth timing is ~0.2 dex off the paper's
    n = 10 ** rng.uniform(8.5, 11, 60)
    d = 10 ** rng.uniform(11, 13, 60)
    y = bs.decisions.guideline_log10(n, d, truth) + 0.05 * rng.standard_normal(60)
    post = GrowthTiming.paper().update(pd.DataFrame({"params": n, "tokens": d, "growth_tokens": 10**y}))
    coef = post.coefficients(0.95).set_index("coefficient")
    for name, value in zip("abc", truth):
        assert coef.loc[name, "lower"] < value < coef.loc[name, "upper"]
    # new points from the same truth fall inside the 90% predictive interval about 90% of the time
    n2, d2 = 10 ** rng.uniform(8.5, 11, 400), 10 ** rng.uniform(11, 13, 400)
    y2 = 10 ** (bs.decisions.guideline_log10(n2, d2, truth) + 0.05 * rng.standard_normal(400))
    pred = post.predict(n2, d2)
    assert 0.83 < np.mean((pred["lower"] < y2) & (y2 < pred["upper"])) < 0.97
    assert post.n_obs == 60


def test_growth_timing_input_errors():
    with pytest.raises(MissingColumnError, match="growth_tokens"):
        GrowthTiming.paper().update(pd.DataFrame({"params": [1e9], "tokens": [1e11]}))
    with pytest.raises(NonPositiveValueError):
        GrowthTiming.paper().predict(-7e9, 2e12)


def test_growth_timing_cli_json():
    r = cli("growth-timing", "--params", "7e9", "--tokens", "2e12", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"growth_tokens", "lower", "upper", "growth_factor"} <= set(out)
    assert round(out["growth_tokens"] / 1e9, 2) == 11.11 and out["growth_factor"] == 4
    r = cli("growth-timing", "--params", "7e9", "--tokens", "0", "--json")
    assert r.returncode == 2 and "positive" in r.stderr


# ---------------------------------------------------------------------------- small pieces
def test_summarize_keeps_infinite_draws_and_reports_their_share():
    import xarray as xr

    ds = xr.Dataset({"x": ("sample", np.r_[np.arange(9.0), np.inf])})
    row = summarize(ds, interval=0.5).iloc[0]
    assert row["share_infinite"] == pytest.approx(0.1) and row["mean"] == pytest.approx(4.0)
    assert np.isfinite(row["median"])


def test_decisions_on_nd_need_a_law_in_n_and_d():
    stub = SimpleNamespace(law=bs.laws.COMPUTE)
    with pytest.raises(UnsupportedLawError, match="law='chinchilla'"):
        require_tokens_law(stub, "compute-optimal allocation")


def test_treatment_errors(frame):
    data = ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss")
    with pytest.raises(UnknownFamilyError, match="zzz"):
        ModelSpec.from_data(data, treatments={"a": "zzz"})
    with pytest.raises(ValueError, match="own twin"):
        ModelSpec.from_data(data, treatments={"a": "a"})
    with pytest.raises(ValueError, match="itself treated"):
        ModelSpec.from_data(data, treatments={"a": "b", "b": "a"})
    pri = Priors.default(bs.laws.CHINCHILLA, 3.0)
    pri.treatment = {}
    with pytest.raises(PriorError, match="shift nothing"):
        pri.validate(bs.laws.CHINCHILLA)


# ---------------------------------------------------------------------------- fits: growth (synthetic)
@pytest.fixture(scope="module")
def growth_fit():
    rng = np.random.default_rng(0)
    scratch = dict(DEFAULT_POPULATION)
    grown = dict(scratch, B=scratch["B"] * 1.546 ** (-scratch["beta"]))  # true speedup 54.6%, everywhere
    df = simulate_runs({"scratch": scratch, "grown": grown}, rng, sizes=(5e7, 1e8, 2e8, 4e8, 8e8),
                       sigma_seed=0.003, sigma_obs=0.002)
    return bs.fit(df, dict(treatments={"grown": "scratch"}, extrapolation=None), sampler=dict(FAST, draws=500, tune=500))


def test_growth_treatment_model_recovers_a_known_speedup(growth_fit):
    post = growth_fit.idata.posterior
    assert list(post["treatment_shift"].coords["treatment_param"].values) == ["log_B_ref", "log_beta"]
    sp = summarize(bs.decisions.growth_speedup(growth_fit, "grown", "scratch", params=8e8, tokens=1.6e10)).set_index("quantity")
    assert sp.loc["speedup", "lower"] < 0.546 < sp.loc["speedup", "upper"]
    assert abs(sp.loc["speedup", "median"] - 0.546) < 0.1
    # the same posterior, framed by a loss: the loss the scratch model reaches after 16B tokens
    loss = float(np.median(bs.decisions.growth_speedup(growth_fit, "grown", "scratch", params=8e8, tokens=1.6e10)["target_loss"]))
    by_loss = bs.decisions.growth_speedup(growth_fit, "grown", "scratch", params=8e8, loss=loss)
    assert float(by_loss["speedup"].median()) == pytest.approx(sp.loc["speedup", "median"], abs=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        bs.decisions.growth_speedup(growth_fit, "grown", "scratch", params=8e8)
    with pytest.raises(UnknownFamilyError):
        bs.decisions.growth_speedup(growth_fit, "grown", "nope", params=8e8, tokens=1e10)


def test_growth_speedup_cli(growth_fit, tmp_path):
    path = growth_fit.save(tmp_path / "growth.nc")
    r = cli("speedup", str(path), "--grown", "grown", "--scratch", "scratch", "--params", "8e8", "--tokens",
            "1.6e10", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["quantity"]: row for row in json.loads(r.stdout)["rows"]}
    assert rows["speedup"]["lower"] < 0.546 < rows["speedup"]["upper"]


# ---------------------------------------------------------------------------- fits: real data
@pytest.fixture(scope="module")
def chinchilla_fit(shared_root):
    data = loaders.load_epoch_chinchilla(shared_root, drop_highest_losses=5)
    return bs.fit(data, dict(likelihood="student_t"), sampler=dict(FAST, draws=500, tune=500))


@pytest.mark.slow
def test_compute_optimal_on_the_chinchilla_points(chinchilla_fit, tmp_path):
    opt = bs.decisions.compute_optimal(chinchilla_fit, [1e21, CHINCHILLA_COMPUTE])
    assert opt["tokens_per_param"].dims == ("budget", "sample")
    np.testing.assert_allclose(6 * opt["params"] * opt["tokens"], opt["budget"].broadcast_like(opt["params"]))
    tab = summarize(opt).set_index(["quantity", "budget"])
    ratio = tab.loc[("tokens_per_param", CHINCHILLA_COMPUTE)]
    # the posterior agrees with Epoch's refit of the same points (18.4 by the same formula), and
    # rules out the Chinchilla paper's published parameters (92.6)
    assert ratio["lower"] < 18.4 < ratio["upper"] < 40
    assert 10 < ratio["median"] < 30
    # beyond the fitted compute, the loss at the optimum carries the extrapolation discrepancy
    wide = tab.loc[("expected_loss", CHINCHILLA_COMPUTE)]
    law = tab.loc[("loss", CHINCHILLA_COMPUTE)]
    assert wide["upper"] - wide["lower"] > law["upper"] - law["lower"]
    numeric = bs.decisions.compute_optimal(chinchilla_fit, CHINCHILLA_COMPUTE, flops=lambda n, d: 6 * n * d)
    np.testing.assert_allclose(numeric["params"].values[0], opt["params"].values[1], rtol=1e-3)
    r = cli("optimal", str(chinchilla_fit.save(tmp_path / "c.nc")), "--budget", "5.76e23", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["family"] == "chinchilla" and len(out["rows"]) == 5


@pytest.mark.slow
def test_compute_optimal_errors(chinchilla_fit):
    with pytest.raises(ValueError, match="positive"):
        bs.decisions.compute_optimal(chinchilla_fit, [0.0])
    with pytest.raises(UnknownFamilyError, match="not in the fit"):
        bs.decisions.compute_optimal(chinchilla_fit, 1e22, family="a new family")
    with pytest.raises(UnknownFamilyError, match="single family"):
        bs.decisions.compute_optimal(chinchilla_fit, 1e22, family="a new family", new_family=True)


@pytest.fixture(scope="module")
def porian_pair():
    a, b = "rw-tuned-short-const-standard-val", "rw-base-short-chinchilla-standard-val"
    return a, b, bs.fit(bs.load_bundled("porian").select_families([a, b]), dict(extrapolation=None), sampler=FAST)


@pytest.mark.slow
def test_recipe_comparison_on_porian(porian_pair, tmp_path):
    a, b, fit = porian_pair
    cmp = bs.decisions.compare(fit, a, b, params=[1e8, 9e8, 7e9], tokens=[2e9, 2e10, 1.4e11])
    assert cmp["expected_difference"].dims == ("sample", "target")
    # the difference of the predictive medians agrees with the posterior of the difference
    pa, pb = fit.predict(a, 9e8, 2e10), fit.predict(b, 9e8, 2e10)
    med = float(cmp["expected_difference"].sel(target=1).median())
    assert med == pytest.approx(float(pa["expected_median"].values[0] - pb["expected_median"].values[0]), abs=0.02)
    # one run of each is noisier than the configurations: P(A wins) moves towards 1/2
    p_cfg, p_run = cmp["p_a_better"].to_numpy(), cmp["p_a_better_one_run"].to_numpy()
    assert np.all(np.abs(p_run - 0.5) <= np.abs(p_cfg - 0.5) + 1e-9)
    wins = bs.decisions.win_probabilities(fit, [a, b], 9e8, 2e10)
    assert wins.loc[a, b] + wins.loc[b, a] == pytest.approx(1.0)
    assert wins["p_best"].sum() == pytest.approx(1.0)
    with pytest.raises(UnknownFamilyError):
        bs.decisions.compare(fit, a, "not-a-recipe", 1e9, 2e10)
    r = cli("compare", str(fit.save(tmp_path / "p.nc")), "--a", a, "--b", b, "--params", "7e9", "--tokens",
            "1.4e11", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 <= out["p_a_better"] <= 1 and {row["quantity"] for row in out["rows"]} == {
        "expected_difference", "run_difference"}


def test_heavy_tailed_predictive_draws_do_not_break_the_discrepancy_calibration():
    from bayes_scaling.inference.extrapolation import predictive_moments

    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 0.1, (2000, 3))
    draws[0, 1] = np.inf  # a robust likelihood's draw that overflowed
    centre, var = predictive_moments(draws)
    assert np.isfinite(centre).all() and np.isfinite(var).all()
    assert centre[1] == pytest.approx(1.0, abs=0.02) and var[1] == pytest.approx(0.01, rel=0.2)
    assert var[0] == pytest.approx(draws[:, 0].var())


def test_student_t_predictive_draws_give_the_held_out_residuals_a_robust_centre_and_scale():
    from scipy import stats

    from bayes_scaling.inference.extrapolation import predictive_moments

    rng = np.random.default_rng(1)
    draws = 1.0 + 0.01 * rng.standard_t(1.5, (20000, 4))  # a Student-t run noise: its variance is infinite
    centre, var = predictive_moments(draws, robust=True)
    iqr_sd = 0.01 * 2 * stats.t.ppf(0.75, 1.5) / 1.349  # the sd of a normal of the same interquartile range
    assert centre == pytest.approx(np.ones(4), abs=0.001)
    assert np.sqrt(var) == pytest.approx(np.full(4, iqr_sd), rel=0.05)
    plain_centre, plain_var = predictive_moments(draws)  # the tails' few largest draws set the plain variance
    assert (plain_var > 4 * var).all()


def test_keep_final_checkpoint_records_what_it_drops(frame):
    from bayes_scaling.data import keep_final_checkpoint

    data = ScalingData.from_frame(frame.assign(run=frame["family"] + frame["params"].astype(str)),
                                  family="family", params="params", tokens="tokens", loss="loss", run="run")
    final = keep_final_checkpoint(data)
    assert len(final) == 4 and final.frame.groupby("run").size().eq(1).all()
    assert final.dropped[-1].filter == "final_checkpoint" and final.dropped[-1].rows == 4


def test_hand_built_priors_get_the_default_treatment_shifts(frame):
    from bayes_scaling.model.hierarchical import treatment_params

    data = ScalingData.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss")
    pri = Priors.default(bs.laws.CHINCHILLA, 3.0)
    hand = Priors(mu=pri.mu, tau=pri.tau)  # no treatment
    spec = ModelSpec.from_data(data, priors=hand, treatments={"b": "a"})
    assert treatment_params(spec) == ["log_B_ref", "log_beta"]
    assert spec.treated == ["b"] and spec.untreated == ["a"]


def test_the_compute_law_has_default_priors_and_its_treatment_shifts_its_only_term(frame):
    """The compute law's default priors validate (its treatment shifts log_A_ref and log_alpha, the data term's
    counterparts); before, every shift was 0 for it and ``bs.fit(law="compute")`` raised PriorError."""
    from bayes_scaling.model.hierarchical import treatment_params

    data = ScalingData.from_frame(frame.assign(flops=6.0 * frame["params"] * frame["tokens"]), family="family",
                                  params="params", tokens="tokens", loss="loss", flops="flops")
    spec = ModelSpec.from_data(data, "compute", treatments={"b": "a"})
    normal = lambda sd: bs.Prior("Normal", mu=0.0, sigma=sd)  # noqa: E731
    assert spec.priors.treatment == {"log_A_ref": normal(0.4), "log_alpha": normal(0.15)}
    assert treatment_params(spec) == ["log_A_ref", "log_alpha"]
    assert Priors.default(bs.laws.CHINCHILLA, 3.0).treatment == {"log_B_ref": normal(0.4), "log_beta": normal(0.15)}
