"""The published prior: bundled zoos, a level-free prior, partial laws, the shipped file and its command."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayes_scaling as bs
from bayes_scaling.data.zoos import ZOOS, load_zoo, load_zoos, write_bundled_zoos
from bayes_scaling.errors import PriorError
from bayes_scaling.laws import CHINCHILLA, COMPUTE, DATA_CONSTRAINED
from bayes_scaling.model.population_prior import FREE_LEVEL_SD, PopulationPrior, published_prior_path
from bayes_scaling.model.priors import Priors

REF = {"params": 1e8, "tokens": 2e9, "flops": 1.2e18, "unique_tokens": 2e9}


def _prior(n=2000, seed=0, free_level=False):
    """Draws of Chinchilla parameters around E 1.8, A 400, alpha 0.34, B 400, beta 0.28."""
    rng = np.random.default_rng(seed)
    nat = np.column_stack([1.8 * np.exp(0.05 * rng.standard_normal(n)), 400 * np.exp(0.2 * rng.standard_normal(n)),
                           0.34 + 0.02 * rng.standard_normal(n), 400 * np.exp(0.2 * rng.standard_normal(n)),
                           0.28 + 0.02 * rng.standard_normal(n)])
    return PopulationPrior(law="chinchilla", natural=nat, sigma_seed=np.full(n, 0.01), sigma_obs=np.full(n, 0.01),
                           kappa=np.full(n, 0.02), drift=np.zeros(n), source="test", free_level=free_level)


def _observed(scale=1.0, params=1e8):
    tokens = np.geomspace(2e9, 2e10, 8)
    params = np.full_like(tokens, params)
    loss = scale * (1.8 + 400 * params**-0.34 + 400 * tokens**-0.28)
    return {"params": params, "tokens": tokens, "flops": 6 * params * tokens, "loss": loss}


# ------------------------------------------------------------------ zoos
def test_every_zoo_loads_from_the_package_with_its_licence():
    for name, zoo in ZOOS.items():
        data = load_zoo(name)
        assert all(f.startswith(name + ":") for f in data.families) and len(data) > 0
        assert zoo.licence in ("MIT", "Apache-2.0")
        assert (zoo.path.parent / "LICENSE").exists() and (zoo.path.parent / "SOURCE.md").exists()
    pooled = load_zoos()
    assert len(pooled.families) == sum(len(load_zoo(n).families) for n in ZOOS)
    with pytest.raises(KeyError, match="no bundled zoo"):
        load_zoo("kempner")  # no licence stated: not redistributed


def test_bundled_zoo_files_are_what_the_published_data_give(shared_root, tmp_path, monkeypatch):
    """The bundled files are remade, unchanged, from ../shared/data by write_bundled_zoos."""
    import bayes_scaling.data.zoos as zoos

    shipped = {n: pd.read_csv(z.path) for n, z in ZOOS.items() if z.make is not None}
    moved = {n: zoos.Zoo(**{**z.__dict__, "folder": str(tmp_path / z.folder)}) for n, z in ZOOS.items()}
    monkeypatch.setattr(zoos, "ZOOS", moved)
    monkeypatch.setattr(zoos.Zoo, "path", property(lambda self: __import__("pathlib").Path(self.folder) / self.file))
    written = write_bundled_zoos(shared_root)
    assert len(written) == len(shipped)
    for name, frame in shipped.items():
        pd.testing.assert_frame_equal(pd.read_csv(moved[name].path), frame)


# ------------------------------------------------------------------ level-free priors
def test_a_level_free_prior_takes_the_level_from_the_data():
    """Data 3x the prior's losses move the prior's mean by log 3 along the level direction, and leave that
    direction FREE_LEVEL_SD wider; a prior that carries the level does neither."""
    law, priors = CHINCHILLA, Priors.default(CHINCHILLA, 3.0)
    v = law.level_vector
    at = lambda prior, scale: prior.as_spec_entry(REF, law=law, priors=priors, observed=_observed(scale))
    free, free3 = at(_prior(free_level=True), 1.0), at(_prior(free_level=True), 3.0)
    shift = np.asarray(free3["mean"]) - np.asarray(free["mean"])
    assert np.allclose(shift, np.log(3.0) * v, atol=1e-6)
    carried = at(_prior(), 3.0)
    assert np.allclose(carried["mean"], at(_prior(), 1.0)["mean"])
    var_along = lambda e: v @ np.asarray(e["cov"]) @ v / (v @ v) ** 2
    assert var_along(free) - var_along(carried) > 0.5 * FREE_LEVEL_SD**2
    assert free["free_level"] and not carried["free_level"] and free["not_supplied"] == []
    with pytest.raises(PriorError, match="observed="):
        _prior(free_level=True).as_spec_entry(REF)


def test_a_level_free_conflict_is_about_the_trend_not_the_level():
    prior = _prior(free_level=True)
    ten_times = _observed(10.0)
    assert prior.conflict(ten_times["params"], ten_times["tokens"], ten_times["loss"])["p_value"] > 0.01
    assert _prior().conflict(ten_times["params"], ten_times["tokens"], ten_times["loss"])["p_value"] < 1e-3
    flat = _observed(1.0)
    flat["loss"] = np.full_like(flat["loss"], 3.0)  # no decrease with compute at all
    found = prior.conflict(flat["params"], flat["tokens"], flat["loss"])
    assert found["p_value"] < 1e-3 and found["statistic"] == "trend" and found["slope"] > 0
    one = _observed(1.0)
    single = prior.conflict(one["params"][:1], one["tokens"][:1], one["loss"][:1])
    assert single["p_value"] == 1.0 and not single["checked"]


def test_the_spread_scale_narrows_the_borrowed_parameters_about_their_mean():
    from dataclasses import replace

    law, priors = CHINCHILLA, Priors.default(CHINCHILLA, 3.0)
    full = _prior().as_spec_entry(REF, law=law, priors=priors)
    half = replace(_prior(), spread_scale=0.5).as_spec_entry(REF, law=law, priors=priors)
    assert np.allclose(half["mean"], full["mean"]) and np.allclose(np.asarray(half["cov"]), 0.25 * np.asarray(full["cov"]))


def test_crps_matches_the_normal_closed_form_and_prefers_calibrated_sharp_draws():
    from bayes_scaling.inference.borrow_calibration import crps

    rng = np.random.default_rng(0)
    z = rng.standard_normal((40000, 1))
    assert abs(crps(z, np.array([0.0]))[0] - (2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi))) < 0.01
    y = rng.standard_normal(200)
    calibrated = crps(rng.standard_normal((4000, 200)), y).mean()
    assert calibrated < crps(5 * rng.standard_normal((4000, 200)), y).mean()  # too wide
    assert calibrated < crps(0.2 * rng.standard_normal((4000, 200)), y).mean()  # too narrow


# ------------------------------------------------------------------ a prior for another law
def test_a_prior_supplies_the_parameters_another_law_declares_alike():
    prior = _prior()
    assert prior.supplies(DATA_CONSTRAINED) == ["E", "A", "alpha", "B", "beta"]
    assert prior.supplies(COMPUTE) == ["E"]  # compute's A and alpha are of compute, not of size
    priors = Priors.default(DATA_CONSTRAINED, 3.0)
    entry = prior.as_spec_entry(REF, law=DATA_CONSTRAINED, priors=priors)
    assert entry["not_supplied"] == ["R_D", "R_N"] and len(entry["mean"]) == len(DATA_CONSTRAINED.parameters)
    assert entry["spread_scale"] == 1.0
    i = DATA_CONSTRAINED.sampling.index("log_R_D")
    assert abs(entry["mean"][i] - priors.mu["log_R_D"]["mu"]) < 0.15
    kaplan = bs.laws.Law("kaplan_test", "((N_c / params)**(a_N / a_D) + D_c / tokens)**a_D", parameters=(
        bs.laws.Parameter("N_c", loc=20.0, scale=2.0), bs.laws.Parameter("D_c", loc=20.0, scale=2.0),
        bs.laws.Parameter("a_N", loc=-1.0, scale=0.5), bs.laws.Parameter("a_D", loc=-1.0, scale=0.5)))
    with pytest.raises(PriorError, match="supplies none"):
        prior.as_spec_entry(REF, law=kaplan, priors=Priors.default(kaplan, 3.0))


# ------------------------------------------------------------------ the shipped prior
def test_the_published_prior_is_shipped_small_versioned_and_described():
    path = published_prior_path()
    assert path.exists() and path.stat().st_size < 1_000_000
    prior = bs.PopulationPrior.coerce("published")
    assert prior.free_level and prior.version and prior.law == "chinchilla"
    tab = prior.provenance_table()
    assert set(tab["zoo"]) == set(ZOOS) and set(tab["licence"]) <= {"MIT", "Apache-2.0"}
    assert len(tab) == sum(len(load_zoo(n).families) for n in ZOOS)
    text = prior.summary()
    assert "not carried" in text.lower() and "olmo_ladder" in text and prior.version in text


@pytest.mark.slow
def test_cli_describes_the_published_prior_and_refuses_mixed_flags(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "bayes_scaling.cli", "prior", *args],
                                       capture_output=True, text=True)
    out = run("published", "--describe")
    assert out.returncode == 0, out.stderr
    assert "source families" in out.stdout and "porian" in out.stdout and "Apache-2.0" in out.stdout
    bad = run("published", "--without", "porian", "--out", str(tmp_path / "p.nc"))
    assert bad.returncode == 2 and "--rebuild" in bad.stderr
    bad = run("published", "--rebuild", "--without", "kempner", "--out", str(tmp_path / "p.nc"))
    assert bad.returncode == 2 and "no bundled zoo" in bad.stderr
    assert run("published").returncode == 2


def test_one_small_model_borrows_the_published_prior(shared_root):
    """Kempner's corpora are in no bundled zoo: one 20M-ish model of one corpus, on its own scale of loss,
    borrows the published prior, takes its level from its own data, and its notes say so."""
    data = bs.data.load_kempner()
    df = data.frame[data.frame["family"] == data.families[0]]
    small = df[df["params"] == df["params"].min()]
    one = bs.ScalingData.from_frame(small, family="family", params="params", tokens="tokens", loss="loss", run="run")
    fit = bs.fit(one, sampler=dict(draws=300, tune=300, chains=2, random_seed=1), borrow="published")
    notes = " ".join(fit.notes())
    assert "loss level is this family's own" in notes and "published" in fit.spec.borrowed["source"]
    big = df[df["params"] == df["params"].max()]
    pred = fit.predict(data.families[0], big["params"].to_numpy(), big["tokens"].to_numpy())
    rel = np.abs(pred["run_median"].to_numpy() / big["loss"].to_numpy() - 1)
    assert np.median(rel) < 0.2  # the guide's "still useful" bound: a level from nowhere would miss by far more
    from bayes_scaling.report.document import Table
    from bayes_scaling.report.sections import model_section

    tables = [b for b in model_section(fit).blocks if isinstance(b, Table)]
    assert any(set(t.frame["zoo"]) == set(ZOOS) for t in tables if "zoo" in t.frame)  # the provenance, in the report


@pytest.mark.slow
def test_rebuilding_with_the_same_seed_gives_the_shipped_prior():
    """The shipped file is what build_published_prior makes: its quantiles agree with a rebuild's within Monte
    Carlo error (4 standard errors at an effective sample size of 400: 0.35 sd at the median, 0.6 sd at the
    5% and 95% quantiles), and its provenance is the same."""
    from bayes_scaling.priors.published import build_published_prior, prior_summary

    shipped = bs.published_prior()
    rebuilt = build_published_prior(random_seed=0)
    a, b = prior_summary(shipped), prior_summary(rebuilt)
    logs = {f"log_{k}": np.log(shipped.natural[:, i]) for i, k in enumerate(shipped.law_obj.natural)}
    logs["log_sigma_total"] = np.log(np.hypot(shipped.sigma_seed, shipped.sigma_obs))
    for name, x in logs.items():
        sd = x.std()
        lo, mid, hi = np.subtract(a[name], b[name])
        assert abs(mid) <= 0.35 * sd and max(abs(lo), abs(hi)) <= 0.6 * sd, (name, a[name], b[name], sd)
    assert rebuilt.provenance == shipped.provenance and rebuilt.version == shipped.version


@pytest.mark.slow
def test_the_data_constrained_law_borrows_what_the_published_prior_carries(shared_root):
    """Repeated-data runs of one size fit the data-constrained law with the published (Chinchilla) prior:
    E, A, alpha, B and beta come from it, R_D and R_N from the law's own priors, and the notes say so."""
    data = bs.data.load_datablations(family_by="data")
    df = data.frame[(data.frame["family"] == "c4") & (data.frame["params"] == data.frame["params"].min())]
    one = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                    unique_tokens="unique_tokens")
    one = bs.data.thin_checkpoints(one, 6)
    fit = bs.fit(one, "data_constrained", dict(draws=200, tune=300, chains=2, random_seed=0), borrow="published")
    assert fit.spec.borrowed["not_supplied"] == ["R_D", "R_N"]
    assert any("does not carry R_D, R_N" in n for n in fit.notes())


def test_a_family_with_several_sizes_is_told_the_published_prior_was_narrowed(synthetic_truth):
    """The published prior's spread is calibrated on one or two sizes; a family with more is told so."""
    _, df = synthetic_truth
    fam = df[df["family"] == "fam0"]
    fam = fam[fam["params"].isin(sorted(fam["params"].unique())[:3])]
    data = bs.ScalingData.from_frame(fam, family="family", params="params", tokens="tokens", loss="loss", run="run")
    prior = bs.published_prior()
    assert prior.spread_scale < 1  # the shipped calibration narrowed it
    fit = bs.fit(data, sampler=dict(draws=200, tune=200, chains=2, random_seed=0), borrow=prior)
    assert any("narrowed" in n and "3" in n for n in fit.notes())
