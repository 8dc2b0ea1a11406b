"""The population prior of your own fitted zoo, calibrated on its families: what ``borrow=fit`` borrows.

>>> prior = calibrated_prior(zoo_fit)        # doctest: +SKIP  (a minute or two for a few families)
>>> prior.save("population.nc")              # doctest: +SKIP  (CLI: bayes-scaling prior zoo.nc --out population.nc)
>>> new = bs.fit(one_small_model, borrow="population.nc")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..inference import borrow_calibration
from ..inference.fit import fit as fit_function
from ..model.population_prior import PopulationPrior


def calibrated_prior(fit: Any, *, population: str | None = None, draws: int = 4000,
                     random_seed: int = 0, tails: bool = False) -> PopulationPrior:
    """``PopulationPrior.from_fit(fit, ...)`` with its spread and discrepancy calibrated on the fit's own families,
    each borrowing the rest (:func:`bayes_scaling.inference.borrow_calibration.calibrated_prior`); ``tails``: a
    multivariate t over the source families instead of a normal (:attr:`PopulationPrior.tail_df`)."""
    return borrow_calibration.calibrated_prior(fit, fit_function, population=population, draws=draws,
                                               random_seed=random_seed, tails=tails)
