"""``fit``: data in, a fitted hierarchical scaling law out."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data import ScalingData, apply_filters
from ..errors import (
    DataValidationError,
    PriorDataConflictWarning,
    PriorError,
    SamplingWarning,
)
from ..laws import Law, get_law
from ..model import ModelSpec, PopulationPrior, Priors
from ..model.config import ModelConfig
from ..model.population_prior import (
    CONFLICT_P_VALUE,
    PUBLISHED,
    conflict_message,
    missing_prior_file,
    size_spans,
)
from ..model.spec import check_law_inputs
from ..storage import file_kind
from ..predict import sample_count
from .borrow_calibration import calibrated_prior
from .config import SamplerConfig
from .diagnostics import warn_if_problems
from .extrapolation import discrepancy_draws
from .fitted import ScalingFit
from .initial import family_point_estimates
from .outliers import choose_likelihood
from .parameterisation import choose_noncentering
from .run import fit_spec, inherited_start

#: progress of fits (phases, calibration fits) at INFO; the command line shows it unless --quiet
log = logging.getLogger("bayes_scaling")


def _options_moved(func):
    """Say where a keyword that ``fit`` took before the configurations now goes (``draws=`` -> ``sampler=``)."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        moved = {k: v for k, v in kwargs.items() if k in ModelConfig.keys() | SamplerConfig.keys()}
        if moved:
            parts = [f"{kind.argument}={{{', '.join(f'{k!r}: {v!r}' for k, v in moved.items() if k in kind.keys())}}}"
                     for kind in (ModelConfig, SamplerConfig) if set(moved) & kind.keys()]
            raise TypeError(f"{func.__name__}() takes its settings in two configurations: pass {', '.join(parts)} "
                            f"(or bs.ModelConfig(...) / bs.SamplerConfig(...)) instead of "
                            f"{', '.join(f'{k}=' for k in moved)}")
        return func(*args, **kwargs)

    return checked


