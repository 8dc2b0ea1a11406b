"""Bayesian model averaging over the components of a mixture population prior.

A mixture prior (``PopulationPrior.from_fit(population="mixture")``) says a new family is like one of the
fitted families (with a loss floor of its own) or a fresh draw from the model's population, each with
prior weight 1/(F+1). With it as the prior the posterior is a mixture too::

    p(theta | y) = sum_c w_c p_c(theta | y),    w_c  proportional to  pi_c Z_c,   Z_c = p(y | component c)

so the new family's data choose which fitted families it resembles. Each component's posterior
``p_c`` is an ordinary borrowed fit (NUTS, that component's draws moment-matched to the prior); its
marginal likelihood ``Z_c`` is estimated by importance sampling from a multivariate t fitted to that
fit's posterior on the unconstrained scale (law parameters, log ``sigma_total``, logit ``seed_share``
and, with OU checkpoint noise, log ``ou_length`` and logit ``ou_share``; the run effects are integrated
out exactly by the model's likelihood). The Pareto k-hat of the importance weights says whether an
estimate can be trusted (> 0.7: not; reported as a sampling problem). The combined fit holds the
components' draws resampled by ``w_c``.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable

import arviz as az
import numpy as np
import xarray as xr
from scipy import stats
from scipy.special import expit, logit, logsumexp

from ..model.distribution import Prior
from ..model.population_prior import PopulationPrior, borrowed_logpdf
from ..model.spec import ModelSpec
from ..predict import DISCREPANCY_SCALARS, discrepancy_arrays, sample_count
from .diagnostics import Diagnostics
from .fitted import ScalingFit, build_idata, run_log_likelihood

#: above this Pareto k-hat an importance-sampling estimate of a component's evidence is unreliable
KHAT_MAX = 0.7
#: proposal draws per component, the t proposal's degrees of freedom and its scale over the posterior's
EVIDENCE_DRAWS = 4000
PROPOSAL_DF = 5.0
PROPOSAL_INFLATE = 1.2
#: components with less posterior weight than this do not enter the combined fit's diagnostics
MIN_REPORTED_WEIGHT = 0.01

log = logging.getLogger("bayes_scaling")


def log_evidence(fit: ScalingFit, random_seed: int = 0, draws: int = EVIDENCE_DRAWS) -> tuple[float, float]:
    """log p(data | the fit's borrowed prior) and the Pareto k-hat of the importance weights.

    ``fit`` is a borrowed fit of one new family (``fit.spec.borrowed``); its posterior draws shape the
    proposal (see the module doc).
    """
    spec, bor, post = fit.spec, fit.spec.borrowed, fit.idata.posterior
    if bor is None or len(spec.families) != 1:
        raise ValueError("log_evidence needs a borrowed fit of one new family")
    n_par = post.sizes["param"]
    scalars: list[tuple[str, Callable, Callable]] = [("sigma_total", np.log, np.exp), ("seed_share", logit, expit)]
    if spec.checkpoint_noise == "ou":
        scalars += [("ou_length", np.log, np.exp), ("ou_share", logit, expit)]
    if spec.likelihood == "student_t":
        scalars += [("nu", np.log, np.exp)]
    theta = post["theta"].to_numpy()[:, :, 0, :].reshape(-1, n_par)
    u = np.column_stack([theta, *(to(post[v].to_numpy().ravel()) for v, to, _ in scalars)])
    rng = np.random.default_rng(random_seed)
    df = PROPOSAL_DF
    q = stats.multivariate_t(loc=u.mean(0), shape=np.cov(u.T) * PROPOSAL_INFLATE**2 * (df - 2) / df, df=df, seed=rng)
    x = q.rvs(draws)
    th = x[:, :n_par]
    val = {v: back(x[:, n_par + i]) for i, (v, _, back) in enumerate(scalars)}
    at = {"theta": (("chain", "draw", "family", "param"), th[None, :, None, :]),
          "sigma_seed": (("chain", "draw"), (val["sigma_total"] * np.sqrt(val["seed_share"]))[None]),
          "sigma_obs": (("chain", "draw"), (val["sigma_total"] * np.sqrt(1 - val["seed_share"]))[None])}
    at.update({v: (("chain", "draw"), val[v][None]) for v in ("ou_length", "ou_share", "nu") if v in val})
    with np.errstate(all="ignore"):
        loglik = run_log_likelihood(xr.Dataset(at, coords={"chain": [0], "draw": np.arange(draws)}),
                                    fit.data, spec).to_numpy()[0].sum(-1)
        log_p = borrowed_logpdf(bor, th)
        pri = spec.priors
        # the model's priors (hierarchical.build_model): borrowed, or for OU noise the fit's own when the source
        # had none
        prior = {"sigma_total": Prior("LogNormal", **dict(zip(("mu", "sigma"), bor["sigma_total_lognormal"]))),
                 "seed_share": Prior("Beta", **dict(zip(("alpha", "beta"), bor["seed_share_beta"]))),
                 "ou_length": (Prior("LogNormal", **dict(zip(("mu", "sigma"), bor["ou_length_lognormal"])))
                               if "ou_length_lognormal" in bor else pri.ou_length),
                 "ou_share": (Prior("Beta", **dict(zip(("alpha", "beta"), bor["ou_share_beta"])))
                              if "ou_share_beta" in bor else pri.ou_share),
                 "nu": pri.nu}
        for v, to, _ in scalars:  # each prior as a density of the unconstrained value: + log |d value / d u|
            z = val[v]
            log_p += prior[v].logpdf(z) + (np.log(z) if to is np.log else np.log(z) + np.log1p(-z))
        log_w = loglik + log_p - q.logpdf(x)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    _, khat = az.psislw(log_w.copy())
    return float(logsumexp(log_w) - np.log(draws)), float(khat)


def fit_mixture(prior: PopulationPrior, fit_component: Callable[[PopulationPrior], ScalingFit],
                random_seed: int = 0, extrapolation_info: dict | None = None) -> ScalingFit:
    """Fit each component of a mixture ``prior`` with ``fit_component`` and average them by evidence.

    Returns one :class:`ScalingFit` whose posterior holds the components' draws in proportion to their
    posterior weights, in the shape of the first component's draws; ``fit.sampler_info["mixture"]`` lists,
    per component, its prior weight, log evidence, k-hat, posterior weight, sampling diagnostics and draws
    per chain kept. The combined diagnostics are those of the
    components that carry at least :data:`MIN_REPORTED_WEIGHT` of the posterior (their divergences summed,
    their worst R-hat and ESS, their problems); an unreliable evidence (k-hat > 0.7) of any component is
    one of its problems. ``extrapolation_info`` is added to the combined fit's ``extrapolation`` record.
    """
    comps = prior.components()
    fits = {}
    for i, (name, sub) in enumerate(comps.items()):
        log.info("mixture component %d of %d: %s", i + 1, len(comps), name)
        fits[name] = fit_component(sub)
    names = list(fits)
    prior_w = np.array([len(comps[n].sigma_seed) for n in names], float)
    prior_w /= prior_w.sum()
    evid = [log_evidence(fits[n], random_seed + i) for i, n in enumerate(names)]
    log_post = np.log(prior_w) + np.array([e[0] for e in evid])
    weights = np.exp(log_post - logsumexp(log_post))
    table = {n: {"prior_weight": float(prior_w[i]), "log_evidence": evid[i][0], "khat": evid[i][1],
                 "weight": float(weights[i]), "divergences": fits[n].diagnostics.divergences,
                 "max_rhat": fits[n].diagnostics.max_rhat, "draws": fits[n].diagnostics.draws}
             for i, n in enumerate(names)}
    first = fits[names[0]]
    spec = copy.deepcopy(first.spec)  # the prior as a whole (its moments), not its first component
    spec.borrowed = {**prior.as_spec_entry(spec.reference), "mixture": list(names)}
    info = {**first.extrapolation, "source": prior.source, **(extrapolation_info or {}),
            "mixture_weights": {n: row["weight"] for n, row in table.items()}}
    return _combine(fits, weights, table, spec, info, np.random.default_rng(random_seed))


def _combine(fits: dict[str, ScalingFit], weights: np.ndarray, table: dict, spec: ModelSpec, extrapolation: dict,
             rng: np.random.Generator) -> ScalingFit:
    """One fit holding the components' draws, ``weights[c]`` of them from component ``c``, in the first
    component's shape (components sampled until converged may have kept different numbers of draws)."""
    names = list(fits)
    first = fits[names[0]]
    shape = (first.idata.posterior.sizes["chain"], first.idata.posterior.sizes["draw"])
    total = shape[0] * shape[1]
    counts = np.floor(weights * total).astype(int)
    counts[np.argsort(weights * total - counts)[::-1][: total - counts.sum()]] += 1  # largest remainders
    parts: dict[str, list[xr.Dataset]] = {"posterior": [], "sample_stats": []}
    for n, c in zip(names, counts):
        if not c:
            continue
        idata = fits[n].idata
        own = sample_count(idata.posterior)  # sampled until converged: its own length
        pick = np.sort(rng.choice(own, c, replace=c > own))
        parts["posterior"].append(_picked(idata.posterior.drop_vars(["natural", "population_natural"]), pick))
        parts["sample_stats"].append(_picked(idata.sample_stats, pick))
    post, stats_ = (_unstack(xr.concat(parts[g], "sample", data_vars="all", coords="minimal", compat="override"),
                             shape) for g in ("posterior", "sample_stats"))
    disc = discrepancy_arrays(post, shape[0] * shape[1])
    post = post.drop_vars(["kappa", "drift", *(name for name, _, _ in DISCREPANCY_SCALARS)], errors="ignore")
    relevant = [n for n, w in zip(names, weights) if w >= MIN_REPORTED_WEIGHT]
    diags = {n: fits[n].diagnostics for n in relevant}
    diag = Diagnostics(divergences=sum(d.divergences for d in diags.values()),
                       max_rhat=max(d.max_rhat for d in diags.values()),
                       min_ess_bulk=min(d.min_ess_bulk for d in diags.values()),
                       min_ess_tail=min(d.min_ess_tail for d in diags.values()), chains=shape[0], draws=shape[1],
                       sampling_seconds=sum(f.diagnostics.sampling_seconds for f in fits.values()))
    for n, d in diags.items():
        diag.problems += [f"mixture component {n} (weight {table[n]['weight']:.2f}): {p}" for p in d.problems]
    diag.problems += [f"mixture component {n}: the importance-sampling estimate of its evidence is unreliable "
                      f"(k-hat {row['khat']:.2f} > {KHAT_MAX}); its weight {row['weight']:.3f} may be off"
                      for n, row in table.items() if row["khat"] > KHAT_MAX]
    info = {**first.sampler_info, "mixture": table}
    fitted = ScalingFit(build_idata(az.InferenceData(posterior=post, sample_stats=stats_), first.data, spec, info,
                                    diag), spec)
    return fitted.with_discrepancy(disc, extrapolation)


def _picked(ds: xr.Dataset, pick: np.ndarray) -> xr.Dataset:
    """The draws ``pick`` (flat chain-major indices) of ``ds``, along one ``sample`` dimension."""
    return ds.stack(sample=("chain", "draw")).drop_vars(["sample", "chain", "draw"]).isel(sample=pick)


def _unstack(ds: xr.Dataset, shape: tuple[int, int]) -> xr.Dataset:
    """(sample, ...) -> (chain, draw, ...) with fresh chain and draw coordinates."""
    out = {}
    for v, da in ds.data_vars.items():
        rest = [d for d in da.dims if d != "sample"]
        arr = da.transpose("sample", *rest).to_numpy().reshape(*shape, *[da.sizes[d] for d in rest])
        out[v] = (("chain", "draw", *rest), arr)
    coords = {k: c for k, c in ds.coords.items() if "sample" not in c.dims}
    return xr.Dataset(out, coords={**coords, "chain": np.arange(shape[0]), "draw": np.arange(shape[1])})
