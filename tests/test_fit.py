"""End-to-end: fit (real NUTS, small), diagnostics, predict, save/load, CLI."""

import json

import warnings

import numpy as np
import pytest
import xarray as xr

import bayes_scaling as bs
from bayes_scaling.cli import main
from bayes_scaling.errors import UnknownFamilyError
from conftest import FAST


def test_fit_has_labelled_groups(small_fit):
    idata = small_fit.idata
    for g in ("posterior", "sample_stats", "observed_data", "log_likelihood", "constant_data"):
        assert g in idata.groups()
    post = idata.posterior
    assert list(post["theta"].dims) == ["chain", "draw", "family", "param"]
    assert list(post["natural"].coords["law_param"].values) == ["E", "A", "alpha", "B", "beta"]
    assert idata.log_likelihood["runs"].dims == ("chain", "draw", "run")
    assert np.isfinite(idata.log_likelihood["runs"]).all()


def test_diagnostics_reported(small_fit):
    d = small_fit.diagnostics
    assert d.chains == 2 and d.draws == 300
    assert d.max_rhat < 1.1
    # the count is the sampler's, and a problem is reported exactly when there is one
    assert d.divergences == int(small_fit.idata.sample_stats["diverging"].sum())
    assert (d.divergences > 0) == any("divergent" in p for p in d.problems)
    s = small_fit.summary()
    for key in ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail", "chains", "draws", "sampling_seconds",
                "parameters"):
        assert key in s
    for p in ("E", "A", "alpha", "B", "beta", "families", "sigma_seed", "sigma_obs"):
        assert p in s["parameters"]
    assert set(s["parameters"]["families"]) == {"fam0", "fam1", "fam2"}


def _draws(n, rng, sticky=(), diverging=0):
    """Two chains of ``n`` draws of ``mu``, ``tau`` and ``sigma_seed``; the names in ``sticky`` random walks
    (chains that have not mixed)."""
    import arviz as az

    post = {"mu": rng.standard_normal((2, n, 3)), "tau": np.abs(rng.standard_normal((2, n, 3))),
            "sigma_seed": np.abs(rng.standard_normal((2, n)))}
    for name in sticky:
        post[name] = np.cumsum(post[name], axis=1)
    div = np.zeros((2, n), bool)
    div[0, :diverging] = True
    return az.from_dict(posterior=post, sample_stats={"diverging": div})


def test_the_spread_holds_back_a_run_only_when_it_alone_misses_the_ess_check():
    from bayes_scaling.inference.diagnostics import diagnose
    from bayes_scaling.inference.run import spread_holds_back, whitening_hint

    rng = np.random.default_rng(0)
    slow_spread = _draws(1000, rng, sticky=("tau",))
    assert spread_holds_back(slow_spread)
    assert not spread_holds_back(_draws(1000, rng))  # everything mixes
    assert not spread_holds_back(_draws(1000, rng, sticky=("tau", "mu")))  # not the spread alone: no remedy
    assert not spread_holds_back(_draws(1000, rng, sticky=("sigma_seed",)))
    # projected to a budget: 150 well-mixed draws of two chains fall short of ESS 400 now, not at 1000 draws
    few = _draws(150, rng)
    assert not spread_holds_back(few) and not spread_holds_back(few, budget=1000)
    hint = whitening_hint(slow_spread, diagnose(slow_spread, ["mu", "tau", "sigma_seed"]), "fixed")
    assert "tau[" in hint and "sampler={'whiten': 'auto'}" in hint
    assert whitening_hint(slow_spread, diagnose(slow_spread, ["mu", "tau"]), "conditional") is None
    assert whitening_hint(slow_spread, diagnose(slow_spread, ["mu", "tau"]), None) is None  # nothing whitened


def _runs_for(runs, asked, by_step=False, rules=None):
    """A stand-in for ``run._sample`` that returns stored draws instead of sampling with NUTS: the run of
    ``runs`` keyed by the whitening asked for (``by_step``: by the target acceptance), each request appended to
    ``asked``. A run its stop rule stops at a divergence (``"diverged"``, asked of the whole run) is returned so
    stopped; ``rules`` collects each request's rule."""
    from bayes_scaling.inference.diagnostics import diagnose

    def fake_sample(data, spec, nuts, what, estimates, fused, whiten, stop):
        asked.append((nuts.target_accept, whiten) if by_step else whiten)
        if rules is not None:
            rules.append(stop)
        idata = runs[nuts.target_accept if by_step else whiten]
        stopped = "diverged" if stop is not None and stop(idata, 1000) == "diverged" else None
        info = {"draws": 1000, "sampling_seconds": 1.0, "compile_seconds": 0.5, "whitened": whiten or None,
                "stop_reason": stopped, "target_accept": nuts.target_accept}
        return idata, info, diagnose(idata, ["mu", "tau", "sigma_seed"])

    return fake_sample


