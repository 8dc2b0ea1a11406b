import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from conftest import KAPLAN

import bayes_scaling as bs
from bayes_scaling.errors import LawError, MissingColumnError
from bayes_scaling.laws import (CHINCHILLA, COMPUTE, DATA_CONSTRAINED, Expression, Law, Parameter, reference_scales,
                                standardized_inputs)
from bayes_scaling.model.likelihood import run_marginal_loglik

REF = {"params": 3e8, "tokens": 6e9, "flops": 1e19}
NAT = {"E": 1.8, "A": 480.0, "alpha": 0.35, "B": 2000.0, "beta": 0.37}


def test_natural_sampling_round_trip():
    th = CHINCHILLA.from_natural(NAT, REF)
    back = CHINCHILLA.to_natural(th, REF)
    for k in NAT:
        assert back[k] == pytest.approx(NAT[k], rel=1e-12)


def test_anchored_law_equals_natural_law():
    th = CHINCHILLA.from_natural(NAT, REF)
    n = np.array([1e8, 7e9, 7e10])
    d = np.array([2e9, 2e11, 2e12])
    z = standardized_inputs(CHINCHILLA, {"params": n, "tokens": d}, REF)
    assert np.allclose(CHINCHILLA.loss(th, z), CHINCHILLA.natural_loss(NAT, {"params": n, "tokens": d}))
    # Epoch's values at Chinchilla's 70B / 1.4T
    assert CHINCHILLA.natural_loss(NAT, {"params": 70e9, "tokens": 1.4e12}) == pytest.approx(
        1.8 + 480 * 70e9**-0.35 + 2000 * 1.4e12**-0.37)


@pytest.mark.parametrize("law", [CHINCHILLA, COMPUTE])
def test_numpy_and_pytensor_agree(law):
    rng = np.random.default_rng(0)
    theta = {p: rng.normal(-0.5, 0.3, size=7) for p in law.sampling}
    z = {inp: rng.normal(0, 2, size=7) for inp in law.inputs}
    sym_t = {p: pt.dvector(p) for p in law.sampling}
    sym_z = {inp: pt.dvector("z_" + inp) for inp in law.inputs}
    f = pytensor.function(list(sym_t.values()) + list(sym_z.values()), law.log_loss(sym_t, sym_z, xp=pt))
    got = f(*theta.values(), *z.values())
    assert np.allclose(got, law.log_loss(theta, z))


def test_monotone_decreasing_in_n_and_d():
    th = CHINCHILLA.from_natural(NAT, REF)
    n = np.geomspace(1e7, 1e12, 50)
    z = standardized_inputs(CHINCHILLA, {"params": n, "tokens": np.full(50, 1e10)}, REF)
    assert np.all(np.diff(CHINCHILLA.loss(th, z)) < 0)
    z = standardized_inputs(CHINCHILLA, {"params": np.full(50, 1e9), "tokens": n}, REF)
    assert np.all(np.diff(CHINCHILLA.loss(th, z)) < 0)
    # limit: L -> E as N, D -> infinity
    z = standardized_inputs(CHINCHILLA, {"params": np.array([1e30]), "tokens": np.array([1e30])}, REF)
    assert CHINCHILLA.loss(th, z)[0] == pytest.approx(NAT["E"], rel=1e-6)


def test_reference_scale_is_geometric_mean():
    ref = reference_scales(CHINCHILLA, {"params": np.array([1e8, 1e10]), "tokens": np.array([1e9, 1e11])})
    assert ref["params"] == pytest.approx(1e9) and ref["tokens"] == pytest.approx(1e10)


def test_marginal_run_likelihood_matches_multivariate_normal():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.02, size=6)
    ss, so = 0.015, 0.007
    cov = so**2 * np.eye(6) + ss**2 * np.ones((6, 6))
    expected = multivariate_normal(np.zeros(6), cov).logpdf(r)
    got = run_marginal_loglik(r.sum(), (r**2).sum(), 6.0, ss, so)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n", [1, 6])
