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
   chosen together to minimise the mean continuous ranked probability score of those predictions, each zoo
   counted once (:mod:`bayes_scaling.inference.borrow_calibration`). A population fitted on many unlike
   families is wider than what one of them needs, and a law fitted on one small model misses its largest
   model by more than its parameters say; this step measures both on the families the prior came from.

The prior records one provenance row per source family, the calibration table and its :data:`PUBLISHED_VERSION`.

>>> prior = build_published_prior(exclude=("porian",))  # doctest: +SKIP  (leave one zoo out)
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from ..data import ScalingData, drop_start_of_run, thin_checkpoints
from ..data.zoos import ZOOS, load_zoo, split_zoo_name
from ..errors import PriorError
from ..inference.borrow_calibration import calibrate as calibrate_borrowing
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
#: the law of the prior, without a discrepancy term: the calibration chooses the prior's own
NO_DISCREPANCY = ModelConfig(law="chinchilla", extrapolation=None)


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
    """Choose ``prior``'s spread scale and discrepancy scale on borrowing tasks of its source families
    (:func:`bayes_scaling.inference.borrow_calibration.calibrate`), each zoo counted once: a user's new family
    is one more zoo, and the families of one zoo share its evaluation and recipe."""
    return calibrate_borrowing(prior, data, fit, model=NO_DISCREPANCY, random_seed=random_seed,
                               group_of=lambda family: split_zoo_name(family)[0], what="published prior")


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