def test_whiten_auto_keeps_the_fixed_run_or_switches_and_keeps_the_better(monkeypatch):
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")
    rng = np.random.default_rng(1)
    runs = {"fixed": _draws(1000, rng, sticky=("tau",)), "conditional": _draws(1000, rng)}
    sampled = []
    monkeypatch.setattr(run_module, "_sample", _runs_for(runs, sampled))
    nuts = bs.SamplerConfig()
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True)
    assert sampled == ["fixed", "conditional"] and idata is runs["conditional"]
    chosen = info["parameterisation"]
    assert chosen["whitening"] == "conditional" and "mixed slowly under the fixed" in chosen["reason"]
    assert [t["whitening"] for t in chosen["tried"]] == ["fixed", "conditional"]
    # the conditional run diverges: the fixed one, which failed only on ESS, is kept and the reason says why
    runs["conditional"] = _draws(1000, rng, diverging=3)
    sampled.clear()
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True)
    assert idata is runs["fixed"] and "failed more checks" in info["parameterisation"]["reason"]
    # the fixed run passes: nothing else is sampled
    runs["fixed"] = _draws(1000, rng)
    sampled.clear()
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True)
    assert sampled == ["fixed"] and "passed the R-hat and ESS checks" in info["parameterisation"]["reason"]


def test_a_diverging_run_is_sampled_again_with_smaller_steps_and_the_better_run_kept(monkeypatch):
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")
    rng = np.random.default_rng(3)
    runs = {0.98: _draws(1000, rng, diverging=4), 0.995: _draws(1000, rng), 0.999: _draws(1000, rng)}
    assert run_module.SMALLER_STEPS == (0.995, 0.999)
    asked = []
    fake_sample = _runs_for(runs, asked, by_step=True)
    monkeypatch.setattr(run_module, "_sample", fake_sample)
    nuts = bs.SamplerConfig()
    first = fake_sample(None, None, nuts, "fit", None, True, "fixed", None)
    idata, info, diag = run_module.smaller_step(None, None, nuts, "fit", None, True, first)
    assert asked[-1] == (0.995, "fixed")  # the same parameterisation again, and no smaller step once clean
    assert idata is runs[0.995] and diag.divergences == 0
    chosen = info["parameterisation"]
    assert "then target_accept 0.995, since at 0.98 the draws had 4 divergent transitions" in chosen["reason"]
    assert [(t["target_accept"], t["divergences"]) for t in chosen["tried"]] == [(0.98, 4), (0.995, 0)]
    # a divergence left at 0.995: the next smaller step, 0.999, and each run is recorded
    runs[0.995] = _draws(1000, rng, diverging=1)
    asked.clear()
    idata, info, diag = run_module.smaller_step(None, None, nuts, "fit", None, True, first)
    assert [a[0] for a in asked] == [0.995, 0.999] and idata is runs[0.999] and diag.divergences == 0
    chosen = info["parameterisation"]
    assert [(t["target_accept"], t["divergences"]) for t in chosen["tried"]] == [(0.98, 4), (0.995, 1), (0.999, 0)]
    assert chosen["reason"].endswith("then target_accept 0.999, since at 0.995 the draws had 1 divergent transitions")
    # the smaller step diverges more: the first run is kept, no smaller step is tried, and the reason says so;
    # a model without whitening (one family) is sampled again without it
    runs[0.995] = _draws(1000, rng, diverging=9)
    asked.clear()
    first = fake_sample(None, None, nuts, "fit", None, True, False, None)
    idata, info, _ = run_module.smaller_step(None, None, nuts, "fit", None, True, first)
    assert asked[-1] == (0.995, False) and len(asked) == 2 and idata is runs[0.98]
    assert info["parameterisation"]["reason"].startswith("no whitening of the family layer; at target_accept 0.995 "
                                                         "the draws did no better (9 divergent transitions")
    assert info["sampling_seconds_all_runs"] == 2.0