def test_robust_run_likelihood_matches_multivariate_t(n):
    from scipy.stats import multivariate_t

    rng = np.random.default_rng(4)
    r = rng.normal(0, 0.02, size=n)
    ss, so, nu = 0.015, 0.007, 3.5
    shape = so**2 * np.eye(n) + ss**2 * np.ones((n, n))
    expected = multivariate_t(np.zeros(n), shape, df=nu).logpdf(r)
    got = run_marginal_loglik(r.sum(), (r**2).sum(), float(n), ss, so, nu=nu)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("law", [CHINCHILLA, COMPUTE])
def test_level_vector_multiplies_the_loss_at_every_scale(law):
    th = law.from_natural({k: NAT[k] for k in law.natural}, REF)
    shifted = {p: th[p] + 0.3 * v for p, v in zip(law.sampling, law.level_vector)}
    cols = {"params": np.geomspace(1e7, 1e11, 5), "tokens": np.geomspace(1e8, 1e13, 5), "flops": np.geomspace(1e16, 1e24, 5)}
    z = standardized_inputs(law, cols, REF)
    assert np.allclose(law.log_loss(shifted, z) - law.log_loss(th, z), 0.3)
    assert law.level_vector[list(law.sampling).index("log_alpha")] == 0


# ---------------------------------------------------------------------------- the law interface

KAPLAN_NAT = {"N_c": 8.8e13, "alpha_N": 0.076, "D_c": 5.4e13, "alpha_D": 0.095}


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "E.real", "E[0]", "A if E else B", "lambda: E",
                                  "open('f')", "E > A", "'text'", "exp(E, A)", "x = 1", "exp", "E +", "np.exp(E)"])
def test_a_formula_is_arithmetic_only(text):
    with pytest.raises(LawError):
        Expression.parse(text)


def test_a_formula_evaluates_its_definitions_in_order():
    e = Expression.parse("u = a * 2\nv = u + b; exp(v) - minimum(a, b)")
    assert e.names == {"a", "b"}
    assert e.evaluate({"a": 1.0, "b": 3.0}, np) == pytest.approx(np.exp(5.0) - 1.0)


def test_the_built_in_laws_are_instances_of_the_interface():
    assert CHINCHILLA.terms == (("A", "alpha", "params"), ("B", "beta", "tokens"))
    assert CHINCHILLA.irreducible == "E" and COMPUTE.terms == (("A", "alpha", "flops"),)
    assert DATA_CONSTRAINED.terms == () and DATA_CONSTRAINED.irreducible == "E"
    assert DATA_CONSTRAINED.inputs == ("params", "tokens", "unique_tokens")
    assert list(CHINCHILLA.level_vector) == [1, 1, 0, 1, 0]


def test_chinchilla_rewritten_by_a_user_is_the_same_law():
    mine = Law("my_chinchilla", "E + A / params**alpha + B / tokens**beta", CHINCHILLA.parameters)
    assert mine.terms == CHINCHILLA.terms and mine.sampling == CHINCHILLA.sampling
    th = CHINCHILLA.from_natural(NAT, REF)
    z = standardized_inputs(CHINCHILLA, {"params": np.array([1e8, 7e9]), "tokens": np.array([2e9, 2e12])}, REF)
    assert np.array_equal(mine.log_loss(th, z), CHINCHILLA.log_loss(th, z))


@pytest.mark.parametrize("kwargs, words", [
    (dict(formula="E + A * params**-alpha + C", parameters=(Parameter("E"), Parameter("A"), Parameter("alpha"))),
     "neither declared parameters"),
    (dict(formula="E + A * params**-alpha", parameters=(Parameter("E"), Parameter("A"), Parameter("alpha"),
                                                         Parameter("unused"))), "does not use"),
    (dict(formula="E + A * params**-alpha", parameters=(Parameter("E"), Parameter("A", anchor=("tokens", "alpha")),
                                                         Parameter("alpha"))), "does not read"),
    (dict(formula="E + A * params**-alpha", parameters=(Parameter("E"), Parameter("A", anchor=("params", "B")),
                                                         Parameter("alpha"))), "declared parameter"),
    (dict(formula="E + A * params**-alpha", parameters=(Parameter("E"), Parameter("A"), Parameter("alpha")),
          irreducible="A2"), "irreducible"),
])
def test_a_law_that_cannot_be_built_says_why(kwargs, words):
    with pytest.raises(LawError, match=words):
        Law(name="bad", **kwargs)


