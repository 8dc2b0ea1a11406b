"""Simulation-based calibration of the hierarchical model (Talts et al. 2018).

Repeat: draw the population parameters, family parameters and noise scales from the prior (the
model's own, via PyMC), simulate losses for a fixed design of families, sizes, seeds and checkpoints
(log y = log L(theta_f; N, D) + u_run + e, u ~ N(0, sigma_seed), e ~ N(0, sigma_obs)), fit the same
model with the same priors and sampler settings (compiled once; each simulation's losses, and for a
centred family layer its own whitening, swapped in), and record the rank of each true value among
``L`` thinned posterior draws. If the sampler and the model are right, every rank is uniform on 0..L;
a U shape means posteriors too narrow, a hump too wide, a slope a bias. Every simulation is kept, whatever its
diagnostics (dropping the hard ones would bias the test); their divergences are reported.

>>> res = sbc(design, n_sims=100)          # doctest: +SKIP
>>> uniformity(res.ranks, res.attrs["L"])  # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pymc as pm
from scipy import stats

from ..data import ScalingData
from ..data.synthetic import simulate_family_parameters, simulate_runs
from ..laws import get_law, standardized_inputs
from ..model import ModelSpec, Priors, build_model

#: the scalars whose ranks are tested: population means and spreads, and the two noise scales
NOISE = ("sigma_seed", "sigma_obs")


def default_design(families: int = 3, seed: int = 0) -> ScalingData:
    """A small zoo: ``families`` families x 3 sizes x 2 seeds x 4 checkpoints (losses are placeholders)."""
    rng = np.random.default_rng(seed)
    fams = simulate_family_parameters(families, rng)
    df = simulate_runs(fams, rng, sizes=(5e7, 1.5e8, 4e8), checkpoints=4, seeds=2, sigma_seed=0.01, sigma_obs=0.005)
    return ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run",
                                  seed="seed", source="SBC design")


def _prior_draws(design: ScalingData, spec: ModelSpec, n: int, seed: int) -> dict[str, np.ndarray]:
    model = build_model(design, spec)
    names = [v for v in ("mu", "tau", "theta", "sigma_seed", "sigma_obs") if v in model.named_vars]
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the likelihood is a Potential: ignored here, as intended
        prior = pm.sample_prior_predictive(draws=n, var_names=names, random_seed=seed).prior
    return {k: prior[k].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy() for k in names}


def simulate_losses(design: ScalingData, spec: ModelSpec, theta: np.ndarray, sigma_seed: float, sigma_obs: float,
                    rng: np.random.Generator) -> ScalingData:
    """The design with losses drawn from the model at family parameters ``theta`` (family, param)."""
    law = spec.law_obj
    df = design.frame
    fam = df["family"].map({f: i for i, f in enumerate(spec.families)}).to_numpy()
    z = standardized_inputs(law, {c: df[c].to_numpy(dtype=float) for c in law.inputs}, spec.reference)
    log_mu = law.log_loss({p: theta[fam, k] for k, p in enumerate(law.sampling)}, z, ref=spec.reference)
    runs, run_idx = np.unique(df["run"].to_numpy(), return_inverse=True)
    u = sigma_seed * rng.standard_normal(len(runs))
    y = np.exp(log_mu + u[run_idx] + sigma_obs * rng.standard_normal(len(df)))
    # no re-validation: a prior draw may give losses a user's data never would, and SBC must keep it
    return replace(design, frame=df.assign(loss=y), source="SBC simulation")


def sbc(design: ScalingData | None = None, n_sims: int = 100, *, law: str = "chinchilla", priors: Priors | None = None,
        draws: int = 500, chains: int = 2, thin: int = 10, target_accept: float = 0.98,
        noncentering: dict[str, float] | str | None = None, random_seed: int = 0) -> pd.DataFrame:
    """Run ``n_sims`` simulations; one row each with the rank of every tested scalar, and diagnostics.

    The model is the one :func:`bayes_scaling.fit` samples (same priors, nutpie with the same
    settings, no extrapolation term), compiled once for the design; each simulation swaps in its
    losses (``log_loss_obs``) without recompiling. Ranks are among ``L = draws * chains / thin``
    thinned posterior draws (attrs ``L``, ``names``). ``noncentering`` is :func:`bayes_scaling.fit`'s
    option (a dict of sampling parameters), or ``"all"`` for every sampling parameter non-centred: the
    textbook choice for a few families with little data each, where the family layer is a funnel.
    """
    import arviz as az

    from ..inference.compiled import CompiledModel
    from ..inference.diagnostics import diagnose
    from ..model import POPULATION_VARS

    design = design or default_design()
    lw = get_law(law)
    priors = priors or Priors.default(lw, float(np.median(design.frame["loss"])))
    if noncentering == "all":
        noncentering = {p: 1.0 for p in lw.sampling}
    elif isinstance(noncentering, str):
        raise ValueError(f"noncentering must be 'all', a dict or None, got {noncentering!r}")
    spec = ModelSpec.from_data(design, lw, priors, noncentering=noncentering)
    prior = _prior_draws(design, spec, n_sims, random_seed)  # from the unwhitened model: its prior is generative
    # as fit does, a centred family layer is sampled whitened; numba, whose compiled model takes each
    # simulation's losses (and whitening) through with_data (JAX freezes the data)
    cm = CompiledModel.build(design, spec)
    t0 = time.perf_counter()
    cm.compile("numba")
    compile_seconds = time.perf_counter() - t0
    names = [f"mu[{p}]" for p in lw.sampling] + [f"tau[{p}]" for p in lw.sampling] + list(NOISE)
    rng = np.random.default_rng(random_seed + 1)
    rows = []
    for i in range(n_sims):
        sim = simulate_losses(design, spec, prior["theta"][i], float(prior["sigma_seed"][i]),
                              float(prior["sigma_obs"][i]), rng)
        t0 = time.perf_counter()
        idata = cm.sample_data(sim, seed=random_seed + i, draws=draws, tune=draws, chains=chains,
                               target_accept=target_accept)
        seconds = time.perf_counter() - t0
        post = idata.posterior
        d = diagnose(az.InferenceData(posterior=post, sample_stats=idata.sample_stats), list(POPULATION_VARS), seconds)
        truth = np.concatenate([prior["mu"][i], prior["tau"][i], [prior["sigma_seed"][i], prior["sigma_obs"][i]]])
        stacked = [post[v].stack(s=("chain", "draw")).transpose("s", ...).to_numpy() for v in ("mu", "tau")]
        stacked += [post[v].stack(s=("chain", "draw")).to_numpy()[:, None] for v in NOISE]
        thinned = np.concatenate(stacked, axis=1)[::thin]
        row = {"sim": i, "seconds": seconds, "divergences": d.divergences, "max_rhat": d.max_rhat,
               "min_ess_bulk": d.min_ess_bulk, "median_loss": float(np.median(sim.frame["loss"]))}
        row.update({n: int((thinned[:, k] < truth[k]).sum()) for k, n in enumerate(names)})
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(L=int(np.ceil(draws * chains / thin)), names=names, compile_seconds=compile_seconds,
                     whitened=cm.whitened, design_rows=len(design),
                     families=len(spec.families), noncentred=spec.noncentred,
                     chains=chains, draws=draws, target_accept=target_accept)
    return out


def uniformity(ranks: pd.DataFrame, L: int, names: list[str], bins: int = 10) -> pd.DataFrame:
    """Chi-square test of uniform ranks per scalar (``bins`` equal bins of 0..L); p-values and the statistic."""
    edges = np.linspace(-0.5, L + 0.5, bins + 1)
    rows = []
    for n in names:
        counts, _ = np.histogram(ranks[n].to_numpy(), bins=edges)
        expected = np.full(bins, len(ranks) / bins)
        chi2, p = stats.chisquare(counts, expected)
        rows.append({"parameter": n, "chi2": float(chi2), "df": bins - 1, "p_value": float(p),
                     "mean_rank_fraction": float(ranks[n].mean() / L)})
    return pd.DataFrame(rows)
