"""The published population prior: what the field has measured, as a distribution a new family borrows.

Built in three steps from every licence-clean zoo the package bundles (:mod:`bayes_scaling.data.zoos`):

1. **One hierarchical fit** of all their families (Chinchilla law, no discrepancy term). Each zoo is prepared
   alike: the first :data:`START_OF_RUN_SHARE` of each run's tokens is dropped (warm-up and the steep early
   phase sit off the law) and each run is thinned to :data:`CHECKPOINTS_PER_RUN` checkpoints.
2. **The model's population predictive** of a new family's parameters (``population="model"``: with this
   many families the population's spreads and correlations are identified, and a family whose own data
   identify little adds little to them), made **level-free** (losses on other evaluation sets and tokenizers
   are not comparable, so a borrowed fit takes the level from the new family's data:
   :meth:`PopulationPrior.as_spec_entry`), with the noise as a distribution across the source families
   (the model has one noise level for all of them; :func:`with_family_noise`).
3. **Calibrated on the task it is for** (:func:`calibrate`): each source family is fitted on its smallest
   model alone (and on its two smallest) with the prior, and its largest model predicted; the spread of the
   borrowed parameters (a factor on their covariance) and a discrepancy scale per decade of distance are
   chosen together to minimise the mean continuous ranked probability score of those predictions (tasks
   weighted equally). A population fitted on many unlike families is wider than what one of them needs, and a law
   fitted on one small model misses its largest model by more than its parameters say; this step measures
   both on the families the prior came from.

The prior records one provenance row per source family, the calibration table and its :data:`PUBLISHED_VERSION`.

>>> prior = build_published_prior(exclude=("porian",))  # doctest: +SKIP  (leave one zoo out)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from ..data import ScalingData, drop_start_of_run, thin_checkpoints
from ..data.zoos import ZOOS, load_zoo, split_zoo_name
from ..errors import ExtrapolationWarning, PriorDataConflictWarning, PriorError, SamplingWarning
from ..evaluate.protocol import family_sizes, split_family
from ..inference.config import SamplerConfig
from ..inference.fit import fit
from ..model.config import ModelConfig
from ..model.population_prior import PopulationPrior

#: the published prior's version: a new one whenever its zoos, their preparation or the fit's settings change
PUBLISHED_VERSION = "2026.12"
#: the share of each run's tokens whose checkpoints are dropped before the fit
START_OF_RUN_SHARE = 0.1
#: checkpoints per run kept for the fit (evenly spread in log tokens)
CHECKPOINTS_PER_RUN = 12
#: the fit's sampler settings (sampling stops as soon as the convergence checks pass; the fixed whitening,
#: which converges on these zoos, so that a rebuild reproduces the shipped draws)
BUILD_SAMPLER = SamplerConfig(draws=2000, tune=1000, chains=4, until_converged=True, whiten=True)
#: draws kept in the shipped prior
PRIOR_DRAWS = 4000
#: the candidates the calibration compares: factors on the borrowed parameters' spread, and discrepancy
#: scales (sd of the log reducible loss per decade of distance from the new family's data, in each direction)
SPREAD_SCALES = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.7, 1.0)
DISCREPANCY_SCALES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
#: the calibration's tasks: each source family with more sizes than k fitted on its k smallest; with k = 2 too,
#: a spread too narrow for data that identify the exponents costs as much as one too wide for one size
CALIBRATION_KS = (1, 2)
#: sampler settings of the calibration's borrowed fits (one or two small models each)
CALIBRATION_SAMPLER = SamplerConfig(draws=500, tune=500, chains=2, until_converged=False)
#: the law of the prior, without a discrepancy term: the calibration chooses the prior's own
NO_DISCREPANCY = ModelConfig(law="chinchilla", extrapolation=None)


def crps(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of draws (sample, point) at observations y (point,):
    E|X - y| - E|X - X'| / 2, from the sorted draws (lower is better)."""
    x = np.sort(draws, axis=0)
    n = x.shape[0]
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]  # sum_i sum_j |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i)
    return np.mean(np.abs(x - y[None, :]), axis=0) - np.sum(weights * x, axis=0) / n**2

log = logging.getLogger("bayes_scaling")


def zoo_names(exclude: Iterable[str] = ()) -> list[str]:
    """The bundled zoos a published prior pools, less ``exclude`` (each checked)."""
    exclude = list(exclude)
    unknown = sorted(set(exclude) - set(ZOOS))
    if unknown:
        raise PriorError(f"no bundled zoo {unknown}; the zoos are {sorted(ZOOS)}")
    names = [z for z in ZOOS if z not in exclude]
    if not names:
        raise PriorError("every bundled zoo is excluded: a published prior needs at least one")
    return names


def prepared_zoo(name: str) -> ScalingData:
    """One bundled zoo as the published prior fits it (start of each run dropped, runs thinned)."""
    return thin_checkpoints(drop_start_of_run(load_zoo(name), START_OF_RUN_SHARE), CHECKPOINTS_PER_RUN)


