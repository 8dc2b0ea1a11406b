"""Run planning (issue 10): the preposterior's algebra, the greedy plan, the heuristics, the backtest's data steps."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.decisions.planning import (checkpoint_tokens, default_candidates, spread_heuristic,
                                              target_fraction_heuristic)
from bayes_scaling.decisions.preposterior import (ImportancePreposterior, LaplacePreposterior,
                                                  law_jacobian, run_log_likelihood)
from bayes_scaling.errors import MissingColumnError, NonPositiveValueError, PlanningWarning
from bayes_scaling.evaluate.planning import backtest_matches, family_task, matches_table, reveal
from bayes_scaling.laws import CHINCHILLA

TARGET = {"params": 7e9, "tokens": 1.4e11}


def population(n=3000, seed=0, spread=None, kappa=0.02, ou=None, sigma_obs=0.005):
    """A synthetic population prior; ``ou=(length, share)`` gives it OU checkpoint noise."""
    rng = np.random.default_rng(seed)
    fams = simulate_family_parameters(n, rng, spread=spread)
    nat = np.array([[f[k] for k in CHINCHILLA.natural] for f in fams.values()])
    drift = {} if ou is None else {"ou_length": np.full(n, ou[0]), "ou_share": np.full(n, ou[1])}
    return bs.PopulationPrior(law="chinchilla", natural=nat, sigma_seed=np.full(n, 0.01),
                              sigma_obs=np.full(n, sigma_obs), kappa=np.full(n, kappa), drift=np.zeros(n),
                              source="synthetic", **drift)


def test_run_likelihood_is_the_multivariate_normal_with_a_shared_seed_deviation():
    rng = np.random.default_rng(1)
    y, mean = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    ss, so = rng.uniform(0.1, 0.5, 5), rng.uniform(0.1, 0.5, 5)
    got = run_log_likelihood(y, mean, ss, so)
    for j in range(3):
        for s in range(5):
            cov = so[s] ** 2 * np.eye(4) + ss[s] ** 2 * np.ones((4, 4))
            assert got[j, s] == pytest.approx(multivariate_normal(mean[s], cov).logpdf(y[j]), rel=1e-9)


def test_law_jacobian_matches_the_law_and_finite_differences():
    rng = np.random.default_rng(2)
    theta = np.column_stack([np.log([1.8, 2.0]), np.log([0.5, 0.4]), np.log([0.3, 0.35]), np.log([0.6, 0.5]),
                             np.log([0.3, 0.4])])
    z = {"params": rng.normal(size=6), "tokens": rng.normal(size=6)}
    f, jac = law_jacobian(CHINCHILLA, theta, z)
    direct = CHINCHILLA.log_loss({p: theta[:, i, None] for i, p in enumerate(CHINCHILLA.sampling)}, z)
    np.testing.assert_allclose(f, direct, rtol=1e-12)
    for p in range(5):
        h = np.zeros(5)
        h[p] = 1e-6
        fp, _ = law_jacobian(CHINCHILLA, theta + h, z)
        fm, _ = law_jacobian(CHINCHILLA, theta - h, z)
        np.testing.assert_allclose(jac[:, :, p], (fp - fm) / 2e-6, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("ou", [None, (0.3, 0.8)])
def test_laplace_refit_of_a_narrow_prior_equals_the_linear_gaussian_posterior(ou):
    """The Laplace covariance is Sigma - Sigma J' (J Sigma J' + R)^-1 J Sigma with J at the mode (Woodbury):
    R (shared seed deviation, independent or OU checkpoint noise) and the Gauss-Newton Hessian are right."""
    narrow = {"E": 0.01, "A": 0.02, "alpha": 0.01, "B": 0.02, "beta": 0.01}
    draws = population(spread=narrow, ou=ou).family_draws()
    pre = LaplacePreposterior(draws, **{"target_params": 1e9, "target_tokens": 2e10}, fantasies=16)
    run = pre.run("r", 1e8, [5e8, 1e9, 2e9])
    mode, cov = pre.refit([run])
    sigma = np.linalg.inv(pre.prior_prec)
    _, jac = law_jacobian(CHINCHILLA, mode[:1], run.z)
    jm = jac[0]
    x = np.log10([5e8, 1e9, 2e9])
    ss2, so2 = 0.01**2, 0.005**2
    corr = np.eye(3) if ou is None else ou[1] * np.exp(-np.abs(x[:, None] - x[None, :]) / ou[0]) + (1 - ou[1]) * np.eye(3)
    r = so2 * corr + ss2 * np.ones((3, 3))
    np.testing.assert_allclose(draws.noise_covariance(pre.crn.picks[:1], run.log10_tokens)[0], r, rtol=1e-12)
    exact = sigma - sigma @ jm.T @ np.linalg.solve(jm @ sigma @ jm.T + r, jm @ sigma)
    np.testing.assert_allclose(cov[0], exact, rtol=1e-6, atol=1e-12)
    # and the mode moved from the prior mean towards the fantasy by less than the prior's spread
    assert np.all(np.abs(mode[0] - pre.prior_mean) < 4 * np.sqrt(np.diag(sigma)))


def test_ou_fantasies_have_the_model_covariance_and_likelihood():
    """With OU checkpoint noise the fantasised checkpoints scatter with the fit's run covariance, and the
    importance weights are that multivariate normal's density (the fit's Kalman filter)."""
    ou = (0.3, 0.8)
    draws = population(n=400, ou=ou, sigma_obs=0.02).family_draws()
    tokens = np.array([5e8, 6e8, 1e9, 3e9, 1e10])
    pre = ImportancePreposterior(draws, TARGET["params"], TARGET["tokens"], fantasies=20_000)
    run = pre.run("r", 1e8, tokens)
    resid = run.y - draws.log_loss(np.full(5, 1e8), tokens)[pre.crn.picks]
    cov = draws.noise_covariance(pre.crn.picks[:1], np.log10(tokens))[0]
    np.testing.assert_allclose(np.cov(resid.T), cov, atol=3e-5)  # ~7 standard errors; the drift adds up to 3e-4
    mean = draws.log_loss(np.full(5, 1e8), tokens)
    for j in range(3):
        for s_ in range(3):
            expected = multivariate_normal(mean[s_], draws.noise_covariance(np.array([s_]), np.log10(tokens))[0])
            assert run.extra[j, s_] == pytest.approx(expected.logpdf(run.y[j]), rel=1e-9)


def test_a_drifting_curve_is_worth_less_than_independent_checkpoints():
    """The same dense run narrows the target less when its checkpoint noise drifts along the run (OU): its
    checkpoints are not independent measurements of the law. Both methods agree on the direction."""
    tokens = checkpoint_tokens(4e9, 20)
    for method in (LaplacePreposterior, ImportancePreposterior):
        width = {}
        for label, ou in (("independent", None), ("ou", (1.0, 0.9))):
            pre = method(population(ou=ou, sigma_obs=0.02).family_draws(), TARGET["params"], TARGET["tokens"],
                         fantasies=64)
            width[label] = pre.evaluate([pre.run("r", 2e8, tokens)])["width"]
        assert width["ou"] > width["independent"], method.__name__


@pytest.mark.parametrize("method", [LaplacePreposterior, ImportancePreposterior])
def test_runs_narrow_the_target_and_a_run_near_it_narrows_it_most(method):
    pre = method(population().family_draws(), TARGET["params"], TARGET["tokens"], fantasies=64)
    tiny = pre.run("tiny", 2e7, checkpoint_tokens(4e8, 5))
    near = pre.run("near", 3e9, checkpoint_tokens(6e10, 5))
    none, one, both = pre.evaluate([]), pre.evaluate([tiny]), pre.evaluate([tiny, near])
    assert both["width"] < one["width"]
    assert pre.evaluate([near])["width"] < one["width"]
    assert both["are"] < none["are"]
    assert both["extrapolation_decades"] < one["extrapolation_decades"]


def test_plan_keeps_to_the_budget_and_its_expectations_improve_step_by_step():
    prior = population()
    budget = 3e19
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlanningWarning)
        p = bs.decisions.plan(prior, TARGET, budget, accuracy=0.001, fantasies=64, max_steps=6)
    steps = p.steps
    assert steps["cumulative_flops"].iloc[-1] <= budget * (1 + 1e-9)
    assert len(p.chosen) >= 2
    assert np.all(np.diff(steps["expected_width"]) < 0)  # every step is chosen for narrowing the interval
    assert p.reached_at is None  # 0.1% ARE is below the seed-noise floor
    grid = default_candidates(TARGET["params"], TARGET["tokens"])
    assert len(grid) == 47  # 10 sizes x 5 token budgets, less the target's size at >= its tokens
    assert len(p.ranking) == int((6 * grid["params"] * grid["tokens"] <= budget).sum())  # every affordable run
    assert p.ranking["gain_per_exaflop"].is_monotonic_decreasing
    d = json.loads(json.dumps(p.to_dict()))
    assert d["steps"][0]["step"] == 0 and d["settings"]["method"] == "laplace"
    assert d["settings"]["greedy"] in ("gain per FLOP", "gain")
    easy = bs.decisions.plan(prior, TARGET, budget, accuracy=0.2, fantasies=64)
    assert easy.reached_at == 0 and len(easy.chosen) == 0  # already expected within 20%: nothing to train


def test_plan_input_errors_and_warnings():
    prior = population(n=500)
    with pytest.raises(NonPositiveValueError, match="budget"):
        bs.decisions.plan(prior, TARGET, -1.0)
    with pytest.raises(MissingColumnError, match="tokens"):
        bs.decisions.plan(prior, {"params": 7e9}, 1e20)
    with pytest.raises(MissingColumnError, match="params and tokens"):
        bs.decisions.plan(prior, TARGET, 1e20, candidates=pd.DataFrame({"params": [1e8]}))
    with pytest.raises(NonPositiveValueError, match="candidate column 'tokens'"):
        bs.decisions.plan(prior, TARGET, 1e20, candidates=pd.DataFrame({"params": [1e8], "tokens": [0.0]}))
    with pytest.raises(ValueError, match="method"):
        bs.decisions.plan(prior, TARGET, 1e20, method="magic")
    with pytest.warns(PlanningWarning, match="no candidate run fits the budget"):
        p = bs.decisions.plan(prior, TARGET, 1e10, accuracy=0.001, fantasies=16)
    assert len(p.chosen) == 0


def test_a_run_stopped_early_can_be_continued_for_the_extra_compute_only():
    prior = population(n=1500)
    stops = [0.1, 0.3, 1.0]
    rows = [{"run": f"N={n:g}", "params": n, "tokens": 20 * n * 3 * f,
             "checkpoint_tokens": checkpoint_tokens(20 * n * 3, 10)[checkpoint_tokens(20 * n * 3, 10) <= 20 * n * 3 * f * (1 + 1e-9)]}
            for n in (1e8, 4e8, 1.5e9) for f in stops]
    cand = pd.DataFrame(rows)
    budget = 6 * 1.5e9 * 20 * 1.5e9 * 3 * 0.7  # not the largest run in full, but its 30% stop and more
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanningWarning)
        p = bs.decisions.plan(prior, TARGET, budget, candidates=cand, accuracy=0.001, fantasies=48, max_steps=8)
    flops = 6 * cand["params"] * cand["tokens"]
    final = p.runs
    assert cand["run"].iloc[final].is_unique  # a continued run appears once, at its latest stop
    spent = p.steps["cumulative_flops"].iloc[-1]
    assert spent == pytest.approx(bs.decisions.set_flops(cand.assign(flops=flops), final))
    assert spent <= budget * (1 + 1e-9)
    assert p.chosen["continues"].notna().any() and "continue to" in p.summary()  # this plan continues a run
    for _, r in p.chosen.iterrows():  # each step pays only the compute it adds
        before = 0.0 if pd.isna(r["continues"]) else flops.iloc[int(r["continues"])]
        assert r["flops"] == pytest.approx(flops.iloc[int(r["candidate"])] - before)
    # by hand: stopping at 30% then continuing to 100% costs the 100% run, not both
    assert bs.decisions.set_flops(cand.assign(flops=flops), [1, 2]) == pytest.approx(flops.iloc[2])
    with pytest.raises(ValueError, match="share its size"):
        bs.decisions.plan(prior, TARGET, budget, candidates=cand.assign(run="one"))
    with pytest.raises(ValueError, match="must cost more"):
        bs.decisions.plan(prior, TARGET, budget, candidates=cand.assign(flops=1e18))


def test_spread_heuristic_spreads_up_to_the_budget_and_target_fraction_picks_the_30pct_run():
    cand = pd.DataFrame({"params": np.repeat([1e7, 3e7, 1e8, 3e8, 1e9, 3e9], 2),
                         "tokens": np.repeat([2e8, 6e8, 2e9, 6e9, 2e10, 6e10], 2) * np.tile([1.0, 3.0], 6)})
    flops = 6 * cand["params"] * cand["tokens"]
    budget = 1.5e20
    idx = spread_heuristic(cand, budget, tokens_per_param=20)
    chosen = cand.iloc[idx]
    assert flops.iloc[idx].sum() <= budget and 1 <= len(idx) <= 5
    assert chosen["params"].nunique() == len(idx)
    assert np.allclose(chosen["tokens"] / chosen["params"], 20)  # per size, the run nearest 20 tokens/param
    assert chosen["params"].min() == 1e7  # spread from the smallest size
    everything = spread_heuristic(cand, 1e30, tokens_per_param=20)
    assert len(everything) == 5 and cand["params"].iloc[everything].max() == 3e9
    j = target_fraction_heuristic(cand, 3e9, 6e10 * 3 / 0.3 * 0.3, fraction=0.3)  # the 3e9 run nearest 5.4e10
    assert cand["params"].iloc[j] == 3e9 and cand["tokens"].iloc[j] == 6e10
    assert target_fraction_heuristic(cand, 7e9, 1e11) is None


def test_backtest_task_reveals_only_the_chosen_runs():
    rng = np.random.default_rng(3)
    df = simulate_runs(simulate_family_parameters(2, rng), rng, sizes=(5e7, 1e8, 2e8), checkpoints=6)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                     seed="seed")
    task = family_task(data, "fam0")
    assert task.target_params == 2e8 and len(task.target) >= 1
    assert task.target["tokens"].min() >= 0.7 * task.target_tokens * (1 - 1e-9)
    cand = task.candidates
    # the two smaller runs in full, and every run (the target's too) stopped at its last checkpoint within
    # 3%, 10% and 30% of its tokens (the first checkpoint is at 10%: 3% has none, so two stops per run)
    full = cand[~cand["label"].str.contains("of its tokens")]
    assert sorted(full["params"]) == [5e7, 1e8] and len(cand) == 2 + 3 * 2
    for run, c in cand.groupby("run"):
        toks = np.sort(data.frame.loc[data.frame["run"] == run, "tokens"].to_numpy(float))
        stops = c.loc[c["tokens"] < toks.max(), "tokens"]
        assert sorted(stops / toks.max()) == pytest.approx([0.1, 10**-0.6])  # checkpoints at 10%, 25%
        assert all(np.array_equal(ct, toks[toks <= d]) for ct, d in zip(c["checkpoint_tokens"], c["tokens"]))
        assert np.allclose(c["flops"], 6 * c["params"] * c["tokens"])  # the compute up to the stop
    assert not (cand["params"].eq(2e8) & cand["tokens"].eq(task.target_tokens)).any()  # never the target itself
    partial = cand.iloc[target_fraction_heuristic(cand, 2e8, task.target_tokens, 0.3)]
    assert partial["params"] == 2e8 and partial["tokens"] <= 0.3 * task.target_tokens
    both = [int(np.flatnonzero(cand["label"].str.contains("5e\\+07"))[0]), int(partial.name)]
    shown = reveal(data, task, both).frame
    assert set(shown["family"]) == {"fam0"}
    assert shown["params"].nunique() == 2 and shown.loc[shown["params"] == 2e8, "tokens"].max() <= partial["tokens"]
    assert shown.loc[shown["params"] == 5e7, "tokens"].max() == cand["tokens"].iloc[both[0]]
    only_full = family_task(data, "fam0", prefix_fractions=())  # the target at 30% stays a candidate
    assert len(only_full.candidates) == 3


def test_cli_plan_writes_json(tmp_path, capsys):
    from bayes_scaling.cli import main

    path = population(n=800).save(tmp_path / "prior.nc")
    rc = main(["plan", str(path), "--target", "params=7e9,tokens=1.4e11", "--budget", "3e19", "--accuracy", "0.001",
               "--fantasies", "32", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"][-1]["cumulative_flops"] <= 3e19 and out["reached_at"] is None
    with pytest.raises(SystemExit):  # argparse rejects a target without tokens
        main(["plan", str(path), "--target", "params=7e9", "--budget", "1e20"])
    assert "tokens" in capsys.readouterr().err


def test_with_nothing_trained_the_discrepancy_starts_at_the_source_families_compute(tmp_path):
    prior = population(n=400)
    prior.max_log10_flops = 19.0
    loaded = bs.PopulationPrior.load(prior.save(tmp_path / "p.nc"))
    assert loaded.max_log10_flops == 19.0
    pre = LaplacePreposterior(loaded.family_draws(), TARGET["params"], TARGET["tokens"], fantasies=16)
    assert pre.decades([]) == pytest.approx(np.log10(6 * 7e9 * 1.4e11) - 19.0)
    near = pre.run("near", 3e9, [6e10])
    assert pre.decades([near]) == pytest.approx(np.log10(6 * 7e9 * 1.4e11) - np.log10(6 * 3e9 * 6e10))
    prior.max_log10_flops = None  # unknown (a prior saved before this was recorded): no discrepancy until a run
    assert LaplacePreposterior(prior.family_draws(), 7e9, 1.4e11, fantasies=16).decades([]) == 0.0


def test_backtest_matches_find_the_least_compute_at_which_the_plan_did_as_well():
    def row(fam, method, budget, spent, are):
        return {"dataset": "d", "family": fam, "method": method, "budget": budget, "budget_fraction": budget,
                "spent_fraction": spent, "are": are}

    res = pd.DataFrame([row("a", "plan", 0.01, 0.010, 0.05), row("a", "spread", 0.01, 0.008, 0.04),
                        row("a", "plan", 0.03, 0.030, 0.02), row("a", "spread", 0.03, 0.030, 0.03),
                        row("a", "target_30pct", 0.25, 0.25, 0.06), row("a", "plan", 0.25, 0.24, 0.01),
                        row("b", "plan", 0.01, 0.0, np.nan), row("b", "spread", 0.01, 0.0, np.nan),
                        row("b", "plan", 0.03, 0.02, 0.09), row("b", "spread", 0.03, 0.03, 0.05)])
    m = backtest_matches(res).set_index(["family", "heuristic", "budget_fraction"])
    # a at 1%: the plan (5%) is worse and nothing cheaper exists: not matched
    assert np.isnan(m.loc[("a", "spread", 0.01), "ratio"]) and m.loc[("a", "spread", 0.01), "same_budget_are"] == 0.05
    # a at 3%: the plan matched at its own 3% run
    assert m.loc[("a", "spread", 0.03), "ratio"] == pytest.approx(1.0)
    # the target at 30% (ARE 6%) is matched by the plan's 1% run: 1/25 of its compute
    assert m.loc[("a", "target_30pct", 0.25), "ratio"] == pytest.approx(0.04)
    assert m.loc[("a", "target_30pct", 0.25), "budget"] == "target_30pct budget"
    # b: nothing trained at 1% (no row); at 3% the plan is worse
    assert ("b", "spread", 0.01) not in m.index and np.isnan(m.loc[("b", "spread", 0.03), "ratio"])
    t = matches_table(backtest_matches(res)).set_index(["heuristic", "budget"])
    assert t.loc[("spread", "0.03 x target"), "families"] == 2 and t.loc[("spread", "0.03 x target"), "matched"] == 1
    assert t.loc[("spread", "0.03 x target"), "lower_at_same_budget"] == 1


@pytest.mark.slow  # a population fit and a plan revealed step by step (about 40 s)
def test_backtest_on_a_small_synthetic_zoo_reveals_within_budget_and_scores_every_method():
    """End to end on 3 families: a population fit of two, the third planned, revealed and scored."""
    from bayes_scaling.evaluate.planning import BacktestSettings, backtest_planning

    rng = np.random.default_rng(5)
    df = simulate_runs(simulate_family_parameters(3, rng), rng, sizes=(3e7, 1e8, 3e8), checkpoints=6)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                     seed="seed")
    s = BacktestSettings(budgets=(0.05,), fantasies=32, sampler=dict(draws=100, tune=150, chains=2),
                         random_seed=1)
    res = backtest_planning(data, families=["fam2"], settings=s, dataset="synthetic")
    assert set(res["method"]) == {"plan", "spread", "target_30pct"}
    assert (res["spent_fraction"] <= res["budget_fraction"] * (1 + 1e-9)).all()
    trained = res[res["runs"] > 0]
    assert len(trained) >= 3 and trained["are"].between(0, 0.5).all() and trained["cover90"].between(0, 1).all()
    assert (res.loc[res["method"] == "target_30pct", "runs"] == 1).all()
    m = backtest_matches(res)
    assert set(m["heuristic"]) <= {"spread", "target_30pct"} and len(m) >= 1