def test_a_run_that_a_smaller_step_will_replace_stops_at_its_first_divergence(monkeypatch):
    """Under ``whiten="auto"`` a run that diverges is sampled again at a smaller step whatever its later draws,
    so it stops at the first divergence instead of sampling on; the last step has nothing to stop for, and a run
    stopped so is never the one kept."""
    import importlib

    import arviz as az

    run_module = importlib.import_module("bayes_scaling.inference.run")
    rng = np.random.default_rng(5)
    rule = run_module.stop_rule(until_converged=True, give_up=False, diverged=True)
    sticky_diverging = _draws(300, rng, sticky=("mu",), diverging=1)  # not mixed, one divergence
    assert rule(sticky_diverging, 2000) == "diverged"
    assert run_module.stop_rule(until_converged=True, give_up=False)(sticky_diverging, 2000) is None
    assert rule(_draws(1000, rng, diverging=1), 1000) == "converged"  # mixed: a whole run, though it diverged
    # a run that also chooses the whitening waits until its draws are judged for that (a quarter of the budget)
    choosing = run_module.stop_rule(until_converged=True, give_up=True, diverged=True)
    assert choosing(sticky_diverging, 2000) is None and choosing(sticky_diverging, 1200) == "diverged"
    # a run sampled without a rule (every draw, no give-up) is not polled for its divergences either
    assert run_module.stop_rule(until_converged=False, give_up=False, diverged=True) is None
    assert run_module.stop_rule(until_converged=False, give_up=True, diverged=True)(sticky_diverging, 1200) == "diverged"

    runs = {0.98: _draws(1000, rng, sticky=("mu",), diverging=2), 0.995: _draws(1000, rng, sticky=("mu",), diverging=1),
            0.999: _draws(1000, rng, sticky=("mu",), diverging=1)}
    asked, rules = [], []
    fake_sample = _runs_for(runs, asked, by_step=True, rules=rules)
    monkeypatch.setattr(run_module, "_sample", fake_sample)
    nuts = bs.SamplerConfig()
    first = fake_sample(None, None, nuts, "fit", None, True, "fixed", rule)
    assert first[1]["stop_reason"] == "diverged"
    rules.clear()
    idata, info, diag = run_module.smaller_step(None, None, nuts, "fit", None, True, first)
    # 0.995 stops at its divergence too; 0.999, the last step, samples on and is kept though it diverged
    assert [a[0] for a in asked[1:]] == [0.995, 0.999] and idata is runs[0.999] and diag.divergences == 1
    assert rules[0](runs[0.995], 2000) == "diverged" and rules[1](runs[0.999], 2000) is None
    tried = info["parameterisation"]["tried"]
    assert [t["outcome"].startswith("stopped after 1000 draws per chain at a divergent transition") for t in tried] \
        == [True, True, False]
    # the fixed run stops at a divergence: its population spread, short of the ESS check in the draws it has but
    # on course for it by the budget (as the give-up rule judged), keeps the fixed whitening for the smaller step
    n = 300
    tau = np.zeros((2, n, 3))
    eps = rng.standard_normal((2, n, 3))
    for t in range(n):  # an AR(1) chain: about a third of the draws' worth of ESS
        tau[:, t] = 0.5 * tau[:, t - 1] + eps[:, t] if t else eps[:, 0]
    div = np.zeros((2, n), bool)
    div[0, 10] = True
    runs["fixed"] = az.from_dict(posterior={"mu": rng.standard_normal((2, n, 3)), "tau": np.abs(tau),
                                            "sigma_seed": np.abs(rng.standard_normal((2, n)))},
                                 sample_stats={"diverging": div})
    assert run_module.spread_holds_back(runs["fixed"]) and not run_module.spread_holds_back(runs["fixed"], 1000)
    sampled = []
    monkeypatch.setattr(run_module, "_sample", _runs_for(runs, sampled))
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True)
    assert sampled == ["fixed"] and idata is runs["fixed"] and info["stop_reason"] == "diverged"
    assert info["parameterisation"]["reason"] == ("the fixed whitening: its draws diverged, and the population "
                                                  "spread did not mix slowly")
    # a whole run at 0.995 that a whole run at 0.999 does no better than is kept, as before
    monkeypatch.setattr(run_module, "_sample", fake_sample)
    runs[0.995] = _draws(1000, rng, diverging=1)
    runs[0.999] = _draws(1000, rng, sticky=("mu", "tau"), diverging=3)
    asked.clear()
    idata, info, _ = run_module.smaller_step(None, None, nuts, "fit", None, True, first)
    assert idata is runs[0.995] and info["target_accept"] == 0.995
    assert info["parameterisation"]["reason"].endswith("so the run at 0.995 is kept")