def test_a_parameter_declaration_is_checked():
    with pytest.raises(LawError, match="loc"):
        Parameter("x", loc="log(params)")
    with pytest.raises(LawError, match="transform"):
        Parameter("x", transform="logit")
    with pytest.raises(LawError, match="scale"):
        Parameter("x", scale=0.0)


@pytest.mark.parametrize("law, nat, ref", [
    (KAPLAN, KAPLAN_NAT, REF),
    (DATA_CONSTRAINED, {**NAT, "R_D": 15.4, "R_N": 5.3}, {**REF, "unique_tokens": 2e9}),
])
def test_a_formula_law_round_trips_and_agrees_in_numpy_and_pytensor(law, nat, ref):
    th = law.from_natural(nat, ref)
    back = law.to_natural(th, ref)
    assert all(back[k] == pytest.approx(v, rel=1e-10) for k, v in nat.items())
    rng = np.random.default_rng(0)
    x = {"params": np.geomspace(1e8, 1e10, 5), "tokens": np.geomspace(2e9, 4e11, 5)}
    x["unique_tokens"] = x["tokens"] / rng.integers(1, 40, 5)
    z = standardized_inputs(law, x, ref)
    assert np.allclose(law.loss(th, z, ref=ref), law.natural_loss(nat, x), rtol=1e-10)
    sym_t = {p: pt.dscalar(p) for p in law.sampling}
    sym_z = {inp: pt.dvector("z_" + inp) for inp in law.inputs}
    f = pytensor.function(list(sym_t.values()) + list(sym_z.values()), law.log_loss(sym_t, sym_z, xp=pt, ref=ref))
    assert np.allclose(f(*th.values(), *z.values()), law.log_loss(th, z, ref=ref))
    assert Law.from_dict(law.to_dict()) == law


def test_the_data_constrained_law_is_chinchilla_on_unique_data_and_discounts_repeats():
    nat = {**NAT, "R_D": 15.4, "R_N": 5.3}
    n, d = np.array([1e8]), np.array([1e12])  # far fewer parameters than the compute-optimal size for d
    assert DATA_CONSTRAINED.natural_loss(nat, {"params": n, "tokens": d, "unique_tokens": d}) == pytest.approx(
        CHINCHILLA.natural_loss(NAT, {"params": n, "tokens": d}), rel=1e-12)
    u = d / 4  # four epochs of a quarter: worse than all unique, better than one epoch of the quarter
    four = DATA_CONSTRAINED.natural_loss(nat, {"params": n, "tokens": d, "unique_tokens": u})
    assert CHINCHILLA.natural_loss(NAT, {"params": n, "tokens": d}) < four < CHINCHILLA.natural_loss(
        NAT, {"params": n, "tokens": u})


def test_a_law_written_as_a_function_is_stored_by_name_only():
    law = Law("kaplan_fn", "Kaplan, as a function", KAPLAN.parameters, inputs=("params", "tokens"),
              function=lambda p, x, xp: ((p["N_c"] / x["params"]) ** (p["alpha_N"] / p["alpha_D"])
                                         + p["D_c"] / x["tokens"]) ** p["alpha_D"])
    x = {"params": np.array([1e8]), "tokens": np.array([2e9])}
    assert law.natural_loss(KAPLAN_NAT, x) == pytest.approx(KAPLAN.natural_loss(KAPLAN_NAT, x))
    assert not law.storable
    with pytest.raises(LawError, match="register"):
        law.to_dict()
    with pytest.raises(LawError, match="built-in"):
        bs.laws.register(Law("chinchilla", CHINCHILLA.formula, CHINCHILLA.parameters))


def test_unique_tokens_are_checked_and_required_by_the_law_that_reads_them(frame):
    with pytest.raises(bs.errors.DataValidationError, match="more unique tokens"):
        bs.ScalingData.from_frame(frame.assign(u=frame["tokens"] * 2), unique_tokens="u")
    data = bs.ScalingData.from_frame(frame)
    with pytest.raises(MissingColumnError, match="unique_tokens"):
        bs.fit(data, "data_constrained")
    ok = bs.ScalingData.from_frame(frame.assign(u=frame["tokens"] / 2), unique_tokens="u")
    assert (ok.frame["unique_tokens"] == ok.frame["tokens"] / 2).all()
