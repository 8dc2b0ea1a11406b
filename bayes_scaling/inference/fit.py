"""``fit``: data in, a fitted hierarchical scaling law out."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import arviz as az
import numpy as np
import pandas as pd

from ..data import ScalingData, apply_filters
from ..errors import DataValidationError, PriorDataConflictWarning, PriorError, SamplingWarning
from ..laws import Law, get_law
from ..model import POPULATION_VARS, ModelSpec, PopulationPrior, Priors, build_model
from ..model.config import ModelConfig
from ..model.hierarchical import uses_fused_rows, whitens
from ..model.population_prior import CONFLICT_P_VALUE, PUBLISHED, conflict_message, missing_prior_file, size_spans
from ..model.spec import check_law_inputs
from ..storage import file_kind
from .config import SamplerConfig
from .diagnostics import ESS_MIN, Diagnostics, diagnose, failed_checks, warn_if_problems
from .extrapolation import discrepancy_draws
from .fitted import ScalingFit, build_idata
from .initial import family_point_estimates, initial_values
from .outliers import choose_likelihood
from .parameterisation import choose_noncentering, family_whitening
from .sampling import run_nuts

#: the whitening of a centred family layer that ``whiten=True`` means and ``whiten="auto"`` starts from:
#: ``"conditional"`` samples synthetic zoos of 20 and 40 families faster but compiles longer and diverged on
#: Porian, ColPret and a real zoo of 36 families where this one converged (docs/benchmarks.md)
DEFAULT_WHITENING = "fixed"

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
        predictive as the prior of its parameters and noise, and their learned extrapolation discrepancy (a
        single small model is enough; what its data cannot identify, the borrowed prior carries, and the
        fit's notes say so).
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
        fitted = _fit_spec(data, spec, nuts, estimates=estimates)
    if cfg.likelihood == "auto":
        choice = choose_likelihood(fitted)
        if choice["chosen"] != spec.likelihood:
            log.info("refitting with the Student-t likelihood: %s", choice["reason"])
            spec, estimates = model_spec(data, likelihood=choice["chosen"], **specs)
            fitted = _fit_spec(data, spec, nuts, estimates=estimates)
        else:
            for w in held:
                warnings.warn(w.message, w.category, stacklevel=3)
        fitted = fitted.with_likelihood_choice(choice)
    weak_exponent = _weak_borrowed_exponent(prior, data, spec) if prior is not None else None

    posterior = fitted.idata.posterior
    draws, info = discrepancy_draws(cfg, data, spec, prior, posterior.sizes["chain"] * posterior.sizes["draw"],
                                    np.random.default_rng(nuts.random_seed + 7919),
                                    lambda rows, rows_spec: _fit_spec(rows, rows_spec, nuts.shorter(500),
                                                                      what="extrapolation calibration fit"))
    if conflict is not None:
        info["prior_data_conflict"] = conflict
    if weak_exponent is not None:
        info["weak_borrowed_exponent"] = weak_exponent
    return fitted.with_extrapolation(draws["kappa"], info, drift=draws.get("drift"), growth=draws.get("growth"),
                                     shared=draws.get("shared")).with_configs(cfg, nuts)


def borrowed_prior(borrow: Any) -> PopulationPrior:
    """The population prior of ``borrow``: a prior, a fit (its population extracted with the defaults of
    :meth:`PopulationPrior.from_fit`), the path to either, or ``"published"``."""
    if isinstance(borrow, (str, os.PathLike)) and borrow != PUBLISHED:
        if not Path(borrow).is_file():
            raise missing_prior_file(borrow)
        kind = file_kind(borrow)
        if kind not in ("prior", "fit"):
            raise PriorError(f"{borrow} is a {kind}, which holds no population prior of a scaling law: borrow from a "
                             "prior or a fit of the loss")
        borrow = PopulationPrior.load(borrow) if kind == "prior" else ScalingFit.load(borrow)
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


def _fit_spec(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str = "fit",
              estimates: np.ndarray | None = None) -> ScalingFit:
    fused = nuts.fused and nuts.backend != "jax" and uses_fused_rows(spec)
    if nuts.whiten == "auto" and whitens(spec):
        estimates = family_point_estimates(data, spec) if estimates is None else estimates
        idata, info, diag = choose_whitening(data, spec, nuts, what, estimates, fused)
    else:
        idata, info, diag = _sample(data, spec, nuts, what, estimates, fused, nuts.whiten,
                                    _stop_rule(nuts.until_converged, give_up=False))
        hint = whitening_hint(idata, diag, info["whitened"])
        if hint:
            diag.problems.append(hint)
    warn_if_problems(diag, what)
    return ScalingFit(build_idata(idata, data, spec, info, diag), spec)


def _sample(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str, estimates: np.ndarray | None,
            fused: bool, whiten: bool | str, stop: Any) -> tuple[az.InferenceData, dict, Diagnostics]:
    """One NUTS run of ``spec``'s model whitened as ``whiten`` asks: the draws, the sampler's info, the diagnostics."""
    model, init, whitened = sampled_model(data, spec, estimates, whiten=whiten, fused=fused)
    log.info("sampling %s: %d chains x (%d tuning + up to %d draws)%s", what, nuts.chains, nuts.tune, nuts.draws,
             f", {whitened} whitening" if whitened else "")
    idata, info = run_nuts(model, init, **nuts.nuts_settings(), stop=stop)
    log.info("sampled %s in %.1f s", what, info["sampling_seconds"])
    info["whitened"] = whitened
    info["fused_rows"] = fused
    return idata, info, diagnose(idata, list(POPULATION_VARS), info["sampling_seconds"])


def choose_whitening(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str, estimates: np.ndarray,
                     fused: bool) -> tuple[az.InferenceData, dict, Diagnostics]:
    """``whiten="auto"``: the fixed whitening first, switched to the conditional one when its draws show the
    failure the conditional map fixes. Returns the run kept, its info (with ``"parameterisation"``: what was
    chosen, why, and every run tried) and its diagnostics.

    The fixed map (:func:`.parameterisation.family_whitening`) is built at the prior mean of the population
    spread ``tau``; when the families' data pin ``tau`` far from it, the map no longer matches the families'
    conditional posteriors and ``tau`` mixes slowly, while the conditional map, rebuilt at every step,
    samples it well. That is the failure seen on synthetic zoos of 20 and 40 families; on real zoos of 4 to
    36 families the fixed map converged and the conditional one diverged (docs/benchmarks.md), so neither a
    family count nor the conditional map is the rule: the draws decide. The fixed run is abandoned as soon
    as its draws, at ``GIVE_UP_FRACTION`` of the budget or later, project that ``tau`` alone would miss the
    ESS check at the whole budget (:func:`spread_holds_back`, :func:`_stop_rule`). When the conditional run does not pass every check either, the run
    that fails fewer checks (divergences first) is kept: the fixed one sampled to the whole budget when it had
    been abandoned.
    """
    tried: list[dict] = []

    def run(mode: str, give_up: bool) -> tuple[az.InferenceData, dict, Diagnostics]:
        out = _sample(data, spec, nuts, what, estimates, fused, mode, _stop_rule(nuts.until_converged, give_up))
        info, diag = out[1], out[2]
        tried.append({"whitening": mode, "draws": info["draws"], "outcome": _outcome(info, diag),
                      "sampling_seconds": round(info["sampling_seconds"], 2),
                      "compile_seconds": round(info["compile_seconds"], 2), "divergences": diag.divergences,
                      "min_ess_bulk": round(diag.min_ess_bulk), "min_ess_tail": round(diag.min_ess_tail),
                      "max_rhat": round(diag.max_rhat, 4)})
        return out

    fixed = run("fixed", give_up=True)
    if not (fixed[1].get("stop_reason") == "abandoned" or spread_holds_back(fixed[0])):
        chosen, reason = fixed, "the fixed whitening: its draws " + (
            "passed the convergence checks" if _mixed(fixed[2]) else
            "did not pass every check, but not for the slowly mixing population spread the conditional whitening fixes")
    else:
        why = f"the population spread mixed slowly under the fixed whitening ({_shortfall(fixed[2])})"
        log.info("%s: %s; sampling with the conditional whitening", what, why)
        conditional = run("conditional", give_up=False)
        runs = [conditional, fixed]
        if not conditional[2].ok and fixed[1].get("stop_reason") == "abandoned":
            log.info("%s: the conditional whitening did not pass every check; sampling the fixed one to the "
                     "whole budget", what)
            runs = [conditional, run("fixed", give_up=False)]
        chosen = min(runs, key=lambda r: _failures(r[2]))
        reason = (f"the conditional whitening: {why}" if chosen is conditional else
                  f"the fixed whitening: {why}, but the conditional whitening failed more checks "
                  f"({'; '.join(conditional[2].problems)})")
    idata, info, diag = chosen
    info["parameterisation"] = {"whitening": info["whitened"], "reason": reason, "tried": tried}
    info["sampling_seconds_all_runs"] = round(sum(t["sampling_seconds"] for t in tried), 2)
    log.info("%s: chose %s", what, reason)
    return idata, info, diag


def _mixed(diag: Diagnostics) -> bool:
    """The draws pass the R-hat and ESS checks (divergences aside: more draws cannot remove them)."""
    failed = failed_checks(diag)
    return not (failed["rhat"] or failed["ess_bulk"] or failed["ess_tail"])


def spread_holds_back(idata: az.InferenceData, budget: int | None = None) -> bool:
    """The failure the conditional whitening fixes: the population spread ``tau`` alone keeps the draws from
    the ESS check.

    With ``budget`` draws per chain (default: the draws there are; the ESS grown in proportion to the
    draws), the spread's least bulk or tail ESS falls short of ``ESS_MIN`` while every other population
    parameter and noise scale reaches it. Where everything falls short (too small a budget for the check),
    another parameterisation of the family layer is no remedy, and this is False.
    """
    post = idata.posterior
    grow = (post.sizes["draw"] if budget is None else budget) / post.sizes["draw"]

    def least_ess(names: list[str]) -> float:
        names = [v for v in names if v in post]
        if not names:
            return float("inf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summ = az.summary(idata, var_names=names, kind="diagnostics").dropna(subset=["ess_bulk"])
        return float(min(summ["ess_bulk"].min(), summ["ess_tail"].min())) * grow

    spreads = [v for v in POPULATION_VARS if v.startswith("tau")]
    return least_ess(spreads) < ESS_MIN <= least_ess([v for v in POPULATION_VARS if v not in spreads])


def _shortfall(diag: Diagnostics) -> str:
    return (f"min bulk / tail ESS {diag.min_ess_bulk:.0f} / {diag.min_ess_tail:.0f} after {diag.draws} draws per "
            f"chain, worst {diag.worst.get('ess_bulk')}")


def _failures(diag: Diagnostics) -> tuple:
    """How badly a run fails its checks, to order runs: divergences, then the count of failed checks, then ESS."""
    failed = failed_checks(diag)
    return (failed["divergences"], sum(failed.values()), -min(diag.min_ess_bulk, diag.min_ess_tail))


def _outcome(info: dict, diag: Diagnostics) -> str:
    if info.get("stop_reason") == "abandoned":
        return "abandoned: the population spread alone projected below the ESS check at the whole budget"
    return "passed every check" if diag.ok else "; ".join(diag.problems)


def whitening_hint(idata: az.InferenceData, diag: Diagnostics, whitened: str | None) -> str | None:
    """What to try when the population spread ``tau`` mixes slowly under the fixed whitening chosen by hand.

    With many families the spread is pinned by the data and the fixed map, built at its prior mean, no
    longer matches each family's conditional posterior; the conditional whitening rebuilds the map at
    every step (:func:`.parameterisation.family_whitening`), and ``whiten="auto"`` (the default) switches
    to it by itself when the draws show this.
    """
    if whitened != "fixed" or not spread_holds_back(idata):
        return None
    return (f"the population spread mixes slowly ({_shortfall(diag)}); sampler={{'whiten': 'auto'}} (the default) "
            "switches to the conditional whitening when the draws show this, and keeps the run that passes more checks")


#: ``whiten="auto"`` abandons the fixed whitening no earlier than this fraction of the draws budget: an ESS
#: estimated from fewer draws per chain is too noisy to project
GIVE_UP_FRACTION = 0.25


def _stop_rule(until_converged: bool, give_up: bool) -> Any:
    """The rule :func:`.sampling.run_nuts` asks of the draws so far and the draws budget (None: no rule),
    answering ``"converged"``, ``"abandoned"`` or None (go on).

    ``until_converged``: ``"converged"`` when the draws pass the R-hat and ESS checks of
    :func:`.diagnostics.diagnose`. Divergences do not keep the sampler going: the rule is asked of the first
    ``n`` draws of every chain for growing ``n``, so a divergence among them stays in every later set and
    more draws cannot remove it. The fit's diagnostics still report it.
    ``give_up``: ``"abandoned"`` when, at ``GIVE_UP_FRACTION`` of the budget or later, the population
    spread alone would still fall short of the ESS check at the whole budget (:func:`spread_holds_back`).
    """
    if not (until_converged or give_up):
        return None

    def rule(idata: az.InferenceData, budget: int) -> str | None:
        diag = diagnose(idata, list(POPULATION_VARS))
        if until_converged and _mixed(diag):
            return "converged"
        if give_up and diag.draws >= GIVE_UP_FRACTION * budget and spread_holds_back(idata, budget):
            return "abandoned"
        return None

    return rule


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


def sampled_model(data: ScalingData, spec: ModelSpec, estimates: np.ndarray | None = None, *,
                  whiten: bool | str = True, fused: bool = True) -> tuple[Any, dict[str, np.ndarray], str | None]:
    """The PyMC model a fit samples, its initial values, and how its family layer is whitened (None: not).

    ``whiten``: whiten a centred family layer of several families (:func:`.parameterisation.family_whitening`):
    True or ``"auto"`` for ``DEFAULT_WHITENING``, or a mode of ``WHITENING_MODES``; False: not.
    ``estimates``: :func:`.initial.family_point_estimates` of ``data`` and ``spec`` when already computed.
    ``fused``: the rows' likelihood as one kernel (:mod:`..model.fused_rows`); False for PyTensor's JAX backend.
    """
    whitening = None
    if whiten and whitens(spec):
        estimates = family_point_estimates(data, spec) if estimates is None else estimates
        whitening = family_whitening(data, spec, estimates, DEFAULT_WHITENING if whiten in (True, "auto") else whiten)
    return (build_model(data, spec, whitening, fused=fused), initial_values(data, spec, estimates, whitening),
            None if whitening is None else whitening["mode"])
