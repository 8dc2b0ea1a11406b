"""One NUTS run of a model spec: the sampled model, the stop rule, and the family layer's whitening chosen
from the draws (``whiten="auto"``, :func:`choose_whitening`).

:func:`fit_spec` is what ``bs.fit`` and its calibration fits sample with: it builds the PyMC model
(:class:`.compiled.CompiledModel`), runs NUTS (:func:`.sampling.run_nuts`) with the stop rule of the sampler's settings
(:func:`stop_rule`), checks the draws (:mod:`.diagnostics`) and returns the :class:`.fitted.ScalingFit`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import arviz as az
import numpy as np

from ..data import ScalingData
from ..model import POPULATION_VARS, ModelSpec
from ..model.hierarchical import uses_fused_rows, whitens
from .config import SamplerConfig
from .diagnostics import ESS_MIN, Diagnostics, diagnose, failed_checks, warn_if_problems
from .fitted import ScalingFit, build_idata
from .compiled import CompiledModel
from .initial import family_point_estimates

#: progress of runs at INFO; the command line shows it unless --quiet
log = logging.getLogger("bayes_scaling")


def fit_spec(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str = "fit",
             estimates: np.ndarray | None = None, start: dict | None = None) -> ScalingFit:
    """Sample ``spec``'s model of ``data`` as ``nuts`` says and check the draws; problems are warned once, as
    ``what`` (``"fit"``, ``"extrapolation calibration fit"``). ``estimates``: the families' point estimates
    when already computed (:func:`.initial.family_point_estimates`). ``start``: with ``whiten="auto"``, where a
    fit of a subset of an enclosing fit's rows begins its choices, that fit's own (:func:`inherited_start`)."""
    fused = nuts.fused and nuts.backend != "jax" and uses_fused_rows(spec)
    auto = nuts.whiten == "auto"
    if auto and start:
        nuts = nuts.merged({"target_accept": max(nuts.target_accept, start["target_accept"])})
    if auto and whitens(spec):
        estimates = family_point_estimates(data, spec) if estimates is None else estimates
        idata, info, diag = choose_whitening(data, spec, nuts, what, estimates, fused,
                                             conditional_first=bool(start) and start["whitening"] == "conditional")
    else:
        idata, info, diag = _sample(data, spec, nuts, what, estimates, fused, nuts.whiten,
                                    stop_rule(nuts.until_converged, give_up=False,
                                              diverged=auto and _smaller_step_left(nuts.target_accept)))
        hint = whitening_hint(idata, diag, info["whitened"])
        if hint:
            diag.problems.append(hint)
    if auto and diag.divergences and _smaller_step_left(nuts.target_accept):
        idata, info, diag = smaller_step(data, spec, nuts, what, estimates, fused, (idata, info, diag))
    if auto and start:
        chosen = info.setdefault("parameterisation", _choice_so_far(info, diag))
        chosen["reason"] = f"{start['reason']}; {chosen['reason']}"
    warn_if_problems(diag, what)
    return ScalingFit(build_idata(idata, data, spec, info, diag), spec)


def inherited_start(info: dict) -> dict | None:
    """Where the fits of subsets of a fit's rows (its calibration fits) begin ``whiten="auto"``'s choices: the
    whitening and the step the fit kept (``info``: its ``sampler_info``); None when it kept its first run with the
    fixed whitening or none.

    Their posteriors have the geometry of the fit's, on fewer rows: a population spread that mixed slowly under
    the fixed whitening, or a funnel that diverged at a larger step, does so in them too, and each would otherwise
    sample the runs that showed it again before reaching the run that passes. Their own draws are still checked,
    and they go on from there as any fit does (a smaller step still, the other whitening)."""
    chosen = info.get("parameterisation")
    if not chosen:
        return None
    whitening, target = info.get("whitened"), float(info["target_accept"])
    if whitening != "conditional" and target <= chosen["tried"][0]["target_accept"]:
        return None
    what = " at ".join(x for x in (f"the {whitening} whitening" if whitening else None,
                                   f"target_accept {target:g}") if x)
    return {"whitening": whitening, "target_accept": target,
            "reason": f"started from {what}, which the fit of every row kept"}


def _sample(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str, estimates: np.ndarray | None,
            fused: bool, whiten: bool | str, stop: Any) -> tuple[az.InferenceData, dict, Diagnostics]:
    """One NUTS run of ``spec``'s model whitened as ``whiten`` asks: the draws, the sampler's info, the diagnostics."""
    cm = CompiledModel.build(data, spec, estimates, whiten=whiten, fused=fused)
    whitened = cm.whitened
    extend = stop is not None and nuts.until_converged  # room to go on past the budget (:func:`stop_rule`)
    log.info("sampling %s: %d chains x (%d tuning + up to %d draws%s)%s", what, nuts.chains, nuts.tune, nuts.draws,
             f", {EXTEND_BUDGET * nuts.draws} if on course" if extend else "",
             f", {whitened} whitening" if whitened else "")
    settings = nuts.nuts_settings()
    if extend:
        settings.update(draws=EXTEND_BUDGET * nuts.draws, budget=nuts.draws)
    idata, info = cm.sample(**settings, stop=stop)
    log.info("sampled %s in %.1f s", what, info["sampling_seconds"])
    info["whitened"] = whitened
    info["fused_rows"] = fused
    return idata, info, diagnose(idata, list(POPULATION_VARS), info["sampling_seconds"])


def choose_whitening(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str, estimates: np.ndarray,
                     fused: bool, conditional_first: bool = False) -> tuple[az.InferenceData, dict, Diagnostics]:
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
    ESS check at the whole budget (:func:`spread_holds_back`, :func:`stop_rule`). When the conditional run does not pass every check either, the run
    that fails fewer checks (divergences first) is kept: the fixed one sampled to the whole budget when it had
    been abandoned. ``conditional_first`` (a calibration fit whose enclosing fit kept the conditional whitening,
    :func:`inherited_start`): the conditional whitening first, and the fixed one, sampled to the whole budget,
    only when the conditional run does not pass every check.
    """
    tried: list[dict] = []

    def run(mode: str, give_up: bool) -> tuple[az.InferenceData, dict, Diagnostics]:
        out = _sample(data, spec, nuts, what, estimates, fused, mode,
                      stop_rule(nuts.until_converged, give_up, diverged=_smaller_step_left(nuts.target_accept)))
        tried.append(_tried(*out[1:]))
        return out

    if conditional_first:
        conditional = run("conditional", give_up=False)
        runs = [conditional] if conditional[2].ok else [conditional, run("fixed", give_up=False)]
        chosen = min(runs, key=lambda r: _failures(r[2]))
        reason = ("the conditional whitening" if chosen is conditional else
                  f"the fixed whitening: the conditional whitening failed more checks "
                  f"({'; '.join(conditional[2].problems)})")
        return _chosen(chosen, reason, tried, what)
    fixed = run("fixed", give_up=True)
    # a run stopped at a divergence is judged as the give-up rule judged it, its ESS projected to the budget
    if not (fixed[1].get("stop_reason") == "abandoned"
            or spread_holds_back(fixed[0], nuts.draws if _stopped_diverging(fixed) else None)):
        chosen, reason = fixed, "the fixed whitening: its draws " + (
            "diverged, and the population spread did not mix slowly" if _stopped_diverging(fixed) else
            "passed the R-hat and ESS checks" if _mixed(fixed[2]) else
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
    return _chosen(chosen, reason, tried, what)


def _chosen(chosen: tuple[az.InferenceData, dict, Diagnostics], reason: str, tried: list[dict],
            what: str) -> tuple[az.InferenceData, dict, Diagnostics]:
    """The run kept, its info recording what was chosen, why, and every run tried."""
    idata, info, diag = chosen
    info["parameterisation"] = {"whitening": info["whitened"], "reason": reason, "tried": tried}
    info["sampling_seconds_all_runs"] = round(sum(t["sampling_seconds"] for t in tried), 2)
    log.info("%s: chose %s", what, reason)
    return idata, info, diag


#: ``whiten="auto"``: a run kept with divergent transitions is sampled again at each of these target acceptances
#: above its own in turn (smaller steps), until a run has none. More draws of the same chains keep a divergence
#: (the stop rule is asked of their first draws); a smaller step is the remedy. On the real zoos where the
#: default fit diverged, 0.995 removed every divergence or all but one, and 0.999 the one left
#: (docs/benchmarks.md, "The default fit, cold")
SMALLER_STEPS = (0.995, 0.999)


def smaller_step(data: ScalingData, spec: ModelSpec, nuts: SamplerConfig, what: str,
                 estimates: np.ndarray | None, fused: bool,
                 kept: tuple[az.InferenceData, dict, Diagnostics]) -> tuple[az.InferenceData, dict, Diagnostics]:
    """The kept run diverged: sample the same parameterisation again at each of ``SMALLER_STEPS`` above its
    target acceptance, keeping the run that fails fewer checks (then has fewer divergences), until the kept run
    has no divergence or a smaller step did no better; ``info["parameterisation"]`` records every run and why
    (the model is compiled once: only the step differs)."""
    info = kept[1]
    before = _choice_so_far(info, kept[2])
    reason, tried = before["reason"], list(before["tried"])
    best = None if _stopped_diverging(kept) else kept  # the run to keep: one sampled to its end
    for ta in (t for t in SMALLER_STEPS if t > nuts.target_accept):
        was, diverged = kept[1]["target_accept"], kept[2].divergences
        log.info("%s: %d divergent transitions at target_accept %s; sampling again at %s", what, diverged, was, ta)
        again = _sample(data, spec, nuts.merged({"target_accept": ta}), what, estimates, fused,
                        kept[1]["whitened"] or False,
                        stop_rule(nuts.until_converged, give_up=False, diverged=_smaller_step_left(ta)))
        tried.append(_tried(again[1], again[2]))
        if not _stopped_diverging(again):  # a run that stopped at a divergence goes on to the next step
            if best is not None and min((again, best),
                                        key=lambda r: (*_failures(r[2])[:2], r[2].divergences)) is best:
                reason += (f"; at target_accept {ta} the draws did no better ({'; '.join(again[2].problems)}), so "
                           f"the run at {best[1]['target_accept']} is kept")
                break
            best = again
        reason += f"; then target_accept {ta}, since at {was} the draws had {diverged} divergent transitions"
        kept = again
        if best is again and not again[2].divergences:
            break
    return _chosen(best, reason, tried, what)


def _smaller_step_left(target_accept: float) -> bool:
    """A run at ``target_accept`` that diverges is sampled again at a smaller step (:data:`SMALLER_STEPS`)."""
    return target_accept < SMALLER_STEPS[-1]


def _stopped_diverging(run: tuple[az.InferenceData, dict, Diagnostics]) -> bool:
    """The run stopped at its first divergence (:func:`stop_rule`): a smaller step replaces it."""
    return run[1].get("stop_reason") == "diverged"


def _choice_so_far(info: dict, diag: Diagnostics) -> dict:
    """The parameterisation record of a run (``info["parameterisation"]``), or, for a run sampled without a choice
    (one family, no family layer to whiten), a record of that run alone."""
    return info.get("parameterisation") or {
        "whitening": info["whitened"], "tried": [_tried(info, diag)],
        "reason": f"the {info['whitened']} whitening" if info["whitened"] else "no whitening of the family layer"}


def _tried(info: dict, diag: Diagnostics) -> dict:
    """One run of the parameterisation choice, as the fit records it (``info["parameterisation"]["tried"]``)."""
    return {"whitening": info["whitened"], "target_accept": info["target_accept"], "draws": info["draws"],
            "outcome": _outcome(info, diag), "sampling_seconds": round(info["sampling_seconds"], 2),
            "compile_seconds": round(info["compile_seconds"], 2), "divergences": diag.divergences,
            "min_ess_bulk": round(diag.min_ess_bulk), "min_ess_tail": round(diag.min_ess_tail),
            "max_rhat": round(diag.max_rhat, 4)}


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
    if info.get("stop_reason") == "diverged":
        return (f"stopped after {info['draws']} draws per chain at a divergent transition, which more draws keep: "
                "sampled again with a smaller step")
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


#: ``until_converged``: a run that has not passed the checks at its budget (``draws`` per chain) may go on to
#: this many times the budget, while it has no divergence, R-hat passes and the ESS, grown in proportion to the
#: draws, would pass by then (:func:`on_course`): a fit short of the ESS check by a few hundred draws is not
#: reported unconverged for want of them
EXTEND_BUDGET = 2


def on_course(diag: Diagnostics, draws: int) -> bool:
    """The draws have no divergence (which more draws keep), pass the R-hat check, and would pass the ESS
    checks with ``draws`` per chain (each ESS grown in proportion to the draws)."""
    return not any(failed_checks(diag, ess_min=ESS_MIN * diag.draws / draws).values())


#: ``whiten="auto"`` abandons the fixed whitening no earlier than this fraction of the draws budget: an ESS
#: estimated from fewer draws per chain is too noisy to project
GIVE_UP_FRACTION = 0.25


def stop_rule(until_converged: bool, give_up: bool, diverged: bool = False) -> Any:
    """The rule :func:`.sampling.run_nuts` asks of the draws so far and the draws budget (None: no rule),
    answering ``"converged"``, ``"abandoned"``, ``"diverged"``, ``"budget"`` or None (go on).

    ``until_converged``: ``"converged"`` when the draws pass the R-hat and ESS checks of
    :func:`.diagnostics.diagnose`. Divergences do not keep the sampler going: the rule is asked of the first
    ``n`` draws of every chain for growing ``n``, so a divergence among them stays in every later set and
    more draws cannot remove it. The fit's diagnostics still report it.
    ``give_up``: ``"abandoned"`` when, at ``GIVE_UP_FRACTION`` of the budget or later, the population
    spread alone would still fall short of the ESS check at the whole budget (:func:`spread_holds_back`).
    At the budget, with ``until_converged``, ``"budget"`` unless the draws are on course to pass by
    ``EXTEND_BUDGET`` times the budget (:func:`on_course`): a run that misses the checks only by a little ESS
    goes on, one that would not pass stops there.
    ``diverged`` (a smaller step follows a run that diverges, :func:`smaller_step`): ``"diverged"`` at the first
    divergent transition among the draws, since the run will be sampled again and its later draws cannot
    remove it; with ``give_up``, not before the draws would be asked whether to abandon the run (its draws then
    also choose the whitening). It adds to a rule asked for the other reasons: a run without one samples its
    draws in one call, unpolled (a polled run is read every few seconds, which would double the time of the
    many one-second fits a borrowed prior's calibration makes).
    """
    if not (until_converged or give_up):
        return None

    def rule(idata: az.InferenceData, budget: int) -> str | None:
        diag = diagnose(idata, list(POPULATION_VARS))
        if until_converged and _mixed(diag):
            return "converged"
        judged = diag.draws >= GIVE_UP_FRACTION * budget
        if give_up and judged and spread_holds_back(idata, budget):
            return "abandoned"
        if diverged and diag.divergences and (judged or not give_up):
            return "diverged"
        if until_converged and diag.draws >= budget and not on_course(diag, EXTEND_BUDGET * budget):
            return "budget"
        return None

    return rule