def provenance(data: ScalingData) -> list[dict[str, Any]]:
    """One record per family of pooled zoo data (families named ``zoo:family``): its zoo, sizes and tokens,
    its loss, licence and source."""
    ov = data.overview()
    rows = []
    for fam, r in ov.iterrows():
        zoo_name, family = split_zoo_name(fam)
        zoo = ZOOS[zoo_name]
        rows.append({"zoo": zoo.name, "family": family, "runs": int(r["runs"]),
                     "sizes": int(r["sizes"]), "min_params": float(r["min_params"]),
                     "max_params": float(r["max_params"]), "min_tokens": float(r["min_tokens"]),
                     "max_tokens": float(r["max_tokens"]), "rows": int(r["rows"]), "loss": zoo.loss,
                     "licence": zoo.licence, "source": zoo.citation})
    return rows


def build_published_prior(exclude: Iterable[str] = (), random_seed: int = 0,
                          draws: int = PRIOR_DRAWS) -> PopulationPrior:
    """Fit every bundled zoo but ``exclude`` in one hierarchical model (:data:`BUILD_SAMPLER`), extract its
    level-free population prior (``draws`` of it) and calibrate it (module docstring).

    With the defaults and the same ``random_seed`` this rebuilds the shipped prior
    (:meth:`PopulationPrior.published`) up to Monte Carlo error.
    """
    names = zoo_names(exclude)
    data = ScalingData.concat([prepared_zoo(n) for n in names], source="bundled zoos: " + ", ".join(names))
    log.info("published prior: fitting %d families of %d zoos (%d rows)", len(data.families), len(names), len(data))
    fitted = fit(data, NO_DISCREPANCY, BUILD_SAMPLER.replace(random_seed=random_seed))
    prior = PopulationPrior.from_fit(fitted, draws=draws, random_seed=random_seed, population="model")
    source = (f"published {PUBLISHED_VERSION}: {len(data.families)} families of {len(names)} zoos "
              f"({', '.join(names)})")
    prior = replace(with_family_noise(prior, family_noise(fitted), random_seed), source=source, free_level=True,
                    provenance=provenance(data), version=PUBLISHED_VERSION)
    return calibrate(prior, data, random_seed)


def calibrate(prior: PopulationPrior, data: ScalingData, random_seed: int = 0) -> PopulationPrior:
    """Choose ``prior``'s spread scale and discrepancy scale on the borrowing task itself (module docstring).

    For each family of ``data`` with more sizes than k (each k of :data:`CALIBRATION_KS`) and each candidate
    spread in :data:`SPREAD_SCALES`, the family's k smallest models are fitted with the prior and every
    candidate discrepancy of :data:`DISCREPANCY_SCALES` predicts its largest model (the guide's last 30% of
    training). The pair with the lowest continuous ranked probability score of the log loss is kept (a proper
    score: it rewards intervals that are both calibrated and sharp, and is not ruled by a few draws in the
    tails): per task the mean over its points, per zoo the mean over its tasks, then the mean over zoos. A
    user's new family is one more zoo, and the families of one zoo share its evaluation and recipe, so each
    zoo counts once however many families it holds. Every candidate's score, median ARE, 90% coverage and
    median 90% width over tasks are recorded in ``prior.calibration``.
    """
    tasks = [split_family(data, f, k) for k in CALIBRATION_KS for f in data.families
             if len(family_sizes(data, f)) > k]
    if not tasks:
        raise PriorError("no source family has two model sizes: nothing to calibrate a borrowed prediction on")
    log.info("published prior: calibrating on %d borrowing tasks (k = %s smallest sizes of a source family)",
             len(tasks), ", ".join(map(str, CALIBRATION_KS)))
    n = len(prior.sigma_seed)
    zero = np.zeros((n, 3))
    scores: dict[tuple[float, float], list[dict[str, float]]] = {}
    problems = 0
    for spread in SPREAD_SCALES:
        trial = replace(prior, spread_scale=spread, kappa=zero, drift=zero, growth=np.ones(n), shared=np.zeros(n))
        for i, task in enumerate(tasks):
            with warnings.catch_warnings():  # counted, and said once below
                warnings.simplefilter("ignore", SamplingWarning)
                warnings.simplefilter("ignore", PriorDataConflictWarning)
                fitted = fit(task.train, ModelConfig(extrapolation=None),
                             CALIBRATION_SAMPLER.replace(random_seed=random_seed + i), borrow=trial)
            problems += not fitted.diagnostics.ok
            y = np.log(task.target["loss"].to_numpy(float))
            draws = fitted.idata.posterior.sizes["chain"] * fitted.idata.posterior.sizes["draw"]
            for kappa in DISCREPANCY_SCALES:
                scaled = fitted.with_extrapolation(np.full((draws, 3), kappa), {"mode": "fixed", "kappa": kappa})
                with warnings.catch_warnings():  # far targets are what the calibration is for
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    pred = scaled.predict(task.family, task.target["params"].to_numpy(),
                                          task.target["tokens"].to_numpy(), task.target["flops"].to_numpy(),
                                          keep_draws=True, random_seed=random_seed + i)
                log_draws = np.log(pred["run_loss"].to_numpy())
                lo, mid, hi = np.quantile(log_draws, [0.05, 0.5, 0.95], axis=0)
                scores.setdefault((spread, kappa), []).append({
                    "crps": float(np.mean(crps(log_draws, y))), "are": float(np.mean(np.abs(np.exp(mid - y) - 1))),
                    "cover90": float(np.mean((y >= lo) & (y <= hi))),
                    "width90": float(np.median((np.exp(hi) - np.exp(lo)) / np.exp(mid)))})
        log.info("published prior: calibration, spread scale %.2f: %d borrowed fits", spread, len(tasks))
    if problems:
        log.warning("published prior: %d of %d calibration fits did not pass the sampling checks (%d draws each)",
                    problems, len(tasks) * len(SPREAD_SCALES), CALIBRATION_SAMPLER.draws)
    zoo_of = [split_zoo_name(task.family)[0] for task in tasks]
    table = [{"spread_scale": s, "kappa": k, "crps": zoo_mean([r["crps"] for r in rows], zoo_of),
              "median_are": float(np.median([r["are"] for r in rows])),
              "cover90": float(np.mean([r["cover90"] for r in rows])),
              "width90": float(np.median([r["width90"] for r in rows])), "tasks": len(rows),
              "zoos": len(set(zoo_of))}
             for (s, k), rows in scores.items()]
    best = min(table, key=lambda r: r["crps"])
    log.info("published prior: spread scale %.2f, discrepancy %.2f per decade (on %d borrowing tasks: median "
             "ARE %.1f%%, 90%% coverage %.0f%%, median width %.0f%%)", best["spread_scale"], best["kappa"],
             best["tasks"], 100 * best["median_are"], 100 * best["cover90"], 100 * best["width90"])
    return replace(prior, spread_scale=best["spread_scale"], kappa=np.full((n, 3), best["kappa"]), drift=zero,
                   growth=np.ones(n), shared=np.zeros(n), calibration=table)


