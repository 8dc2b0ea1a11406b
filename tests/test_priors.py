"""Priors as values: each prior is one declared object, which the model builds from, the discrepancy and model
averaging evaluate, the fit file stores and the docs print."""

from __future__ import annotations

import copy
import math
import pickle
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

import bayes_scaling as bs
from bayes_scaling.errors import PriorError
from bayes_scaling.inference.extrapolation import _log_density, prior_draws
from bayes_scaling.inference.initial import initial_values
from bayes_scaling.laws import CHINCHILLA
from bayes_scaling.model import ModelSpec, Prior, Priors, build_model


# densities and prior draws evaluated at a few points (conftest.python_linker)
pytestmark = pytest.mark.usefixtures("python_linker")

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_a_prior_is_a_value_printed_as_its_declaration():
    p = Prior("Gamma", alpha=2, beta=5)
    assert str(p) == repr(p) == "Gamma(alpha=2, beta=5)"
    assert p == Prior("Gamma", alpha=2.0, beta=5.0) and hash(p) == hash(Prior("Gamma", alpha=2.0, beta=5.0))
    assert p != Prior("Gamma", alpha=2, beta=4)
    assert p["beta"] == 5.0 and p.scale == pytest.approx(0.4)  # no sigma: the scale is the mean
    assert Prior("HalfNormal", sigma=0.15).scale == 0.15
    with pytest.raises(AttributeError, match="value"):
        p.dist = "Normal"
    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(p) == p
    assert Prior.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("build, message", [
    (lambda: Prior("Cauchy", alpha=0, beta=1), "unknown prior family 'Cauchy'; use one of Normal"),
    (lambda: Prior("Normal", mu=0), "Normal takes the parameters mu, sigma; got mu"),
    (lambda: Prior("Normal", mu=0, sigma=-1), r"Normal\(sigma=-1\): must be a positive finite number"),
    (lambda: Prior("Normal", mu=math.inf, sigma=1), r"Normal\(mu=inf\): must be a finite number"),
    (lambda: Prior("Beta", alpha="two", beta=2), "a parameter must be a number"),
    (lambda: Prior("Uniform", lower=1, upper=0), "lower must be below upper"),
])
def test_an_impossible_prior_says_what_is_wrong(build, message):
    with pytest.raises(PriorError, match=message):
        build()


def _defaults() -> Priors:
    return Priors.default(CHINCHILLA, 3.0)


@pytest.mark.parametrize("change, message", [
    (lambda p: setattr(p, "sigma_total", 0.05), r"priors.sigma_total = 0.05 is not a Prior"),
    (lambda p: setattr(p, "seed_share", Prior("HalfNormal", sigma=0.5)),
     r"priors.seed_share = HalfNormal\(sigma=0.5\) takes values in \(0, inf\); the variable lies in \(0, 1\)"),
    (lambda p: p.tau.__setitem__("log_E", Prior("Normal", mu=0, sigma=0.4)), r"priors.tau\['log_E'\]"),
    (lambda p: p.tau.__setitem__("log_E", Prior("Exponential", lam=2.5)), "must be of one family"),
    (lambda p: p.mu.update({k: Prior("StudentT", nu=3, mu=0, sigma=1) for k in p.mu}), "population means are Normal"),
    (lambda p: setattr(p, "family_correlation", Prior("Beta", alpha=2, beta=2)), "LKJ"),
    (lambda p: setattr(p, "kappa", Prior("LKJ", eta=2)), "correlation matrix's prior"),
    (lambda p: p.mu.pop("log_E"), "exactly the law's sampling parameters"),
    (lambda p: setattr(p, "treatment", {"gamma": Prior("Normal", mu=0, sigma=0.1)}), "not sampling parameters"),
])
def test_priors_that_do_not_fit_their_variable_are_refused(change, message):
    p = _defaults()
    change(p)
    with pytest.raises(PriorError, match=message):
        p.validate(CHINCHILLA)


def test_the_defaults_of_a_law_whose_parameters_no_treatment_shifts_validate():
    kaplan = bs.laws.Law("kaplan_priors", "((N_c / params)**(a_N / a_D) + D_c / tokens)**a_D", parameters=(
        bs.laws.Parameter("N_c", loc=20.0, scale=2.0), bs.laws.Parameter("D_c", loc=20.0, scale=2.0),
        bs.laws.Parameter("a_N", loc=-2.6, scale=0.5), bs.laws.Parameter("a_D", loc=-2.6, scale=0.5)))
    pri = Priors.default(kaplan, 3.0).validate(kaplan)
    assert pri.treatment is None and pri.treatment_priors(kaplan) == {}
    assert not any(line.startswith("treatment") for line in pri.describe())


