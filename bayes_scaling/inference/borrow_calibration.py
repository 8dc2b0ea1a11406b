"""A borrowed prior calibrated on the task it is for: how wide a new family's parameters and discrepancy should be.

A population prior says what a new family is like; how far a law fitted on one or two of its small models
misses its largest model is another question, which the source families answer. Each source family is fitted
on its ``k`` smallest models (:data:`CALIBRATION_KS`) with the prior, its largest model predicted
(:func:`bayes_scaling.data.splits.split_family`), and two scales chosen together on the continuous ranked
probability score (CRPS) of those predictions:

* the **spread** of the borrowed parameters (:attr:`PopulationPrior.spread_scale`, a factor on their
  covariance about its mean): a population drawn over unlike families, or one whose spread a few families
  leave to the hyperprior, is wider than what one new family's prediction needs;
* the **discrepancy** per decade of distance from the new family's data in each direction (kappa): a law
  fitted on one small model misses its largest model by more than its parameters say;
* the discrepancy's **tails** (:data:`~bayes_scaling.predict.DISCREPANCY_TAILS` at each pair, scored with no
  further fits; the gamma shape of a variance-gamma; infinite: normal):
  where most source families extrapolate alike and a few far otherwise (code corpora among web corpora), a
  normal must choose between intervals too wide for the many and too narrow for the few; heavier tails give a
  narrow centre whose tails reach the few.

CRPS is a proper score: it rewards predictions that are calibrated and sharp together, so the pair with the
lowest mean score has a spread as narrow as the source families' borrowed predictions allow, and no narrower.
The candidates start from a fixed grid; a best pair at the grid's upper edge has not been bracketed, so the grid
grows past it until a wider candidate scores worse: a population whose own families miss by more than its
extracted spread allows gets a wider prior, not the widest candidate that happened to be listed.
Each source family is predicted with a prior that leaves out what it contributed where that is possible
(``prior_for``: a prior extracted from a fit without the family's own parameters in its urn,
:meth:`PopulationPrior.from_fit`), so the score is the one a family outside the prior would get. Tasks are
averaged within groups (the published prior's zoos: the families of one zoo share its evaluation and recipe),
then over groups.

The fits are made by the caller's ``fitter`` (``bs.fit``), which keeps this module below it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..data import ScalingData
from ..data.extent import DIRECTIONS
from ..data.splits import family_sizes, split_family
from ..errors import DataAssumptionWarning, ExtrapolationWarning, PriorDataConflictWarning, PriorError, SamplingWarning
from ..model.config import ModelConfig
from ..model.draws import query_columns
from ..model.population_prior import PopulationPrior, tails_text
from ..predict import DISCREPANCY_TAILS, posterior_arrays, predict_draws
from .config import SamplerConfig

log = logging.getLogger("bayes_scaling")

#: the candidates compared first: factors on the borrowed parameters' spread, and discrepancy scales (sd of the
#: log reducible loss per decade of distance from the new family's data, in each direction)
SPREAD_SCALES = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.7, 1.0)
DISCREPANCY_SCALES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
#: a grid whose best candidate is its largest has not bracketed the optimum: it is extended by this factor, one
#: candidate at a time, until a larger one scores worse or the limit is reached (a limit reached is said)
EXTEND_FACTOR = 1.4
SPREAD_LIMIT = 4.0
DISCREPANCY_LIMIT = 1.6
#: the tasks: each source family with more sizes than k fitted on its k smallest; with k = 2 too, a spread too
#: narrow for data that identify the exponents costs as much as one too wide for one size
CALIBRATION_KS = (1, 2)
#: sampler settings of the calibration's borrowed fits (one or two small models each)
CALIBRATION_SAMPLER = SamplerConfig(draws=500, tune=500, chains=2, until_converged=False)

#: ``fitter(data, model, sampler, borrow=prior)``: a fit (``bs.fit``)
Fitter = Callable[..., Any]


def crps(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of draws (sample, point) at observations y (point,):
    E|X - y| - E|X - X'| / 2, from the sorted draws (lower is better)."""
    x = np.sort(draws, axis=0)
    n = x.shape[0]
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]  # sum_i sum_j |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i)
    return np.mean(np.abs(x - y[None, :]), axis=0) - np.sum(weights * x, axis=0) / n**2


