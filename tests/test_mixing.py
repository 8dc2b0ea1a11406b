"""Data mixing: BiMix law, entropy proxies, data validation, hierarchical fit, held-out scoring, optimiser."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import FAST

from bayes_scaling.mixing.entropy import (bigram_joint_entropy, conditional_entropy, domain_entropies,
                                        proportions_from_entropy, unigram_entropy)
from bayes_scaling.mixing.data import MixingData, load_bimix, load_bimix_config
from bayes_scaling.mixing.decisions import compare_mixtures, optimize_mixture
from bayes_scaling.errors import DuplicateRowError, MissingColumnError, NonFiniteValueError, NonPositiveValueError
from bayes_scaling.mixing.evaluate import evaluate_heldout, fit_least_squares, predict_least_squares
from bayes_scaling.mixing.fit import MixingFit, mixture_distance
from bayes_scaling.mixing import law


# ------------------------------------------------------------------ entropy proxies, by hand
def test_unigram_entropy_by_hand():
    assert unigram_entropy([1, 1, 2, 2]) == pytest.approx(math.log(2))
    assert unigram_entropy([5, 5, 5]) == 0.0
    # p = (1/2, 1/4, 1/4): H = 1.5 bits = 1.5 ln 2
    assert unigram_entropy(np.array([0, 0, 1, 2])) == pytest.approx(1.5 * math.log(2))


def test_bigram_entropies_by_hand():
    seq = [0, 1, 0, 1, 1]  # pairs (0,1), (1,0), (0,1), (1,1): p = 1/2, 1/4, 1/4
    assert bigram_joint_entropy(seq) == pytest.approx(1.5 * math.log(2))
    # first tokens 0, 1, 0, 1: H(X1) = ln 2, so H(X2|X1) = 0.5 ln 2
    assert conditional_entropy(seq) == pytest.approx(0.5 * math.log(2))
    # a deterministic successor has zero conditional entropy
    assert conditional_entropy([1, 2, 3, 1, 2, 3, 1, 2, 3]) == pytest.approx(0.0, abs=1e-12)


def test_pairs_do_not_cross_documents_and_miller_madow():
    docs = [[0, 1], [1, 0]]  # pairs (0,1), (1,0) only; the boundary pair (1,1) is not counted
    assert bigram_joint_entropy(docs) == pytest.approx(math.log(2))
    # Miller-Madow adds (K - 1) / (2 n)
    assert unigram_entropy([1, 1, 2, 2], miller_madow=True) == pytest.approx(math.log(2) + 1 / 8)


def test_entropy_rule_is_a_softmax():
    h = pd.Series({"a": 1.0, "b": 1.0 + math.log(3)})
    r = proportions_from_entropy(h)
    assert r["b"] / r["a"] == pytest.approx(3.0) and r.sum() == pytest.approx(1.0)
    flat = proportions_from_entropy(h, temperature=1e6)
    assert flat["a"] == pytest.approx(0.5, abs=1e-6)
    tab = domain_entropies({"code": [1, 2, 3, 1, 2, 3], "text": [1, 5, 2, 9, 4, 4, 7]})
    assert list(tab.columns) == ["SE", "JE", "CE"] and ((tab["CE"] >= -1e-12) & (tab["CE"] <= tab["JE"])).all()


def test_entropy_input_errors():
    with pytest.raises(ValueError, match="no tokens"):
        unigram_entropy([])
    with pytest.raises(ValueError, match="non-negative integers"):
        unigram_entropy([1.5, 2.0])
    with pytest.raises(ValueError, match="at least two tokens"):
        bigram_joint_entropy([[1], [2]])
    with pytest.raises(ValueError, match="temperature"):
        proportions_from_entropy({"a": 1.0}, temperature=0)


# ------------------------------------------------------------------ the law
def test_bimix_law_round_trip_and_natural_form():
    rng = np.random.default_rng(0)
    nat = {"AB": rng.uniform(1e3, 2e4, 5), "CB": rng.uniform(1, 3, 5), "a": rng.uniform(0.5, 1.5, 5),
           "b": rng.uniform(0.01, 0.1, 5)}
    s0, r0 = 6e4, rng.uniform(0.02, 0.3, 5)
    theta = law.from_natural(nat, s0, r0)
    back = law.to_natural(theta, s0, r0)
    for k in nat:
        np.testing.assert_allclose(back[k], nat[k], rtol=1e-10)
    s, r = 1.3e5, 0.11
    direct = law.natural_loss(nat["AB"], nat["CB"], nat["a"], nat["b"], s, r)
    np.testing.assert_allclose(np.exp(law.log_loss(theta, np.log(s / s0), np.log(r / r0))), direct, rtol=1e-10)
    # more steps and a larger share lower the loss
    assert np.all(law.natural_loss(nat["AB"], nat["CB"], nat["a"], nat["b"], 2 * s, r) < direct)
    assert np.all(law.natural_loss(nat["AB"], nat["CB"], nat["a"], nat["b"], s, 2 * r) < direct)


def test_mixture_distance_is_rms_centred_log_share_difference_to_the_nearest():
    trained = np.array([[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])
    # a trained mixture is at distance 0
    np.testing.assert_allclose(mixture_distance(trained, trained), [0.0, 0.0], atol=1e-12)
    # by hand: (0.1, 0.1, 0.4, 0.4) vs the uniform mixture; log10 shares -1, -1, log10 .4 twice, centred
    # at their mean: -h, -h, +h, +h with h = (log10 0.4 + 1) / 2; the uniform mixture centres to 0
    h = (np.log10(0.4) + 1) / 2
    new = np.array([[0.1, 0.1, 0.4, 0.4]])
    d_uniform = h  # sqrt(mean(h^2))
    x = np.log10([0.7, 0.1, 0.1, 0.1]); x -= x.mean()
    y = np.array([-h, -h, h, h])
    d_skewed = np.sqrt(np.mean((y - x) ** 2))
    assert d_uniform < d_skewed
    np.testing.assert_allclose(mixture_distance(new, trained), [d_uniform])
    np.testing.assert_allclose(mixture_distance(new, trained[1:]), [d_skewed])
    # scale-free in the shares' common factor, symmetric, and a mismatch of domains raises
    np.testing.assert_allclose(mixture_distance(new * 3, trained), [d_uniform])
    np.testing.assert_allclose(mixture_distance(trained[:1], new), [d_uniform])
    with pytest.raises(ValueError, match="domains"):
        mixture_distance(new[:, :3], trained)


# ------------------------------------------------------------------ data validation
def _frames():
    losses = pd.DataFrame({"mixture": ["m1"] * 4, "domain": ["a", "a", "b", "b"], "step": [1e4, 2e4] * 2,
                           "val_loss": [3.0, 2.9, 2.5, 2.4]})
    props = pd.DataFrame({"mixture": ["m1", "m1"], "domain": ["a", "b"], "proportion": [0.3, 0.7]})
    return losses, props


def test_mixing_data_validation():
    losses, props = _frames()
    d = MixingData.from_frames(losses, props)
    assert len(d) == 4 and d.domains == ["a", "b"] and d.proportions().loc["m1", "b"] == 0.7
    with pytest.raises(MissingColumnError, match="val_loss"):
        MixingData.from_frames(losses.drop(columns="val_loss"), props)
    with pytest.raises(NonPositiveValueError, match="sum to 1"):
        MixingData.from_frames(losses, props.assign(proportion=[0.3, 0.3]))
    with pytest.raises(NonFiniteValueError):
        MixingData.from_frames(losses.assign(val_loss=[3.0, np.nan, 2.5, 2.4]), props)
    with pytest.raises(NonPositiveValueError):
        MixingData.from_frames(losses.assign(step=[0, 2e4, 1e4, 2e4]), props)
    with pytest.raises(DuplicateRowError):
        MixingData.from_frames(pd.concat([losses, losses.iloc[:1]]), props)
    with pytest.raises(KeyError, match="without a proportion"):
        MixingData.from_frames(losses, props.iloc[:1].assign(proportion=1.0))


def test_bimix_release_loads(shared_root):
    for name, n_dom in (("pile", 22), ("slimpajama", 7)):
        d = load_bimix(name, shared_root)
        assert len(d.domains) == n_dom and sorted(d.mixtures) == ["Baseline", "CE", "DoReMi", "JE", "SE", "VNE"]
        assert len(d) == n_dom * 6 * 20
        opt = load_bimix_config(name, "opt", shared_root)
        assert sorted(opt.index) == d.domains and opt.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------ synthetic recovery and a real fit
def _synthetic(rng, n_dom=4, mixtures=5, sigma=0.002):
    doms = [f"d{i}" for i in range(n_dom)]
    truth = pd.DataFrame({"AB": rng.uniform(5e3, 2e4, n_dom), "CB": rng.uniform(1.5, 3.0, n_dom),
                          "a": rng.uniform(1.0, 1.3, n_dom), "b": rng.uniform(0.03, 0.09, n_dom)}, index=doms)
    steps = np.arange(1, 11) * 2e4
    rows, props = [], []
    for m in range(mixtures):
        share = rng.dirichlet(np.full(n_dom, 4.0))
        for d, r in zip(doms, share):
            props.append({"mixture": f"m{m}", "domain": d, "proportion": r})
            t = truth.loc[d]
            y = law.natural_loss(t.AB, t.CB, t.a, t.b, steps, r) * np.exp(sigma * rng.standard_normal(len(steps)))
            rows += [{"mixture": f"m{m}", "domain": d, "step": s, "val_loss": v} for s, v in zip(steps, y)]
    return MixingData.from_frames(pd.DataFrame(rows), pd.DataFrame(props)), truth


#: the tests on the four-domain fit below (about a minute) run in `make test-slow`;
#: test_cli_mixing_fits_predicts_and_optimises fits one in `make test`
ON_THE_FIT = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_fit():
    data, truth = _synthetic(np.random.default_rng(3))
    return data, truth, evaluate_heldout(data, [f"m{i}" for i in range(4)], ["m4"], inner_draws=200,
                                         sampler=dict(draws=300, tune=300, chains=2, random_seed=2))


@ON_THE_FIT
def test_hierarchical_fit_recovers_exponents_and_predicts_a_heldout_mixture(synthetic_fit, tmp_path):
    data, truth, (table, summary, fit) = synthetic_fit
    par = fit.parameter_table(interval=0.95).set_index(["domain", "parameter"])
    hits = [par.loc[(d, k), "lower"] <= truth.loc[d, k] <= par.loc[(d, k), "upper"]
            for d in truth.index for k in ("a", "b")]
    assert np.mean(hits) >= 0.75
    assert summary["mre_ours"].iloc[0] < 0.01 and summary["mre_least_squares"].iloc[0] < 0.01
    assert fit.extrapolation["mode"] == "learn"
    back = MixingFit.load(fit.save(tmp_path / "mix.nc"))
    np.testing.assert_allclose(back.natural()["a"].to_numpy(), fit.natural()["a"].to_numpy())
    assert back.extrapolation == fit.extrapolation


@ON_THE_FIT
def test_predictive_widens_with_the_distance_from_trained_mixtures(synthetic_fit):
    data, _, (_, _, fit) = synthetic_fit
    props = data.proportions()
    trained = props.loc["m0"]
    skew = pd.Series(np.r_[0.85, np.full(len(fit.domains) - 1, 0.15 / (len(fit.domains) - 1))], index=fit.domains)
    dist = fit.mixture_distance(pd.DataFrame([trained, skew], index=["m0", "skew"]))
    assert dist[0] == pytest.approx(0.0, abs=1e-12) and dist[1] > 0.3
    ex = fit.extrapolation
    assert set(ex["heldout_distances"]) == {"m0", "m1", "m2", "m3"} and ex["distance_power"] == 2.0
    step = [2e5]
    # a trained mixture gets no discrepancy: with and without the term the draws are the same
    with_term = fit.loss_draws(trained, step, random_seed=4)["expected"]
    np.testing.assert_allclose(with_term, fit.loss_draws(trained, step, random_seed=4, extrapolate=False)["expected"])
    # far from the trained mixtures the expected loss spreads more with the term than without it
    far = np.log(fit.loss_draws(skew, step, random_seed=4)["expected"]).std("sample")
    law_only = np.log(fit.loss_draws(skew, step, random_seed=4, extrapolate=False)["expected"]).std("sample")
    assert (far > law_only).all()


def test_mixing_priors_reject_impossible_values():
    from bayes_scaling.errors import PriorError
    from bayes_scaling.mixing.model import MixingPriors

    for bad in (dict(kappa_scale=0.0), dict(distance_power=-1.0), dict(mix_scale=float("nan")),
                dict(tau_scale=(1.0, -0.5, 1.0)), dict(mu_loc=(0.0, 1.0))):
        with pytest.raises(PriorError):
            MixingPriors(**bad)


def test_least_squares_baseline_recovers_noise_free_law():
    data, truth = _synthetic(np.random.default_rng(5), sigma=0.0)
    ls = fit_least_squares(data)
    np.testing.assert_allclose(ls["b"], truth["b"], rtol=1e-3)
    np.testing.assert_allclose(predict_least_squares(ls, data.frame), data.frame["loss"], rtol=1e-6)


@ON_THE_FIT
def test_optimiser_beats_the_training_mixtures_and_respects_the_simplex(synthetic_fit):
    data, _, (_, _, fit) = synthetic_fit
    step = 2e5
    opt = optimize_mixture(fit, step, floor=0.01)
    assert opt.sum() == pytest.approx(1.0) and (opt >= 0.01 - 1e-12).all() and opt.attrs["converged"]
    props = data.proportions()
    comp = compare_mixtures(fit, {"opt": opt.to_dict(), **{m: props.loc[m].to_dict() for m in props.index}}, step)
    assert comp.loc[comp["median"].idxmin(), "mixture"] == "opt"
    # a domain weighted to 1 gets a larger share than under equal weights
    w = {d: (1.0 if d == fit.domains[0] else 0.0) for d in fit.domains}
    assert optimize_mixture(fit, step, weights=w, floor=0.01)[fit.domains[0]] > opt[fit.domains[0]]
    with pytest.raises(ValueError, match="floor"):
        optimize_mixture(fit, step, floor=0.5)


@pytest.mark.slow
def test_real_bimix_slimpajama_heldout_mixtures(shared_root):
    """Real data: SlimPajama's 7 domains, the four proxy mixtures in, Baseline and DoReMi out."""
    data = load_bimix("slimpajama", shared_root)
    # 2 x 600 draws: at FAST's 2 x 300 the worst spread's ESS was ~50 and its R-hat near 1.05 by the chains'
    # luck alone (the one-BLAS-thread change moved the draws' rounding and the test failed at 1.06)
    table, summary, fit = evaluate_heldout(data, ["SE", "JE", "CE", "VNE"], ["Baseline", "DoReMi"], inner_draws=200,
                                           sampler=dict(FAST, draws=600, tune=600))
    d = fit.diagnostics
    assert d.divergences <= 2 and d.max_rhat < 1.05
    assert len(table) == 2 * 7 * 20
    # a few percent, and no worse than the release's least squares on the same split (measured: 1.9% vs 2.0%)
    assert (summary["mre_ours"] < 0.03).all()
    assert table["re_ours"].mean() <= 1.05 * table["re_least_squares"].mean()
    ex = fit.extrapolation
    assert ex["distance_power"] == 2.0 and ex["kappa_median"] > 0
    assert set(ex["heldout_distances"]) == {"SE", "JE", "CE", "VNE"} and min(ex["heldout_distances"].values()) > 0
    # the held-out mixtures lie further from the proxies than the proxies from each other
    far = fit.mixture_distance(data.proportions().loc[["Baseline", "DoReMi"]])
    assert far.min() > max(ex["heldout_distances"].values())