def zoo_mean(values: list[float], zoos: list[str]) -> float:
    """The mean over zoos of each zoo's mean of ``values`` (one value per task, ``zoos`` its zoo)."""
    by_zoo: dict[str, list[float]] = {}
    for v, z in zip(values, zoos):
        by_zoo.setdefault(z, []).append(v)
    return float(np.mean([np.mean(v) for v in by_zoo.values()]))


def family_noise(fitted: Any) -> dict[str, float]:
    """Each fitted family's noise: the root mean square of its rows' log residuals around its own posterior
    median law (seed and checkpoint noise together)."""
    df = fitted.data.frame
    out = {}
    for fam, rows in df.groupby("family", sort=False):
        pred = fitted.predict(fam, rows["params"].to_numpy(), rows["tokens"].to_numpy(), rows["flops"].to_numpy())
        resid = np.log(rows["loss"].to_numpy()) - np.log(pred["expected_median"].to_numpy())
        out[str(fam)] = float(np.sqrt(np.mean(resid**2)))
    return out


def with_family_noise(prior: PopulationPrior, noise: dict[str, float], random_seed: int = 0) -> PopulationPrior:
    """The prior's noise scales as a distribution across the source families: the hierarchical model has one
    noise level for every family, but the zoos' families differ (a smooth validation curve, a noisy training
    loss, final losses of runs with different hyperparameters). Each draw's seed and checkpoint noise are
    scaled together so that their total is one family's noise (chosen at random) times the draw's total over
    the draws' median: the seed share and the posterior's relative uncertainty are kept, and the level and
    spread are the families'."""
    rng = np.random.default_rng(random_seed + 1)
    scales = np.asarray(list(noise.values()))
    total = np.hypot(prior.sigma_seed, prior.sigma_obs)
    k = scales[rng.integers(0, len(scales), len(total))] / np.median(total)
    log.info("published prior: family noise (log loss) from %.3g to %.3g, median %.3g; the fit's one level %.3g",
             scales.min(), scales.max(), np.median(scales), np.median(total))
    return replace(prior, sigma_seed=prior.sigma_seed * k, sigma_obs=prior.sigma_obs * k)


def prior_summary(prior: PopulationPrior) -> dict[str, Any]:
    """The numbers a rebuilt prior is compared on: per natural parameter the median and the 5% and 95%
    quantiles of its draws (log scale for the positive ones), and the same of the total noise."""
    out: dict[str, Any] = {}
    for i, k in enumerate(prior.law_obj.natural):
        x = np.log(prior.natural[:, i])
        out[f"log_{k}"] = np.quantile(x, [0.05, 0.5, 0.95]).tolist()
    out["log_sigma_total"] = np.quantile(np.log(np.hypot(prior.sigma_seed, prior.sigma_obs)), [0.05, 0.5, 0.95]).tolist()
    return out