def test_calibration_fits_begin_where_the_fit_s_own_choices_ended(monkeypatch):
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")
    inherited_start = run_module.inherited_start

    def tried(*targets):
        return [{"whitening": "fixed", "target_accept": t} for t in targets]

    # the fit kept its first run (fixed whitening, its own step), or chose nothing: its calibration fits start afresh
    assert inherited_start({"whitened": "fixed", "target_accept": 0.98,
                            "parameterisation": {"reason": "", "tried": tried(0.98)}}) is None
    assert inherited_start({"whitened": None, "target_accept": 0.98}) is None
    # smaller steps, or the conditional whitening: they start there, and say so
    start = inherited_start({"whitened": "fixed", "target_accept": 0.999,
                             "parameterisation": {"reason": "", "tried": tried(0.98, 0.995, 0.999)}})
    assert start["whitening"] == "fixed" and start["target_accept"] == 0.999
    assert start["reason"] == "started from the fixed whitening at target_accept 0.999, which the fit of every row kept"
    start = inherited_start({"whitened": "conditional", "target_accept": 0.98,
                             "parameterisation": {"reason": "", "tried": tried(0.98, 0.98)}})
    assert start["whitening"] == "conditional" and "the conditional whitening at target_accept 0.98" in start["reason"]

    rng = np.random.default_rng(2)
    runs = {"fixed": _draws(1000, rng, sticky=("tau",)), "conditional": _draws(1000, rng)}
    sampled = []
    monkeypatch.setattr(run_module, "_sample", _runs_for(runs, sampled))
    nuts = bs.SamplerConfig()
    # started conditional: a run that passes is kept without sampling the fixed whitening first
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True, conditional_first=True)
    assert sampled == ["conditional"] and idata is runs["conditional"]
    assert info["parameterisation"]["reason"] == "the conditional whitening"
    # it diverges: the fixed whitening is sampled to the whole budget and the run that fails fewer checks kept
    runs["conditional"] = _draws(1000, rng, diverging=2)
    sampled.clear()
    idata, info, _ = run_module.choose_whitening(None, None, nuts, "fit", None, True, conditional_first=True)
    assert sampled == ["conditional", "fixed"] and idata is runs["fixed"]
    assert info["parameterisation"]["reason"].startswith("the fixed whitening: the conditional whitening failed more")