def test_cli_mixing_fits_predicts_and_optimises(tmp_path):
    from bayes_scaling.cli import main

    data, _ = _synthetic(np.random.default_rng(11), n_dom=3, mixtures=4)
    f = data.frame
    f.drop(columns="share").rename(columns={"loss": "val_loss"}).to_csv(tmp_path / "losses.csv", index=False)
    f.drop_duplicates(["mixture", "domain"])[["mixture", "domain", "share"]].rename(
        columns={"share": "proportion"}).to_csv(tmp_path / "props.csv", index=False)
    rc = main(["mixing", str(tmp_path / "losses.csv"), str(tmp_path / "props.csv"), "--train", "m0,m1,m2",
               "--predict", "m3", "--optimize-step", "2e5", "--draws", "200", "--tune", "200", "--chains", "2",
               "--no-extrapolation", "--out", str(tmp_path / "out")])
    assert rc == 0
    import json

    res = json.loads((tmp_path / "out" / "mixing.json").read_text())
    assert res["heldout"]["mean_relative_error"] < 0.02
    assert sum(res["optimal_mixture"]["shares"].values()) == pytest.approx(1.0)
    assert res["distance_from_trained"]["m3"] > 0 and res["optimal_mixture"]["distance_from_trained"] >= 0
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(pred) == 3 * 10 and {"run_median", "run_lower", "run_upper", "loss"} <= set(pred.columns)
    assert MixingFit.load(tmp_path / "out" / "mixing_fit.nc").domains == ["d0", "d1", "d2"]


def test_student_t_likelihood_is_an_option_and_bad_names_raise():
    from bayes_scaling.mixing.model import build_mixing_model, reference_scales

    data, _ = _synthetic(np.random.default_rng(1), n_dom=3, mixtures=3)
    s0, r0 = reference_scales(data.frame)
    model = build_mixing_model(data.frame, data.domains, s0, r0, likelihood="student_t")
    assert "nu" in model.named_vars and model["u"].owner.op.__class__.__name__.startswith("StudentT")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        build_mixing_model(data.frame, data.domains, s0, r0, likelihood="cauchy")