@_options_moved
def fit(
    data: ScalingData | pd.DataFrame,
    model: ModelConfig | Mapping[str, Any] | str | Law | None = None,
    sampler: SamplerConfig | Mapping[str, Any] | None = None,
    *,
    priors: Priors | None = None,
    borrow: Any = None,
    min_tokens: float | None = None,
    fraction: float | None = None,
) -> ScalingFit:
    """Fit the hierarchical scaling law of :mod:`bayes_scaling.model` to ``data`` with NUTS.

    Parameters
    ----------
    data:
        A :class:`ScalingData` (or a DataFrame with the canonical columns family, params, tokens,
        loss and optionally run, seed, flops).
    model:
        What to fit: a :class:`ModelConfig` (the law, the likelihood, the checkpoint noise, treatments, the
        extrapolation discrepancy and its nested leave-out), a dict of the settings that differ from its
        defaults, or a law alone (``"compute"``, or your own :class:`~bayes_scaling.laws.Law`). Default:
        ``ModelConfig()``, whose law is the borrowed prior's, else ``"chinchilla"``.
    sampler:
        How to sample: a :class:`SamplerConfig` (draws, tune, chains, target_accept, random_seed,
        until_converged and the speed options), or a dict of the settings that differ from its defaults.
    priors:
        A :class:`Priors`; default :meth:`Priors.default` scaled by the data's median loss.
    borrow:
        A :class:`PopulationPrior`, a fitted :class:`ScalingFit`, the path to either, or ``"published"``
        (:func:`bayes_scaling.published_prior`): fit **one new family** with the other families' population
        predictive as the prior of its parameters and noise, and an extrapolation discrepancy (a single small
        model is enough; what its data cannot identify, the borrowed prior carries, and the fit's notes say
        so). A fit's prior is calibrated on its own families first (:mod:`.borrow_calibration`: the spread and
        discrepancy that predict each of them best from its smallest models; a minute or two for a few
        families): save it once with ``bayes-scaling prior FIT.nc --out PRIOR.nc`` and borrow the file.
    min_tokens, fraction:
        The Hitchhiker's filters: drop checkpoints before ``min_tokens`` tokens; keep only the first
        ``fraction`` of each run. Dropped rows are recorded in the fit.

    Notes
    -----
    Both configurations are stored in the fit (``fit.model_config``, ``fit.sampler_config``) and its file.
    Sampling problems (divergences, R-hat > 1.01, ESS < 400 on population parameters and noise scales)
    raise :class:`SamplingWarning` warnings and are kept in ``fit.diagnostics``.
    """
    cfg, nuts = ModelConfig.coerce(model), SamplerConfig.coerce(sampler)
    data = apply_filters(as_scaling_data(data), min_tokens=min_tokens, fraction=fraction)
    prior = borrowed_prior(borrow) if borrow is not None else None
    law = cfg.law_for(prior.law_obj if prior is not None else None)
    check_law_inputs(get_law(law), data)
    check_identifiable(data, get_law(law), borrowed=prior is not None, priors=priors)
    log.info("fitting %d rows, %d runs, %d families (%s law)", len(data), len(data.runs), len(data.families),
             get_law(law).name)
    conflict = None
    if prior is not None:
        df = data.frame
        conflict = prior.conflict(df["params"].to_numpy(), df["tokens"].to_numpy(), df["loss"].to_numpy(),
                                  df["flops"].to_numpy(), {c: df[c].to_numpy() for c in prior.law_obj.further_inputs
                                                           if c in df})
        if conflict["p_value"] < CONFLICT_P_VALUE:
            # stacklevel 3: past the keyword check, at the caller's line
            warnings.warn(conflict_message(conflict, prior.source), PriorDataConflictWarning, stacklevel=3)
    if prior is not None and prior.is_mixture:  # fit each component, average them by evidence
        from .compile_cache import backend_for_fits
        from .model_averaging import fit_mixture

        # one structure fitted once per component: compiled once, by numba, where "auto" would pick JAX;
        # one likelihood for every component, so that their evidences compare the same model
        component_cfg = cfg.replace(likelihood="normal") if cfg.likelihood == "auto" else cfg
        component_nuts = nuts.replace(backend=backend_for_fits(nuts.backend, len(prior.component_names)))

        def component(sub: PopulationPrior) -> ScalingFit:
            with warnings.catch_warnings():  # the combined fit reports its components' problems once
                warnings.simplefilter("ignore", SamplingWarning)
                warnings.simplefilter("ignore", PriorDataConflictWarning)  # checked above for the whole prior
                return fit(data, component_cfg, component_nuts, priors=priors, borrow=sub)

        fitted = fit_mixture(prior, component, nuts.random_seed, {"prior_data_conflict": conflict})
        warn_if_problems(fitted.diagnostics, "fit")
        return fitted.with_configs(cfg, nuts)
    specs = dict(law=law, priors=priors, borrow=prior, noncentering=nuts.noncentering, treatments=cfg.treatments,
                 checkpoint_noise=cfg.checkpoint_noise)
    spec, estimates = model_spec(data, likelihood="normal" if cfg.likelihood == "auto" else cfg.likelihood, **specs)
    with warnings.catch_warnings(record=cfg.likelihood == "auto") as held:  # said only if this fit is kept
        fitted = fit_spec(data, spec, nuts, estimates=estimates)
    if cfg.likelihood == "auto":
        choice = choose_likelihood(fitted)
        if choice["chosen"] != spec.likelihood:
            log.info("refitting with the Student-t likelihood: %s", choice["reason"])
            spec, estimates = model_spec(data, likelihood=choice["chosen"], **specs)
            fitted = fit_spec(data, spec, nuts, estimates=estimates)
        else:
            for w in held:
                warnings.warn(w.message, w.category, stacklevel=3)
        fitted = fitted.with_likelihood_choice(choice)
    weak_exponent = _weak_borrowed_exponent(prior, data, spec) if prior is not None else None

    posterior = fitted.idata.posterior
    start = inherited_start(fitted.sampler_info)  # the calibration fits begin where this fit's choices ended
    draws, info = discrepancy_draws(cfg, data, spec, prior, sample_count(posterior),
                                    np.random.default_rng(nuts.random_seed + 7919),
                                    lambda rows, rows_spec: fit_spec(rows, rows_spec, nuts.shorter(500),
                                                                      what="extrapolation calibration fit",
                                                                      start=start))
    if conflict is not None:
        info["prior_data_conflict"] = conflict
    if weak_exponent is not None:
        info["weak_borrowed_exponent"] = weak_exponent
    return fitted.with_discrepancy(draws, info).with_configs(cfg, nuts)