def test_the_default_fit_samples_a_diverging_model_again_with_a_smaller_step(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed")
    # a large step (target_accept 0.5) diverges on this hierarchical model; whiten="auto" (the default) remedies it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(data, {"holdout_depths": (1,)}, {**FAST, "target_accept": 0.5})
    tried = fit.sampler_info["parameterisation"]["tried"]
    assert tried[0]["target_accept"] == 0.5 and tried[0]["divergences"] > 0
    assert [t["target_accept"] for t in tried][:2] == [0.5, 0.995]
    assert fit.diagnostics.divergences < tried[0]["divergences"]
    kept = fit.sampler_info["target_accept"]
    assert kept in (0.995, 0.999)
    assert any("then target_accept 0.995" in n for n in fit.notes())
    # its calibration fits start from the step it kept, not from the step that diverged, and record it
    splits = [s for s in fit.extrapolation["splits"] if "inner_sampling" in s]
    assert splits
    for s in splits:
        assert s["inner_sampling"]["target_accept"] >= kept
        assert s["inner_sampling"]["reason"].startswith(f"started from the fixed whitening at target_accept {kept:g}")
    # chosen by hand, the parameterisation and the step stay as asked
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = bs.fit(data, {"extrapolation": None}, {**FAST, "target_accept": 0.5, "whiten": "fixed"})
    assert "parameterisation" not in fixed.sampler_info and fixed.sampler_info["target_accept"] == 0.5


def test_predict_seen_and_new_family(small_fit):
    p = small_fit.predict("fam0", [1e8, 1e9], [2e9, 2e10], interval=0.9, keep_draws=True)
    assert isinstance(p, xr.Dataset) and p.sizes["point"] == 2
    assert (p["run_lower"] < p["run_median"]).all() and (p["run_median"] < p["run_upper"]).all()
    # one run is noisier than the expected loss of the configuration
    width_run = p["run_upper"] - p["run_lower"]
    width_exp = p["expected_upper"] - p["expected_lower"]
    assert (width_run > width_exp).all()
    assert p["run_loss"].dims == ("sample", "point")
    new = small_fit.predict("brand-new", 1e9, 2e10, new_family=True)
    assert bool(new["new_family"].values[0])
    seen = small_fit.predict("fam0", 1e9, 2e10)
    width = lambda p: (p["run_upper"] - p["run_lower"]).values[0]  # noqa: E731
    assert width(new) > width(seen)
    # a name the fit has not seen must be asked for as a new family; a misspelling names the closest family
    with pytest.raises(UnknownFamilyError, match=r"'Fam0': closest \['fam0'.*new_family=True"):
        small_fit.predict("Fam0", 1e9, 2e10)
    with pytest.raises(ValueError, match="is a family of the fit"):
        small_fit.predict("fam0", 1e9, 2e10, new_family=True)


def test_extrapolation_term_widens_far_predictions(small_fit):
    near = small_fit.predict("fam0", 4e8, 8e9, keep_draws=True)  # inside the data
    far = small_fit.predict("fam0", 4e10, 8e11, keep_draws=True)  # 4 decades of compute beyond
    E = small_fit.law_draws("fam0")["E"].to_numpy()[:, None]

    def rel(p):  # the 90% width of the log reducible loss L - E
        q = np.quantile(np.log(p["expected_loss"].to_numpy() - E), [0.05, 0.95])
        return q[1] - q[0]

    # kappa = 0.02 per decade of the log reducible loss x 4 decades adds 2 x 1.645 x 0.08 = 0.26 (90%)
    assert rel(far) > np.hypot(rel(near), 0.2)


def test_save_load_round_trip(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    back = bs.open(path)
    for g in small_fit.idata.groups():
        xr.testing.assert_identical(getattr(small_fit.idata, g), getattr(back.idata, g))
    assert back.spec == small_fit.spec
    assert back.summary() == small_fit.summary()
    a = small_fit.predict("fam1", 3e9, 6e10, random_seed=5)
    b = back.predict("fam1", 3e9, 6e10, random_seed=5)
    xr.testing.assert_identical(a, b)
    pd_a, pd_b = small_fit.data.frame, back.data.frame
    assert pd_a.equals(pd_b)


def test_are_helper():
    assert bs.evaluate.are([2.0, 4.0], [2.2, 3.6]) == pytest.approx(0.1)


def test_cli_predict_and_summary(small_fit, tmp_path, capsys):
    path = small_fit.save(tmp_path / "fit.nc")
    assert main(["predict", str(path), "--family", "fam2", "--params", "1e9", "--tokens", "2e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"family", "params", "tokens", "median", "mean", "lower", "upper", "interval", "expected_lower",
            "expected_upper", "new_family"} <= set(out)
    assert out["lower"] < out["median"] < out["upper"] and out["new_family"] is False
    assert main(["predict", str(path), "--family", "zzz", "--params", "1e9", "--tokens", "2e10", "--new-family",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_family"] is True
    assert main(["summary", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["parameters"]["alpha"]["lower"] < s["parameters"]["alpha"]["median"] < s["parameters"]["alpha"]["upper"]
    assert "sigma_seed" in s["parameters"] and "families" in s["parameters"]


def test_cli_fit_and_report(synthetic_truth, tmp_path, capsys):
    _, df = synthetic_truth
    csv = tmp_path / "runs.csv"
    df[df["family"] != "fam2"].rename(columns={"loss": "val_loss"}).to_csv(csv, index=False)
    out = tmp_path / "fit.nc"
    rc = main(["fit", str(csv), "--family", "family", "--params", "params", "--tokens", "tokens", "--loss",
               "val_loss", "--run", "run", "--seed", "seed", "--min-tokens", "1e9", "--draws", "200", "--tune",
               "200", "--chains", "2", "--random-seed", "3", "--no-extrapolation", "--out", str(out)])
    assert rc == 0 and out.exists()
    fit = bs.open(out)
    assert fit.spec.filters[0]["filter"] == "min_tokens" and fit.spec.filters[0]["rows"] > 0
    assert fit.sampler_info["whitened"] == "fixed"  # two families, centred: whitened by default
    from bayes_scaling.cli import build_parser
    from bayes_scaling.cli.options import _configs

    base = ["fit", str(csv), "--family", "family", "--params", "params", "--tokens", "tokens", "--loss", "val_loss",
            "--out", str(out)]
    assert [_configs(build_parser().parse_args(base + extra))[1].whiten
            for extra in ([], ["--whiten", "none"], ["--whiten", "conditional"])] == ["auto", False, "conditional"]
    assert [_configs(build_parser().parse_args(base + extra))[1].until_converged
            for extra in ([], ["--no-until-converged"])] == [True, False]
    # the flags' defaults are the library's
    assert _configs(build_parser().parse_args(base))[1].replace(progressbar=False) == bs.SamplerConfig()
    assert _configs(build_parser().parse_args(base))[0].discrepancy_tails == bs.ModelConfig().discrepancy_tails
    from bayes_scaling.model.config import DISCREPANCY_TAIL_CHOICES
    assert [_configs(build_parser().parse_args(base + ["--discrepancy-tails", c]))[0].discrepancy_tails
            for c in DISCREPANCY_TAIL_CHOICES] == list(DISCREPANCY_TAIL_CHOICES)
    assert _configs(build_parser().parse_args(base))[0].discrepancy_pooling == bs.ModelConfig().discrepancy_pooling
    from bayes_scaling.model.config import DISCREPANCY_POOLINGS
    assert [_configs(build_parser().parse_args(base + ["--discrepancy-pooling", c]))[0].discrepancy_pooling
            for c in DISCREPANCY_POOLINGS] == list(DISCREPANCY_POOLINGS)
    assert _configs(build_parser().parse_args(base))[0].discrepancy_scale == bs.ModelConfig().discrepancy_scale
    from bayes_scaling.model.config import DISCREPANCY_SCALES
    assert [_configs(build_parser().parse_args(base + ["--discrepancy-scale", c]))[0].discrepancy_scale
            for c in DISCREPANCY_SCALES] == list(DISCREPANCY_SCALES)
    assert main(["report", str(out), "--target", "family=fam0,params=1e9,tokens=2e10", "--out",
                 str(tmp_path / "rep")]) == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7 and "Diagnostics" in html


def test_cli_reports_bad_input(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("family,N,D,loss\na,1e8,1e9,-1\n")
    rc = main(["fit", str(csv), "--family", "family", "--params", "N", "--tokens", "D", "--loss", "loss",
               "--out", str(tmp_path / "x.nc")])
    assert rc == 2 and "zero or negative" in capsys.readouterr().err


def test_the_stop_rule_does_not_wait_on_divergences_that_more_draws_cannot_remove():
    import importlib

    rule = importlib.import_module("bayes_scaling.inference.run").stop_rule(until_converged=True, give_up=False)
    rng = np.random.default_rng(0)
    assert rule(_draws(1000, rng), 1000) == "converged"
    mixed_but_divergent = _draws(1000, rng, diverging=2)
    assert rule(mixed_but_divergent, 1000) == "converged"  # every later set of first-n draws holds the same ones
    from bayes_scaling.inference.diagnostics import diagnose

    assert not diagnose(mixed_but_divergent, ["mu", "sigma_seed"]).ok  # and the fit still reports them
    assert rule(_draws(150, rng), 1000) is None  # too few draws for ESS 400
    assert rule(_draws(1000, rng, sticky=("mu", "sigma_seed")), 4000) is None  # R-hat and ESS fail, budget to go


def test_a_run_short_of_the_ess_check_at_its_budget_goes_on_only_when_on_course_to_pass():
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")
    rule = run_module.stop_rule(until_converged=True, give_up=False)
    rng = np.random.default_rng(4)
    short = _draws(150, rng)  # two well-mixed chains of 150 draws: ESS about 300, 600 at twice the budget
    assert rule(short, 150) is None and rule(short, 1000) is None
    assert run_module.on_course(importlib.import_module("bayes_scaling.inference.diagnostics").diagnose(
        short, ["mu", "tau", "sigma_seed"]), run_module.EXTEND_BUDGET * 150)
    assert rule(_draws(60, rng), 60) == "budget"  # ESS about 120: 240 at twice the budget is still short
    assert rule(_draws(150, rng, diverging=1), 150) == "budget"  # a divergence stays in every later set
    assert rule(_draws(1000, rng, sticky=("mu",)), 1000) == "budget"  # R-hat fails: no projection to make
    assert rule(_draws(1000, rng, sticky=("mu",)), 2000) is None  # before the budget it samples on


def test_whiten_auto_abandons_the_fixed_run_when_the_spread_alone_would_miss_the_check_at_the_budget():
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")
    rng = np.random.default_rng(2)
    give_up = run_module.stop_rule(until_converged=True, give_up=True)
    slow = _draws(300, rng, sticky=("tau",))
    assert give_up(slow, 4000) is None  # under a quarter of the budget: too early to project
    assert give_up(slow, 1000) == "abandoned"
    assert give_up(_draws(150, rng), 500) is None  # short of the check now, every parameter on course for it
    assert run_module.stop_rule(until_converged=False, give_up=False) is None


def test_until_converged_stops_when_the_draws_pass_and_keeps_chains_of_one_length(synthetic_truth, monkeypatch):
    from bayes_scaling.inference.fit import model_spec
    from bayes_scaling.inference.compiled import CompiledModel
    from bayes_scaling.inference.sampling import check_points

    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df[df["family"] == "fam0"], family="family", params="params", tokens="tokens",
                                     loss="loss", run="run", seed="seed")
    spec, _ = model_spec(data, "chinchilla", None)
    cm = CompiledModel.build(data, spec)
    asked = []

    def rule(idata, budget):  # shown only draws every chain has reached: no padding
        asked.append(idata.posterior.sizes["draw"])
        assert not np.isnan(idata.posterior["mu"].to_numpy()).any() and budget == 200_000
        return "enough" if len(asked) >= 2 else None

    idata, info = cm.sample(draws=200_000, tune=200, chains=2, random_seed=1, target_accept=0.9, stop=rule)
    assert info["stopped_early"] and info["stop_reason"] == "enough" and info["max_draws"] == 200_000
    # asked at fixed draw counts, in order, whatever the timing: the same draws kept however fast chains run
    assert check_points(200, 1000) == [200, 250, 300, 400, 500, 600, 750, 900]
    assert asked == [200, 250] and info["draws"] == 250
    assert idata.posterior.sizes["draw"] == idata.sample_stats.sizes["draw"] == info["draws"]
    assert not np.isnan(idata.posterior["mu"].to_numpy()).any()
    # a budget below the draws sampled: the rule is told the budget, which is a check point of its own
    told = []

    def goes_on(idata, budget):
        told.append((idata.posterior.sizes["draw"], budget))

    _, info = cm.sample(draws=400, budget=225, tune=200, chains=2, random_seed=1, target_accept=0.9, stop=goes_on)
    assert told == [(200, 225), (225, 225), (250, 225), (300, 225)]
    assert info["draws"] == info["max_draws"] == 400 and info["budget"] == 225 and not info["stopped_early"]
    # through bs.fit: its rule is the convergence checks (a stand-in here that passes at once: this small
    # fit diverges), and the diagnostics and the extrapolation draws are those of the draws kept
    import importlib

    run_module = importlib.import_module("bayes_scaling.inference.run")

    monkeypatch.setattr(run_module, "_mixed", lambda diag: True)
    fit = bs.fit(data, dict(extrapolation=0.02),
                 dict(draws=200_000, tune=200, chains=2, random_seed=2, until_converged=True))
    kept = fit.sampler_info["draws"]
    assert fit.sampler_info["stopped_early"] and kept < 200_000
    assert fit.diagnostics.draws == fit.idata.posterior.sizes["draw"] == fit.idata.posterior["kappa"].sizes["draw"] == kept


def test_pymc_s_sampler_which_cannot_be_stopped_samples_the_budget_not_the_room_past_it():
    import pymc as pm

    from bayes_scaling.inference.sampling import run_nuts

    with pm.Model() as model:
        pm.Normal("mu", 0.0, 1.0)
    idata, info = run_nuts(model, {}, draws=80, budget=40, tune=20, chains=1, random_seed=0, target_accept=0.8,
                           sampler="pymc", keep_vars=("mu",), jitter_vars=None, stop=lambda idata, budget: None)
    assert idata.posterior.sizes["draw"] == info["draws"] == info["max_draws"] == info["budget"] == 40