def group_means(values: list[float], groups: list[str]) -> dict[str, float]:
    """Each group's mean of ``values`` (one value per task, ``groups`` its group), in the order groups appear."""
    by_group: dict[str, list[float]] = {}
    for v, g in zip(values, groups):
        by_group.setdefault(g, []).append(v)
    return {g: float(np.mean(v)) for g, v in by_group.items()}


def group_mean(values: list[float], groups: list[str]) -> float:
    """The mean over groups of each group's mean of ``values``."""
    return float(np.mean(list(group_means(values, groups).values())))


def calibrate(prior: PopulationPrior, data: ScalingData, fitter: Fitter, *, model: ModelConfig | None = None,
              random_seed: int = 0, prior_for: Callable[[str], PopulationPrior] | None = None,
              group_of: Callable[[str], str] | None = None, what: str = "borrowed prior") -> PopulationPrior:
    """``prior`` with its spread scale and discrepancy chosen on borrowing tasks of ``data``'s families.

    For each family with more sizes than k (each k of :data:`CALIBRATION_KS`) and each candidate spread in
    :data:`SPREAD_SCALES`, the family's k smallest models are fitted with the prior (``prior_for(family)``,
    default ``prior``; ``model``: the law and noise of those fits, without a discrepancy) and every candidate
    discrepancy of :data:`DISCREPANCY_SCALES`, with each tail of :data:`~bayes_scaling.predict.DISCREPANCY_TAILS`,
    predicts its largest model (the guide's last 30% of training; the candidates share their random numbers).
    The score is the CRPS of the log loss: per task the mean over its points, per group (``group_of(family)``,
    default each family its own) the mean over its tasks, then the mean over groups; the pair with the lowest
    score is kept (``"chosen"`` in its row; a zero discrepancy has no tails to choose). Where that pair holds the
    largest candidate of either grid, the grid is extended (:data:`EXTEND_FACTOR`) until a larger candidate scores
    worse, up to :data:`SPREAD_LIMIT` and :data:`DISCREPANCY_LIMIT`; a limit reached is logged as a warning.
    Every candidate's score, median ARE, 90% coverage and median 90% width over tasks are recorded in the
    returned prior's ``calibration``. Raises :class:`PriorError` when no family has two model sizes.
    """
    model = (model or ModelConfig()).replace(extrapolation=None)
    prior_for = prior_for or (lambda family: prior)
    group_of = group_of or (lambda family: family)
    tasks = [split_family(data, f, k) for k in CALIBRATION_KS for f in data.families
             if len(family_sizes(data, f)) > k]
    if not tasks:
        raise PriorError("no source family has two model sizes: nothing to calibrate a borrowed prediction on")
    log.info("%s: calibrating on %d borrowing tasks (k = %s smallest sizes of a source family)", what, len(tasks),
             ", ".join(map(str, CALIBRATION_KS)))
    task_priors = {task.family: prior_for(task.family) for task in tasks}
    groups = [group_of(task.family) for task in tasks]
    # each task's target, the same for every candidate: its log loss and the law's inputs at its points (with
    # the unique tokens that measure its epochs, where the data count them)
    further = sorted(set(prior.law_obj.further_inputs) | ({"unique_tokens"} & set(data.frame.columns)))
    targets = [(np.log(task.target["loss"].to_numpy(float)),
                query_columns(task.target["params"].to_numpy(), task.target["tokens"].to_numpy(),
                              task.target["flops"].to_numpy(),
                              {c: task.target[c].to_numpy() for c in further} or None, prior.law_obj))
               for task in tasks]
    fits: dict[float, list[tuple[Any, dict[str, np.ndarray]]]] = {}
    scores: dict[tuple[float, float, float], list[dict[str, float]]] = {}
    problems = 0

    def fitted_at(spread: float) -> list[tuple[Any, dict[str, np.ndarray]]]:
        nonlocal problems
        if spread not in fits:
            fits[spread] = []
            for i, task in enumerate(tasks):
                trial = without_discrepancy(replace(task_priors[task.family], spread_scale=spread))
                with warnings.catch_warnings():  # counted, and said once below
                    warnings.simplefilter("ignore", SamplingWarning)
                    warnings.simplefilter("ignore", PriorDataConflictWarning)
                    fitted = fitter(task.train, model, CALIBRATION_SAMPLER.replace(random_seed=random_seed + i),
                                    borrow=trial)
                problems += not fitted.diagnostics.ok
                fits[spread].append((fitted, posterior_arrays(fitted.idata.posterior)))
            log.info("%s: calibration, spread scale %.2f: %d borrowed fits", what, spread, len(tasks))
        return fits[spread]

    def scored(spread: float, kappa: float, tails: float) -> list[dict[str, float]]:
        tails = tails if kappa else np.inf  # no discrepancy, no tails: one candidate
        if (spread, kappa, tails) not in scores:
            rows = []
            for i, (task, (y, cols), (fitted, arrays)) in enumerate(zip(tasks, targets, fitted_at(spread))):
                # the fits have no discrepancy (no drift, linear growth, nothing shared): only its scale and tails
                n = len(arrays["sigma_seed"])
                disc = {"kappa": np.full((n, len(DIRECTIONS)), kappa), "tails": np.full(n, tails)}
                with warnings.catch_warnings():  # far targets are what the calibration is for
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    res, _ = predict_draws(fitted.law, {**arrays, **disc}, fitted.spec.families,
                                           fitted.spec.reference, fitted.spec.extents,
                                           np.full(len(y), task.family), cols,
                                           rng=np.random.default_rng(random_seed + i), interval=0.9, keep_draws=True)
                log_draws = np.log(res["run_draws"])
                lo, mid, hi = np.quantile(log_draws, [0.05, 0.5, 0.95], axis=0)
                rows.append({"crps": float(np.mean(crps(log_draws, y))),
                             "are": float(np.mean(np.abs(np.exp(mid - y) - 1))),
                             "cover90": float(np.mean((y >= lo) & (y <= hi))),
                             "width90": float(np.median((np.exp(hi) - np.exp(lo)) / np.exp(mid)))})
            scores[(spread, kappa, tails)] = rows
        return scores[(spread, kappa, tails)]

    best_spread, best_kappa, _, spreads, kappas = bracketed_minimum(
        lambda s, k, a: group_mean([r["crps"] for r in scored(s, k, a)], groups))
    for name, grid, best, limit in (("spread scale", spreads, best_spread, SPREAD_LIMIT),
                                    ("discrepancy", kappas, best_kappa, DISCREPANCY_LIMIT)):
        if best == grid[-1]:  # bracketed_minimum stopped growing this grid at its limit
            log.warning("%s: the calibration's best %s is its largest candidate, %g (the search stops at %g): the "
                        "source families' borrowed predictions miss by more than this prior allows", what, name,
                        best, limit)
    if problems:
        log.warning("%s: %d of %d calibration fits did not pass the sampling checks (%d draws each)", what, problems,
                    len(tasks) * len(fits), CALIBRATION_SAMPLER.draws)
    table = [{"spread_scale": s, "kappa": k, "tails": None if np.isinf(a) else a,
              "crps": group_mean([r["crps"] for r in rows], groups),
              "crps_by_group": group_means([r["crps"] for r in rows], groups),
              "median_are": float(np.median([r["are"] for r in rows])),
              "cover90": float(np.mean([r["cover90"] for r in rows])),
              "width90": float(np.median([r["width90"] for r in rows])), "tasks": len(rows),
              "groups": len(set(groups))}
             for (s, k, a), rows in scores.items()]
    best = min(table, key=lambda r: r["crps"])
    for row in table:
        row["chosen"] = row is best
    log.info("%s: spread scale %.2f, discrepancy %.2f per decade%s (on %d borrowing tasks: median ARE %.1f%%, 90%% "
             "coverage %.0f%%, median width %.0f%%)", what, best["spread_scale"], best["kappa"],
             tails_text(best["tails"]), best["tasks"], 100 * best["median_are"], 100 * best["cover90"],
             100 * best["width90"])
    n = len(prior.sigma_seed)
    return replace(without_discrepancy(prior), spread_scale=best["spread_scale"],
                   kappa=np.full((n, len(DIRECTIONS)), best["kappa"]), discrepancy_tails=best["tails"],
                   calibration=table)


