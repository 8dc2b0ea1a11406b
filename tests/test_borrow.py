"""Borrowed priors: a population prior extracted from a fit carries a one-size new family."""

import subprocess
import sys

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.errors import PriorError


@pytest.fixture(scope="module")
def population_prior(small_fit, tmp_path_factory):
    prior = bs.PopulationPrior.from_fit(small_fit, draws=400)
    path = prior.save(tmp_path_factory.mktemp("prior") / "population.nc")
    return prior, path


def test_prior_round_trips_and_is_small(population_prior):
    prior, path = population_prior
    back = bs.PopulationPrior.load(path)
    assert np.array_equal(back.natural, prior.natural) and back.law == prior.law
    assert np.array_equal(back.drift, prior.drift) and back.source == prior.source
    assert back.size_spans == prior.size_spans and set(prior.size_spans) == set(prior.source.split(": ")[1].split(", "))
    assert path.stat().st_size < 200_000
    mean, cov = back.sampling_moments({"params": 1e8, "tokens": 2e9})
    assert mean.shape == (5,) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_borrowed_parameters_can_be_t_distributed_over_few_families(population_prior, mixture_prior, synthetic_truth,
                                                                    small_fit, tmp_path):
    """``tails=True``: a prior extracted from F families is a multivariate t with F - 1 degrees of freedom (at
    least 3) whose covariance is the draws'; it survives save/load, the borrowed model samples it, and its density
    is the t's. The default, a mixture's components (one family's posterior each) and a prior without tails
    stay normal."""
    import dataclasses

    from scipy import stats

    from bayes_scaling.model.hierarchical import build_model
    from bayes_scaling.model.spec import ModelSpec
    from bayes_scaling.model.population_prior import MIN_TAIL_DF, borrowed_logpdf, tail_df

    assert population_prior[0].tail_df is None and mixture_prior.tail_df is None
    assert bs.PopulationPrior.from_fit(small_fit, population="mixture", tails=True).tail_df is None
    prior = bs.PopulationPrior.from_fit(small_fit, draws=400, tails=True)
    assert prior.tail_df == tail_df(len(small_fit.spec.families)) == max(len(small_fit.spec.families) - 1, MIN_TAIL_DF)
    assert tail_df(12) == 11 and bs.PopulationPrior.load(prior.save(tmp_path / "t.nc")).tail_df == prior.tail_df
    assert bs.PopulationPrior.from_fit(small_fit, without="fam0", tails=True).tail_df == 3
    entry = prior.as_spec_entry({"params": 1e8, "tokens": 2e9})
    mean, cov = np.asarray(entry["mean"]), np.asarray(entry["cov"])
    x = mean + np.linspace(-3, 3, 7)[:, None] * np.sqrt(np.diag(cov))
    df = entry["tail_df"]
    assert np.allclose(borrowed_logpdf(entry, x), stats.multivariate_t(mean, cov * (df - 2) / df, df=df).logpdf(x))
    assert np.allclose(borrowed_logpdf({**entry, "tail_df": None}, x), stats.multivariate_normal(mean, cov).logpdf(x))
    _, frame = synthetic_truth
    one = frame[(frame["family"] == "fam0") & (frame["params"] == frame["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")

    def mu_distribution(borrow):
        return type(build_model(data, ModelSpec.from_data(data, borrow=borrow))["mu"].owner.op).__name__

    assert mu_distribution(prior).startswith("MvStudentT")
    assert mu_distribution(dataclasses.replace(prior, tail_df=None)).startswith("MvNormal")


def test_heavy_discrepancy_tails_travel_from_the_prior_to_the_borrowed_prediction(population_prior, synthetic_truth,
                                                                                    tmp_path):
    """A prior whose calibration chose heavy discrepancy tails keeps them through save/load; a family that borrows
    it predicts with them (its posterior holds them, its notes and the prior's summary say so), and its interval
    far beyond its data is wider at 90% against 50% than a normal discrepancy's."""
    import dataclasses

    prior = dataclasses.replace(population_prior[0], kappa=np.full((len(population_prior[0].sigma_seed), 3), 0.3),
                                calibration=[{"spread_scale": 1.0, "kappa": 0.3, "tails": 0.5, "crps": 0.1,
                                              "median_are": 0.02, "cover90": 0.9, "width90": 0.1, "tasks": 4,
                                              "groups": 2, "chosen": True}])
    heavy = dataclasses.replace(prior, discrepancy_tails=0.5)
    assert bs.PopulationPrior.load(heavy.save(tmp_path / "heavy.nc")).discrepancy_tails == 0.5
    assert "variance-gamma, shape 0.5" in heavy.summary()
    _, frame = synthetic_truth
    one = frame[(frame["family"] == "fam0") & (frame["params"] == frame["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    ratios = {}
    for name, p in (("normal", prior), ("heavy", heavy)):
        fit = bs.fit(data, sampler=dict(draws=200, tune=200, chains=2, random_seed=1), borrow=p)
        pred = fit.predict("newfam", 1e11, 2e12, keep_draws=True)
        log_run = np.log(pred["run_loss"].to_numpy()[:, 0])
        q = np.quantile(log_run, [0.05, 0.25, 0.75, 0.95])
        ratios[name] = (q[3] - q[0]) / (q[2] - q[1])
        assert ("discrepancy_tails" in fit.idata.posterior) == (name == "heavy")
        assert any("variance-gamma" in n for n in fit.notes()) == (name == "heavy")
    assert ratios["heavy"] > 1.15 * ratios["normal"], ratios


def test_population_choices_are_what_they_say(small_fit):
    """'families' draws are fitted families' own draws; 'blend' mixes them with the model's population at
    the Polya-urn weight 1/(F+1); an unknown choice is a PriorError."""
    from bayes_scaling.predict import posterior_arrays

    law = small_fit.law
    theta = posterior_arrays(small_fit.idata.posterior)["theta"]  # (sample, family, param)
    fitted = law.to_natural({p: theta[..., k] for k, p in enumerate(law.sampling)}, small_fit.spec.reference)
    fitted = np.stack([fitted[k] for k in law.natural], axis=-1).reshape(-1, len(law.natural))
    is_fitted = lambda nat: np.array([np.isclose(fitted, row, rtol=1e-9).all(axis=1).any() for row in nat])
    fam = bs.PopulationPrior.from_fit(small_fit, draws=400, population="families")
    model = bs.PopulationPrior.from_fit(small_fit, draws=400, population="model")
    blend = bs.PopulationPrior.from_fit(small_fit, draws=400)
    assert is_fitted(fam.natural).all() and not is_fitted(model.natural).any()
    n_fam = len(small_fit.spec.families)
    share_fresh = 1 - is_fitted(blend.natural).mean()
    assert abs(share_fresh - 1 / (n_fam + 1)) < 4 * np.sqrt(1 / (n_fam + 1) * n_fam / (n_fam + 1) / 400)
    assert "(blend)" in blend.source and "(families)" in fam.source
    with pytest.raises(PriorError, match="population must be one of"):
        bs.PopulationPrior.from_fit(small_fit, population="empirical")


def test_one_size_new_family_borrows(population_prior, synthetic_truth):
    _, path = population_prior
    fams, df = synthetic_truth
    one = df[(df["family"] == "fam0") & (df["params"] == df["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    fit = bs.fit(data, sampler=dict(draws=300, tune=300, chains=2, random_seed=2), borrow=path)
    notes = " ".join(fit.notes())
    assert "single model size" in notes and "borrowed population prior" in notes
    assert fit.extrapolation["mode"] == "borrowed"
    # the N-exponent is not identified by one size: its posterior stays about as wide as the borrowed prior
    prior_sd = np.sqrt(np.asarray(fit.spec.borrowed["cov"])[2, 2])
    post_sd = float(fit.idata.posterior["mu"].sel(param="log_alpha").std())
    assert post_sd > 0.5 * prior_sd
    big = df[(df["family"] == "fam0") & (df["params"] == df["params"].max())]
    p = fit.predict("newfam", big["params"].to_numpy(), big["tokens"].to_numpy(), interval=0.9)
    assert np.all(p["run_lower"] < p["run_upper"]) and np.all(np.isfinite(p["run_median"]))


def test_borrow_refuses_several_families_and_wrong_law(population_prior, synthetic_truth):
    _, path = population_prior
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    with pytest.raises(PriorError, match="one new family"):
        bs.fit(data, borrow=path)
    with pytest.raises(PriorError, match="borrow must be"):
        bs.fit(data.select_families(["fam0"]), borrow=3.0)


def test_cli_prior_and_borrow(small_fit, synthetic_truth, tmp_path):
    fit_path = small_fit.save(tmp_path / "pop.nc")
    prior_path = tmp_path / "prior.nc"
    cli = [sys.executable, "-m", "bayes_scaling.cli"]
    r = subprocess.run(cli + ["prior", str(fit_path), "--draws", "300", "--population", "model", "--no-calibrate",
                              "--out", str(prior_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "(model)" in bs.PopulationPrior.load(prior_path).source
    assert bs.PopulationPrior.load(prior_path).calibration is None  # as extracted
    again = subprocess.run(cli + ["prior", str(prior_path), "--no-calibrate", "--out", str(tmp_path / "again.nc")],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "is a population prior already" in again.stderr
    _, df = synthetic_truth
    csv = tmp_path / "new.csv"
    df[(df["family"] == "fam1") & (df["params"] == df["params"].min())].to_csv(csv, index=False)
    out = tmp_path / "new_fit.nc"
    r = subprocess.run(cli + ["fit", str(csv), "--family", "family", "--params", "params", "--tokens", "tokens",
                              "--loss", "loss", "--run", "run", "--draws", "200", "--tune", "200", "--chains", "2",
                              "--borrow", str(prior_path), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert bs.open(out).spec.borrowed is not None


def test_prior_data_conflict_is_flagged(population_prior, synthetic_truth):
    prior, path = population_prior
    _, df = synthetic_truth
    one = df[(df["family"] == "fam0") & (df["params"] == df["params"].min())]
    args = (one["params"].to_numpy(), one["tokens"].to_numpy())
    assert prior.conflict(*args, one["loss"].to_numpy())["p_value"] > 0.01
    # a loss on another scale (e.g. a span-corruption perplexity read as nats): 50x below the population
    far = prior.conflict(*args, one["loss"].to_numpy() / 50)
    assert far["p_value"] < 1e-3 and far["log_ratio"] < -3
    data = bs.ScalingData.from_frame(one.assign(family="other", loss=one["loss"] / 50), family="family",
                                     params="params", tokens="tokens", loss="loss", run="run")
    with pytest.warns(bs.errors.PriorDataConflictWarning, match="another quantity"):
        fit = bs.fit(data, sampler=dict(draws=100, tune=100, chains=2), borrow=path)
    assert any("prior-data conflict" in n for n in fit.notes())


def test_weakly_identified_borrowed_exponent_is_noted(population_prior, synthetic_truth):
    """A one-size family borrows its N-exponent; when fewer than two source families span half a decade of
    sizes, the fit records it and its notes say so. Sources that span enough, or a new family that does, pass."""
    import dataclasses

    from bayes_scaling.model.population_prior import MIN_EXPONENT_SPAN_DECADES

    prior, _ = population_prior
    assert min(prior.size_spans.values()) >= MIN_EXPONENT_SPAN_DECADES  # the synthetic families span enough
    assert prior.exponent_support(0.0) is None
    narrow = dataclasses.replace(prior, size_spans={f: (0.8 if i == 0 else 0.3)
                                                    for i, f in enumerate(sorted(prior.size_spans))})
    weak = narrow.exponent_support(0.0)
    assert weak["identifying"] == [sorted(prior.size_spans)[0]] and weak["new_span"] == 0.0
    assert narrow.exponent_support(0.6) is None  # the new family identifies its own exponent
    assert dataclasses.replace(prior, size_spans=None).exponent_support(0.0) is None  # unknown: no claim

    _, df = synthetic_truth
    one = df[(df["family"] == "fam0") & (df["params"] == df["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    fit = bs.fit(data, sampler=dict(draws=100, tune=100, chains=2), borrow=narrow)
    assert fit.extrapolation["weak_borrowed_exponent"]["identifying"] == weak["identifying"]
    assert any("weakly supported borrowed N-exponent" in n and "only 1 of the prior's source" in n
               for n in fit.notes())
    fit = bs.fit(data, sampler=dict(draws=100, tune=100, chains=2), borrow=prior)
    assert "weak_borrowed_exponent" not in fit.extrapolation
    assert not any("weakly supported" in n for n in fit.notes())


def test_ou_checkpoint_noise_is_borrowed(small_fit, synthetic_truth, tmp_path):
    """A population prior from a fit with OU checkpoint noise carries ou_length and ou_share, saves and loads
    them, and a new family's OU model takes them as its priors; without them the defaults stay."""
    import types

    import pymc as pm

    from bayes_scaling.model import ModelSpec, build_model
    from bayes_scaling.report.sections import model_section

    post = small_fit.idata.posterior
    rng = np.random.default_rng(3)
    shape = (post.sizes["chain"], post.sizes["draw"])
    ou_post = post.assign(ou_length=(("chain", "draw"), np.exp(rng.normal(np.log(1.3), 0.1, shape))),
                          ou_share=(("chain", "draw"), rng.beta(40, 10, shape)))
    ou_fit = types.SimpleNamespace(idata=types.SimpleNamespace(posterior=ou_post), law=small_fit.law,
                                   spec=small_fit.spec, data=small_fit.data)
    prior = bs.PopulationPrior.from_fit(ou_fit, draws=400)
    plain = bs.PopulationPrior.from_fit(small_fit, draws=400)
    assert plain.ou_length is None and "ou_length_lognormal" not in plain.noise_moments()
    back = bs.PopulationPrior.load(prior.save(tmp_path / "ou_prior.nc"))
    assert np.array_equal(back.ou_length, prior.ou_length) and np.array_equal(back.ou_share, prior.ou_share)
    assert "ou_length~1.3" in back.describe()
    moments = back.noise_moments()
    assert moments["ou_length_lognormal"] == pytest.approx([np.log(1.3), 0.1], abs=0.03)
    a, b = moments["ou_share_beta"]
    assert a / (a + b) == pytest.approx(0.8, abs=0.02)
    with pytest.raises(PriorError, match="both ou_length and ou_share"):
        bs.PopulationPrior(law=prior.law, natural=prior.natural, sigma_seed=prior.sigma_seed,
                           sigma_obs=prior.sigma_obs, kappa=prior.kappa, drift=prior.drift, ou_length=prior.ou_length)

    _, df = synthetic_truth
    one = df[(df["family"] == "fam0") & (df["params"] == df["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    for borrowed, median, said in ((back, 1.3, "borrowed too"), (plain, 0.3, "keep the default priors")):
        spec = ModelSpec.from_data(data, borrow=borrowed, checkpoint_noise="ou")
        length = pm.draw(build_model(data, spec)["ou_length"], draws=4000, random_seed=1)
        assert np.median(length) == pytest.approx(median, rel=0.1)  # the borrowed drift, or the default prior's
        text = model_section(types.SimpleNamespace(spec=spec, law=small_fit.law)).blocks[-1].text
        assert said in text
    share = pm.draw(build_model(data, ModelSpec.from_data(data, borrow=back, checkpoint_noise="ou"))["ou_share"],
                    draws=4000, random_seed=1)
    assert share.mean() == pytest.approx(0.8, abs=0.03)


@pytest.fixture(scope="module")
def mixture_prior(small_fit):
    return bs.PopulationPrior.from_fit(small_fit, draws=300, population="mixture")


def test_mixture_prior_keeps_its_components(mixture_prior, small_fit, tmp_path):
    """One component per fitted family (its own draws, a loss floor of the new family's own) plus the model's
    population, equal in size; the labels survive save/load; a moment-matched prior has no components."""
    from bayes_scaling.predict import posterior_arrays

    prior = mixture_prior
    comps = prior.components()
    assert list(comps) == [*small_fit.spec.families, "(population)"]
    assert {len(c.sigma_seed) for c in comps.values()} == {300}
    law = small_fit.law
    theta = posterior_arrays(small_fit.idata.posterior)["theta"][:, 1, :]  # fam1's draws
    own = law.to_natural({p: theta[:, k] for k, p in enumerate(law.sampling)}, small_fit.spec.reference)
    alpha = comps["fam1"].natural[:, law.natural.index("alpha")]
    assert np.isin(np.round(alpha, 12), np.round(own["alpha"], 12)).all()  # the family's exponents, exactly
    e = comps["fam1"].natural[:, law.natural.index("E")]
    assert not np.isin(np.round(e, 12), np.round(own["E"], 12)).any()  # its loss floor moved
    back = bs.PopulationPrior.load(prior.save(tmp_path / "mixture.nc"))
    assert np.array_equal(back.component, prior.component) and back.is_mixture
    with pytest.raises(PriorError, match="not a mixture"):
        bs.PopulationPrior.from_fit(small_fit, draws=100).components()


def test_mixture_borrowed_fit_finds_the_family_its_data_come_from(mixture_prior, synthetic_truth, tmp_path):
    """A new family whose single size is fam1's: the components are weighed by their evidence, fam1's wins,
    every importance-sampling estimate is reliable, and the averaged fit predicts, notes and saves like any."""
    _, df = synthetic_truth
    one = df[(df["family"] == "fam1") & (df["params"] == df["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    fit = bs.fit(data, sampler=dict(draws=300, tune=300, chains=2, random_seed=3), borrow=mixture_prior)
    table = fit.sampler_info["mixture"]
    assert set(table) == {"fam0", "fam1", "fam2", "(population)"}
    assert max(table, key=lambda n: table[n]["weight"]) == "fam1" and table["fam1"]["weight"] > 0.5
    assert all(row["khat"] < 0.7 for row in table.values())
    assert abs(sum(row["weight"] for row in table.values()) - 1) < 1e-9
    post = fit.idata.posterior
    # in the first component's shape; each component keeps its own draws, sampled until converged: from the first
    # check point (200) to twice the budget of 300 for a run on course to pass the checks
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, next(iter(table.values()))["draws"]) and "natural" in post
    assert all(200 <= row["draws"] <= 600 for row in table.values())
    assert list(fit.mixture_weights)[0] == "fam1" and "most like fam1" in " ".join(fit.notes())
    truth = df[(df["family"] == "fam1") & (df["params"] == df["params"].max())]
    pred = fit.predict("newfam", truth["params"], truth["tokens"])
    assert np.mean(np.abs(pred["run_median"].to_numpy() / truth["loss"].to_numpy() - 1)) < 0.05
    back = bs.open(fit.save(tmp_path / "mixture_fit.nc"))
    assert back.extrapolation["mixture_weights"] == fit.extrapolation["mixture_weights"]


def test_a_family_left_out_of_the_urn_is_not_borrowed_from(small_fit):
    """``without=``: the prior a family would borrow if it were new (how a calibration scores it)."""
    fams = list(small_fit.spec.families)
    mixture = bs.PopulationPrior.from_fit(small_fit, draws=200, population="mixture", without=fams[0])
    assert fams[0] not in mixture.component_names and set(fams[1:]) <= set(mixture.component_names)
    own = bs.PopulationPrior.from_fit(small_fit, draws=400, population="families")
    rest = bs.PopulationPrior.from_fit(small_fit, draws=400, population="families", without=fams[0])
    posterior = small_fit.idata.posterior["theta"].sel(family=fams[0])
    e = list(small_fit.law.sampling).index(small_fit.law.sampling_name("E"))
    log_e = np.log(rest.natural[:, list(rest.law_obj.natural).index("E")])
    own_e = posterior.isel(param=e).to_numpy().ravel()
    assert not np.isin(np.round(log_e, 10), np.round(own_e, 10)).any()  # none of fam0's own draws
    assert np.isin(np.round(np.log(own.natural[:, list(own.law_obj.natural).index("E")]), 10),
                   np.round(own_e, 10)).any()
    with pytest.raises(PriorError, match="not a family of this fit"):
        bs.PopulationPrior.from_fit(small_fit, without="nofam")


@pytest.mark.slow  # dozens of borrowed fits (about a minute)
def test_calibration_narrows_a_prior_too_wide_for_its_families(small_fit, synthetic_truth):
    """A prior whose spread is four times what the families show: the calibration on those families' own
    borrowed predictions (each from its smallest model, or two, to its largest) chooses a spread that undoes
    most of it, records every candidate, and a family that borrows the result says so in its notes."""
    import dataclasses

    from bayes_scaling.inference.borrow_calibration import (DISCREPANCY_SCALES, DISCREPANCY_TAILS, SPREAD_SCALES,
                                                            calibrate)

    prior = bs.PopulationPrior.from_fit(small_fit, draws=1000, population="families")
    log_x = np.log(prior.natural)
    wide = dataclasses.replace(prior, natural=np.exp(log_x.mean(0) + 4 * (log_x - log_x.mean(0))))
    tuned = calibrate(wide, small_fit.data, bs.fit, random_seed=0)
    # the t's scale about the mean is its covariance's times (df - 2) / df: in units of the families' own spread,
    # the calibrated prior's centre is at most 1.5 times as wide (the uncalibrated one: 4 times)
    centre = np.sqrt((tuned.tail_df - 2) / tuned.tail_df) if tuned.tail_df else 1.0
    assert 4 * tuned.spread_scale * centre <= 1.5, (tuned.spread_scale, tuned.tail_df)
    tried = {(r["spread_scale"], r["kappa"], r["tails"]) for r in tuned.calibration}
    tails = [None if np.isinf(a) else a for a in DISCREPANCY_TAILS]
    assert {(a, b, c if b else None) for a in SPREAD_SCALES for b in DISCREPANCY_SCALES for c in tails} == \
        {t for t in tried if t[0] in SPREAD_SCALES and t[1] in DISCREPANCY_SCALES}  # no tails without a discrepancy
    (best,) = [r for r in tuned.calibration if r["chosen"]]
    assert best["crps"] == min(r["crps"] for r in tuned.calibration)
    assert (best["spread_scale"], best["kappa"], best["tails"]) == (tuned.spread_scale, float(tuned.kappa[0, 0]),
                                                                    tuned.discrepancy_tails)
    assert "calibrated on" in tuned.summary()
    _, df = synthetic_truth
    one = df[(df["family"] == "fam0") & (df["params"] == df["params"].min())].assign(family="newfam")
    data = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
    notes = bs.fit(data, sampler=dict(draws=100, tune=100, chains=2), borrow=tuned).notes()
    assert any(f"x{tuned.spread_scale:g} of its source population" in n and "were calibrated" in n for n in notes)
    one_size = small_fit.data.subset(small_fit.data.frame["params"] == small_fit.data.frame["params"].min(),
                                     name="smallest", reason="one size per family")
    with pytest.raises(PriorError, match="no source family has two model sizes"):  # nothing to score
        calibrate(wide, one_size, bs.fit)




def test_calibration_grid_grows_until_it_brackets_the_best_candidate():
    """The candidates' grid is extended past its upper edge while the edge scores best: to a minimum beyond
    it (a wider candidate then scores worse), or to the limit; an interior minimum leaves the grid as it is."""
    from bayes_scaling.inference.borrow_calibration import (DISCREPANCY_LIMIT, DISCREPANCY_SCALES, SPREAD_LIMIT,
                                                            SPREAD_SCALES, bracketed_minimum)

    def bowl(spread0, kappa0, tails0=1.0):
        return lambda s, k, a: (np.log(s / spread0)) ** 2 + (k - kappa0) ** 2 + 0.01 * (a != tails0)

    s, k, a, spreads, kappas = bracketed_minimum(bowl(0.27, 0.1))
    assert (s, k, a) == (0.25, 0.1, 1.0) and spreads == list(SPREAD_SCALES) and kappas == list(DISCREPANCY_SCALES)
    s, k, a, spreads, kappas = bracketed_minimum(bowl(2.5, 0.7, np.inf))
    assert s in (1.96, 2.74) and spreads[-1] > s and k in (0.56, 0.78) and kappas[-1] > k and np.isinf(a)
    s, k, _, spreads, kappas = bracketed_minimum(bowl(50.0, 9.0))
    assert s == spreads[-1] <= SPREAD_LIMIT < s * 1.4 and k == kappas[-1] <= DISCREPANCY_LIMIT < k * 1.4