def test_the_model_builds_each_variable_from_its_declared_prior(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                     seed="seed")
    pri = _defaults()
    pri.sigma_total = Prior("Exponential", lam=30.0)
    pri.seed_share = Prior("Uniform", lower=0.1, upper=0.9)
    pri.tau_level = Prior("LogNormal", mu=np.log(0.2), sigma=0.5)
    pri.tau = {k: Prior("HalfNormal", sigma=0.3) for k in pri.tau}
    pri.nu = Prior("Exponential", lam=0.1)
    model = build_model(data, ModelSpec.from_data(data, priors=pri, likelihood="student_t"))
    for name, value in (("sigma_total", 0.03), ("seed_share", 0.4), ("tau_level", 0.25), ("nu", 7.0)):
        got = pm.logp(model[name], value).eval()
        assert got == pytest.approx(float(getattr(pri, name).logpdf(value)), rel=1e-6), name
    # the family spread is the LKJ covariance's sd_dist: a changed tau prior changes the model's density
    gamma = copy.deepcopy(pri)
    gamma.tau = _defaults().tau
    other = build_model(data, ModelSpec.from_data(data, priors=gamma, likelihood="student_t"))
    point = other.initial_point()
    assert model.compile_logp()(point) != pytest.approx(other.compile_logp()(point))
    # the fit starts inside each declared prior's support
    pri.seed_share = Prior("Uniform", lower=0.6, upper=0.9)
    start = initial_values(data, ModelSpec.from_data(data, priors=pri))
    assert 0.6 < start["seed_share"] < 0.9 and start["sigma_total"] == 0.01


def test_the_discrepancy_reads_its_declared_priors():
    pri = Priors(mu={}, tau={}, kappa=Prior("Exponential", lam=10.0), growth=Prior("Gamma", alpha=20, beta=20))
    d = prior_draws(pri, 20000, np.random.default_rng(0))
    assert np.mean(d["kappa"]) == pytest.approx(0.1, rel=0.05)
    assert np.mean(d["growth"]) == pytest.approx(1.0, rel=0.02) and np.std(d["growth"]) < 0.3
    # with nothing held out the density is the priors' (with the Jacobians of log kappa, log growth, logit shared)
    phi = np.zeros((2, 8))
    phi[1, :3] = np.log([0.05, 0.2, 0.1])
    phi[1, 6], phi[1, 7] = np.log(1.3), 0.4
    lp = _log_density(phi, [], pri)
    kappa, growth, shared = np.exp(phi[:, :3]), np.exp(phi[:, 6]), 1 / (1 + np.exp(-phi[:, 7]))
    expect = (pri.kappa.logpdf_unconstrained(kappa).sum(1) + pri.drift.logpdf(phi[:, 3:6]).sum(1)
              + pri.growth.logpdf_unconstrained(growth) + pri.shared.logpdf_unconstrained(shared))
    assert lp[1] - lp[0] == pytest.approx(expect[1] - expect[0])


def test_priors_round_trip_through_the_fit_file_and_read_a_file_that_wrote_them_as_numbers(synthetic_truth):
    _, df = synthetic_truth
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                     seed="seed")
    pri = _defaults()
    pri.ou_share = Prior("Beta", alpha=3, beta=1.5)
    spec = ModelSpec.from_data(data, priors=pri)
    assert ModelSpec.from_json(spec.to_json()).priors == pri
    numbers = {"mu_loc": {k: p["mu"] for k, p in pri.mu.items()}, "mu_scale": {k: p["sigma"] for k, p in pri.mu.items()},
               "tau_scale": {k: p.scale for k, p in pri.tau.items()}, "treatment_scale": {
                   k: (pri.treatment[k]["sigma"] if k in pri.treatment else 0.0) for k in pri.mu},
               "ou_share_a": 3.0, "ou_share_b": 1.5, "notes": pri.notes}
    old = Priors.from_dict(numbers)
    for name in ("mu", "treatment", "family_correlation", "tau_level", "sigma_total", "seed_share", "kappa", "drift",
                 "growth", "shared", "nu", "ou_length", "ou_share"):
        assert getattr(old, name) == getattr(pri, name), name
    assert {k: p.scale for k, p in old.tau.items()} == pytest.approx({k: p.scale for k, p in pri.tau.items()})


def test_the_docs_print_the_default_priors():
    """docs/concepts.md lists the default priors as ``print(Priors.default(CHINCHILLA, 3.0))`` prints them."""
    assert str(_defaults()) in (DOCS / "concepts.md").read_text()