def bracketed_minimum(score: Callable[[float, float, float], float]
                      ) -> tuple[float, float, float, list[float], list[float]]:
    """The (spread, discrepancy, tails) candidate of lowest ``score`` over the grid :data:`SPREAD_SCALES` x
    :data:`DISCREPANCY_SCALES` x :data:`~bayes_scaling.predict.DISCREPANCY_TAILS`, the first two grids extended by
    :data:`EXTEND_FACTOR` while their largest candidate is the best, up to :data:`SPREAD_LIMIT` and
    :data:`DISCREPANCY_LIMIT`. Returns the candidate and the spread and discrepancy grids as searched."""
    spreads, kappas = list(SPREAD_SCALES), list(DISCREPANCY_SCALES)
    while True:
        values = {(s, k, a): score(s, k, a) for s in spreads for k in kappas for a in DISCREPANCY_TAILS}
        best_spread, best_kappa, best_tails = min(values, key=values.get)
        grown = False
        for grid, best, limit in ((spreads, best_spread, SPREAD_LIMIT), (kappas, best_kappa, DISCREPANCY_LIMIT)):
            if best == grid[-1] and round(grid[-1] * EXTEND_FACTOR, 2) <= limit:
                grid.append(round(grid[-1] * EXTEND_FACTOR, 2))
                grown = True
        if not grown:
            return best_spread, best_kappa, best_tails, spreads, kappas