def borrowed_prior(borrow: Any) -> PopulationPrior:
    """The population prior of ``borrow``: a prior, a fit (its population extracted with the defaults of
    :meth:`PopulationPrior.from_fit` and calibrated on its families, :func:`.borrow_calibration.calibrated_prior`),
    the path to either, or ``"published"``."""
    if isinstance(borrow, (str, os.PathLike)) and borrow != PUBLISHED:
        if not Path(borrow).is_file():
            raise missing_prior_file(borrow)
        kind = file_kind(borrow)
        if kind not in ("prior", "fit"):
            raise PriorError(f"{borrow} is a {kind}, which holds no population prior of a scaling law: borrow from a "
                             "prior or a fit of the loss")
        borrow = PopulationPrior.load(borrow) if kind == "prior" else ScalingFit.load(borrow)
    if isinstance(borrow, ScalingFit):
        return calibrated_prior(borrow, fit)
    return PopulationPrior.coerce(borrow)


def _weak_borrowed_exponent(prior: PopulationPrior, data: ScalingData, spec: ModelSpec) -> dict | None:
    """The evidence that the new family's N-exponent rests on sources that barely identify it (None if not).

    Recorded in the fit's extrapolation info; its notes say so. A note, not a warning: on the harness's
    stored results the flagged predictions were worse than the others in half of the runs and better in
    the other half (benchmarks/weak_exponent.py).
    """
    if "params" not in spec.law_obj.inputs:
        return None
    return prior.exponent_support(max(size_spans(data).values()))


def as_scaling_data(data: ScalingData | pd.DataFrame) -> ScalingData:
    """A DataFrame with the canonical columns (family, params, tokens, loss; run, seed, flops optional) as data."""
    if not isinstance(data, pd.DataFrame):
        return data
    return ScalingData.from_frame(data, family="family", params="params", tokens="tokens", loss="loss",
                                  run="run" if "run" in data.columns else None,
                                  seed="seed" if "seed" in data.columns else None,
                                  flops="flops" if "flops" in data.columns else None)


def model_spec(data: ScalingData, law: str | Law = "chinchilla", priors: Priors | None = None, *,
               likelihood: str = "normal",
               borrow: PopulationPrior | None = None, noncentering: dict[str, float] | str | None = None,
               treatments: dict[str, str] | None = None,
               checkpoint_noise: str = "independent") -> tuple[ModelSpec, np.ndarray]:
    """The model spec of ``data`` with its non-centred parameters resolved (``"auto"``: chosen from the data),
    and the families' penalised least-squares estimates (computed once: they also start the sampler)."""
    auto = isinstance(noncentering, str)
    if auto and noncentering != "auto":
        raise ValueError(f"noncentering must be 'auto', a dict or None, got {noncentering!r}")
    spec = ModelSpec.from_data(data, law, priors, likelihood=likelihood, borrow=borrow,
                               noncentering=None if auto else noncentering, treatments=treatments,
                               checkpoint_noise=checkpoint_noise)
    estimates = family_point_estimates(data, spec)
    if auto:
        spec.noncentering = choose_noncentering(data, spec, estimates=estimates)
    return spec, estimates


def check_identifiable(data: ScalingData, law: Law, *, borrowed: bool, priors: Priors | None) -> None:
    """Raise when the data hold a single configuration (one size at one token count) and nothing else informs
    the law: one point has no curve, and the fit would return the default prior, with divergences, as if it
    were a posterior. With two or more, the priors carry what the data cannot identify and the fit's notes
    say which."""
    configurations = len(data.frame[list(law.inputs)].drop_duplicates())
    if borrowed or priors is not None or configurations >= 2:
        return
    raise DataValidationError(
        f"the data hold a single configuration ({len(data)} row(s) at one size and token count), which cannot "
        f"identify the {len(law.sampling)} parameters of the {law.name!r} law ({law.one_line}). Add runs of "
        "other sizes or checkpoints at other token counts, or fit this family with a population prior borrowed "
        "from other families (borrow=...).")


