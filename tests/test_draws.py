"""One draws type: a fitted family, a new family of a fit's population and a borrowed prior are each a LawDraws,
with the law's log loss on it."""

from __future__ import annotations

import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.data.extent import DIRECTIONS
from bayes_scaling.data.synthetic import simulate_family_parameters
from bayes_scaling.laws import CHINCHILLA
from bayes_scaling.errors import NonPositiveValueError
from bayes_scaling.model.draws import LawDraws, query_columns


def _prior(n=500, seed=0):
    rng = np.random.default_rng(seed)
    fams = simulate_family_parameters(n, rng)
    nat = np.array([[f[k] for k in CHINCHILLA.natural] for f in fams.values()])
    return bs.PopulationPrior(law="chinchilla", natural=nat, sigma_seed=np.full(n, 0.01), sigma_obs=np.full(n, 0.005),
                              kappa=rng.uniform(0.01, 0.05, (n, len(DIRECTIONS))),
                              drift=rng.normal(0, 0.03, (n, len(DIRECTIONS))), max_log10_flops=20.0)


def test_the_law_log_loss_is_the_law_at_every_draw_and_point():
    prior = _prior()
    draws = prior.family_draws()
    params, tokens = np.array([1e8, 1e9]), np.array([2e9, 2e10])
    got = draws.log_loss(params, tokens)
    nat = {k: prior.natural[:, i] for i, k in enumerate(CHINCHILLA.natural)}
    for j in range(2):
        expect = np.log(nat["E"] + nat["A"] / params[j] ** nat["alpha"] + nat["B"] / tokens[j] ** nat["beta"])
        assert np.allclose(got[:, j], expect)
    # scalars broadcast, and the FLOPs default to 6 N D
    assert draws.log_loss(1e9, 2e10).shape == (draws.size, 1)
    assert np.allclose(draws.log_loss(1e9, [2e9, 2e10])[:, 1], got[:, 1])
    assert query_columns(1e9, [2e9, 2e10])["flops"] == pytest.approx([1.2e19, 1.2e20])
    # a planner's or conflict check's points are validated as a prediction's are
    with pytest.raises(NonPositiveValueError, match="params"):
        draws.log_loss([1e9, 0.0], 2e10)
    assert np.allclose(draws.log_floor, np.log(nat["E"]))


def test_a_borrowed_prior_widens_a_new_family_discrepancy_by_the_source_drift():
    prior = _prior()
    draws = prior.family_draws()
    assert draws.new_family and draws.observed_log10_flops is None and draws.population_log10_flops == 20.0
    assert np.allclose(draws.kappa, np.hypot(prior.kappa, prior.drift)) and not draws.drift.any()
    assert np.array_equal(draws.kappa, prior.borrowed_discrepancy()["kappa"])


def test_a_fitted_family_and_a_new_one_are_law_draws_of_the_fit(small_fit):
    fam = small_fit.families[0]
    own = small_fit.family_draws(fam)
    assert isinstance(own, LawDraws) and not own.new_family
    assert own.observed_log10_flops == small_fit.spec.family_max_log10_flops[fam]
    assert own.kappa.shape == (own.size, len(DIRECTIONS))
    ds = small_fit.law_draws(fam)  # the labelled view of the same draws
    assert all(np.array_equal(ds[k].to_numpy(), own.natural[k]) for k in CHINCHILLA.natural)
    assert ds.attrs["family"] == fam and ds.attrs["new_family"] == 0
    new = small_fit.family_draws("unseen", new_family=True, random_seed=1)
    assert new.new_family and new.observed_log10_flops is None
    assert new.population_log10_flops == max(small_fit.spec.family_max_log10_flops.values())
    # a new family is more uncertain than a fitted one at a target beyond the data
    spread = lambda d: np.std(d.log_loss(7e9, 1.4e11))  # noqa: E731
    assert spread(new) > spread(own)