def without_discrepancy(prior: PopulationPrior) -> PopulationPrior:
    """``prior`` with no extrapolation discrepancy (kappa and drift zero, linear growth, nothing shared)."""
    n = len(prior.sigma_seed)
    zero = np.zeros((n, len(DIRECTIONS)))
    return replace(prior, kappa=zero, drift=zero, growth=np.ones(n), shared=np.zeros(n), discrepancy_tails=None)


def calibrated_prior(fitted: Any, fitter: Fitter, *, population: str | None = None, draws: int = 4000,
                     random_seed: int = 0, tails: bool = False) -> PopulationPrior:
    """The population prior of a fitted zoo (:meth:`PopulationPrior.from_fit`), calibrated on its own families.

    Each family's borrowing task uses the prior extracted without that family's own parameters (the blend's and
    the mixture's urn leave it out; the model's population still holds what it taught the hyperparameters). A
    mixture prior is weighed by the new family's evidence instead and is returned as extracted; so is a prior of
    a zoo where no family has two model sizes, with a warning.
    """
    kw = {"draws": draws, "random_seed": random_seed, "tails": tails}
    if population is not None:
        kw["population"] = population
    prior = PopulationPrior.from_fit(fitted, **kw)
    if prior.is_mixture:
        return prior
    model = ModelConfig(law=fitted.law, likelihood=fitted.spec.likelihood,
                        checkpoint_noise=fitted.spec.checkpoint_noise)
    try:
        return calibrate(prior, fitted.data, fitter, model=model, random_seed=random_seed,
                         prior_for=lambda family: PopulationPrior.from_fit(fitted, without=family, **kw),
                         what="population prior")
    except PriorError as exc:
        warnings.warn(f"the population prior's spread is not calibrated ({exc}): its intervals for a new family "
                      "are those of the fitted population, which a few families leave wide", DataAssumptionWarning,
                      stacklevel=2)
        return prior
