"""The hierarchical Bayesian scaling-law model in PyMC.

Written out (sampling scale of the law, ``p`` indexes its parameters, ``f`` families, ``j`` runs,
``i`` checkpoints)::

    mu_p        ~ priors.mu[p] (Normal)                     population mean
    tau_p       ~ priors.tau[p]                             family-to-family spread
    Omega       ~ priors.family_correlation (LKJ)           correlation of family deviations
    tau_level   ~ priors.tau_level                          spread of a common loss-level factor
    Sigma       = diag(tau) Omega diag(tau) + tau_level^2 v v'
    theta_f     ~ MvNormal(mu, Sigma)                       family parameters
    sigma_total ~ priors.sigma_total                        total residual sd of log loss
    seed_share  ~ priors.seed_share                         share of its variance due to seeds
    sigma_seed  = sigma_total sqrt(seed_share)              seed noise (run effect scale)
    sigma_obs   = sigma_total sqrt(1 - seed_share)          checkpoint noise
    log y_ij    = log L(theta_f(j); N_j, D_ij) + u_j + e_ij,  u_j ~ N(0, sigma_seed), e_ij ~ N(0, sigma_obs)
    (robust option: the run's noise is scaled by sqrt(w_j), w_j ~ InvGamma(nu/2, nu/2), nu ~ priors.nu)
    (OU option: e_ij = an Ornstein-Uhlenbeck drift along the run in log10 tokens, sd sigma_obs sqrt(ou_share),
     correlation exp(-|dx| / ou_length), plus white jitter of sd sigma_obs sqrt(1 - ou_share);
     ou_length ~ priors.ou_length, ou_share ~ priors.ou_share; see checkpoint_noise.py)

Treatments (``spec.treatments``, e.g. a grown family and its from-scratch twin): a treated family is
not a draw from the population but its twin's parameters plus a shift, the treatment effect::

    theta_g     = theta_twin(g) + shift_g,   shift_g,p ~ priors.treatment[p]
    (a parameter without a treatment prior is not shifted; by default only the data term, log_B_ref and
     log_beta, is)

With a borrowed population prior (one new family), ``mu ~ MvNormal(m, C)`` (for a prior with ``tail_df``, the
multivariate t of the same covariance, ``MvStudentT(df, m, C (df - 2) / df)``) and the noise priors (with OU
noise, ``ou_length`` and ``ou_share`` too when the source fit had them) are the moment-matched population
predictive of another fit (:mod:`.population_prior`).

A centred family layer is sampled whitened by default: ``theta_f = shift_f + W_f u_f`` with each family's
Laplace approximation (``build_model``'s ``whitening``, :func:`_whitened`), the same prior and posterior
in coordinates where each family's strongly correlated parameters are near independent.

Parameters listed in ``spec.noncentering`` are non-centred *given the others* (the exact conditional,
:func:`_block_noncentred`; fully at degree 1, partially at a degree in (0, 1)): the same prior on
``theta``, a geometry without the funnel for a parameter the families' data barely identify. ``fit`` chooses them from the data (:mod:`..inference.parameterisation`).

The run effects ``u_j`` are integrated out exactly (:mod:`.likelihood`); with the normal likelihood and
independent checkpoint noise one kernel computes the rows' part and its gradient (:mod:`.fused_rows`). With a single family the
family layer is dropped (theta = mu): one family carries no information on family-to-family spread.
``v`` (:attr:`Law.level_vector`) is 1 on ``log_E`` and the anchored amplitudes and 0 on the exponents:
moving along it multiplies a family's loss by the same factor at every scale, which is how families
evaluated on different validation sets mostly differ. It is the level factor ``c_f ~ N(0, tau_level)``
of ``theta_f = mu + c_f v + ...`` integrated out. Without it the LKJ prior, which shrinks
correlations towards zero, would have to learn this near-perfect correlation from a handful of
families, and one small model of a new family would move its N-term instead of its level.
Coordinates: ``family`` (``untreated_family`` and ``treated_family`` with treatments), ``param`` (sampling-scale names), ``param_bis`` (its copy for the
correlation matrix), ``run`` and ``obs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..data import ScalingData
from ..laws import standardized_inputs
from .checkpoint_noise import layout as ou_layout
from .checkpoint_noise import run_loglik_pytensor as ou_run_loglik
from .fused_rows import rows_loglik
from .likelihood import run_marginal_loglik
from .population_prior import borrowed_scale
from .distribution import vector_distribution, vector_variable
from .spec import ModelSpec

#: the (position, run) grid arrays of the OU checkpoint noise, in the order its likelihood takes them
OU_GRID = ("row", "gap", "has_prev", "mask")


def model_arrays(data: ScalingData, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Index and input arrays of the data in the spec's family/run order."""
    df = data.frame
    law = spec.law_obj
    fam_idx = pd.Index(spec.families).get_indexer(df["family"])
    run_idx = pd.Index(spec.runs).get_indexer(df["run"])
    if (fam_idx < 0).any() or (run_idx < 0).any():
        raise ValueError("data holds families or runs that the model spec does not know")
    z = standardized_inputs(law, {c: df[c].to_numpy() for c in law.inputs}, spec.reference)
    n_per_run = np.bincount(run_idx, minlength=len(spec.runs)).astype(float)
    # at least two run columns (an empty one adds nothing): a single run's (position, 1) grid would get a
    # static length-1 axis once the data are frozen into the graph (the JAX backend), which the scan rejects
    ou = (ou_layout(run_idx, np.log10(df["tokens"].to_numpy(float)), max(len(spec.runs), 2))
          if spec.checkpoint_noise == "ou" else {})
    return {"family_index": fam_idx, "run_index": run_idx, "log_loss": np.log(df["loss"].to_numpy()),
            "n_per_run": n_per_run, **{f"z_{k}": v for k, v in z.items()}, **{f"ou_{k}": v for k, v in ou.items()}}


def row_residuals(post: Any, data: ScalingData, spec: ModelSpec) -> tuple[np.ndarray, dict]:
    """Each row's log loss minus the law's, for every posterior draw: (chain, draw, row), with the model's
    arrays of ``data`` (row order, run index, checkpoints per run)."""
    law = spec.law_obj
    arr = model_arrays(data, spec)
    theta = post["theta"].to_numpy()  # (C, D, F, P)
    th = theta[:, :, arr["family_index"], :]
    z = {inp: arr[f"z_{inp}"] for inp in law.inputs}
    log_mu = law.log_loss({p: th[..., k] for k, p in enumerate(law.sampling)}, z, ref=spec.reference)
    return arr["log_loss"] - log_mu, arr


def build_model(data: ScalingData, spec: ModelSpec, whitening: dict | None = None, *, fused: bool = True) -> pm.Model:
    """Build the PyMC model of ``data`` as described in the module docstring.

    ``whitening``: the untreated families' map from a sampled ``theta_whitened`` to ``theta``
    (:func:`bayes_scaling.inference.parameterisation.family_whitening`: ``{"mode", "shift", "chol" |
    "hessian"}``; :func:`_whitened`).
    Only a centred family layer of several families is whitened; elsewhere it is ignored. A whitened
    model has no generative prior for ``theta_whitened`` (a flat variable whose prior is a potential),
    so prior sampling (:mod:`..inference.prior_check`, :mod:`..evaluate.sbc`) builds the model without it.

    ``fused`` (default): with Gaussian, independent checkpoint noise, the rows' log density and its gradient
    are one kernel (:mod:`.fused_rows`); False builds the same density from PyTensor's elementwise
    operations (what ``fit`` compiles for the JAX backend, whose XLA fuses them itself; the tests compare the two).
    """
    law = spec.law_obj
    pri = spec.priors
    arr = model_arrays(data, spec)
    params = list(law.sampling)
    treated, untreated = spec.treated, spec.untreated
    coords = {"family": spec.families, "param": params, "param_bis": params, "run": spec.runs,
              "obs": np.arange(len(data))}
    nc = spec.noncentred
    if nc and len(spec.untreated) > 1:
        coords.update(noncentred_param=nc, centred_param=[p for p in params if p not in nc])
    if treated:
        coords.update(untreated_family=untreated, treated_family=treated, treatment_param=treatment_params(spec))
    with pm.Model(coords=coords) as model:
        # every array that depends on the data (and the data-scaled prior location) is a data container, so
        # that a compiled model serves every data set of the same structure (:mod:`..inference.compile_cache`)
        bor = spec.borrowed
        if bor is not None:  # one new family: its parameters get the borrowed population predictive
            mean = pm.Data("borrowed_mean", np.asarray(bor["mean"], float))
            df, scale = borrowed_scale(bor)
            chol = pm.Data("borrowed_chol", np.linalg.cholesky(scale))
            if df is None:
                mu = pm.MvNormal("mu", mu=mean, chol=chol, dims="param")
            else:
                mu = pm.MvStudentT("mu", nu=pm.Data("borrowed_df", df), mu=mean, chol=chol, dims="param")
        else:
            mu = pm.Normal("mu", mu=pm.Data("mu_loc", np.array([pri.mu[p]["mu"] for p in params], float)),
                           sigma=pm.Data("mu_scale", np.array([pri.mu[p]["sigma"] for p in params], float)),
                           dims="param")
        theta_untreated = _population_families(mu, spec, params, untreated,
                                               "family" if not treated else "untreated_family", whitening)
        if treated:  # treated families: their twin's parameters plus a shift (the treatment effect)
            shifted = treatment_params(spec)
            shift_priors = pri.treatment_priors(law)
            free = vector_variable("treatment_shift", [shift_priors[p] for p in shifted],
                                   dims=("treated_family", "treatment_param"))
            shift = pt.set_subtensor(pt.zeros((len(treated), len(params)))[:, [params.index(p) for p in shifted]],
                                     free)
            twin = [untreated.index(spec.treatments[f]) for f in treated]
            stacked = pt.concatenate([theta_untreated, theta_untreated[twin] + shift], axis=0)
            order = [(untreated + treated).index(f) for f in spec.families]
            theta = pm.Deterministic("theta", stacked[order], dims=("family", "param"))
        else:
            theta = theta_untreated
        # total residual sd and the seed share of its variance: with one checkpoint per run only the
        # total is identified, and this keeps the posterior a rectangle instead of a curved ridge
        if bor is not None:
            total = pm.Data("borrowed_sigma_total", np.asarray(bor["sigma_total_lognormal"], float))
            sigma_total = pm.LogNormal("sigma_total", total[0], total[1])
            share = pm.Data("borrowed_seed_share", np.asarray(bor["seed_share_beta"], float))
            seed_share = pm.Beta("seed_share", share[0], share[1])
        else:
            sigma_total = pri.sigma_total.create("sigma_total")
            seed_share = pri.seed_share.create("seed_share")
        sigma_seed = pm.Deterministic("sigma_seed", sigma_total * pt.sqrt(seed_share))
        sigma_obs = pm.Deterministic("sigma_obs", sigma_total * pt.sqrt(1.0 - seed_share))

        fam_idx = pm.Data("family_index", arr["family_index"])
        z_in = {inp: pm.Data(f"z_{inp}", arr[f"z_{inp}"]) for inp in law.inputs}
        # the observations are a data container: a compiled model can be refitted to new losses at the
        # same design without recompiling (nutpie's with_data; simulation-based calibration does)
        log_loss = pm.Data("log_loss_obs", arr["log_loss"], dims="obs")

        # a law that is not a power sum reads the reference scales: data containers too, so a compiled model
        # serves the nested calibration fits, whose data have other scales
        ref_in = None if law.terms else {inp: pm.Data(f"reference_{inp}", np.float64(v))
                                         for inp, v in spec.reference.items()}

        def residual():  # log y - log L per row, for the likelihoods written with PyTensor's operations
            th = theta[fam_idx]
            return log_loss - law.log_loss({p: th[:, k] for k, p in enumerate(params)}, z_in, xp=pt, ref=ref_in)

        if spec.checkpoint_noise == "ou":  # drift + jitter along each run: a Kalman filter (checkpoint_noise.py)
            if bor is not None and "ou_length_lognormal" in bor:  # the source fit's drift, moment-matched
                ln = pm.Data("borrowed_ou_length", np.asarray(bor["ou_length_lognormal"], float))
                length = pm.LogNormal("ou_length", ln[0], ln[1])
                sh = pm.Data("borrowed_ou_share", np.asarray(bor["ou_share_beta"], float))
                ou_share = pm.Beta("ou_share", sh[0], sh[1])
            else:
                length = pri.ou_length.create("ou_length")
                ou_share = pri.ou_share.create("ou_share")
            ll = ou_run_loglik(residual(), *(pm.Data(f"ou_{k}", arr[f"ou_{k}"]) for k in OU_GRID), sigma_seed,
                               sigma_obs, ou_share, length)
        elif fused and uses_fused_rows(spec):  # normal, independent noise: one kernel (fused_rows.py)
            ll = rows_loglik(law, theta, sigma_seed, sigma_obs, log_loss, [z_in[inp] for _, _, inp in law.terms],
                             fam_idx, pm.Data("run_index", arr["run_index"]), pm.Data("n_per_run", arr["n_per_run"]))
        else:  # independent checkpoint noise: each run's residual sums (likelihood.py)
            idx = pm.Data("run_index", arr["run_index"])
            n_per_run = pm.Data("n_per_run", arr["n_per_run"])
            zeros = pt.zeros(n_per_run.shape[0])  # one sum per run
            nu = pri.nu.create("nu") if spec.likelihood == "student_t" else None
            resid = residual()
            ll = run_marginal_loglik(pt.inc_subtensor(zeros[idx], resid), pt.inc_subtensor(zeros[idx], resid**2),
                                     n_per_run, sigma_seed, sigma_obs, xp=pt, nu=nu)
        pm.Potential("log_likelihood_runs", ll.sum())
    return model


def uses_fused_rows(spec: ModelSpec) -> bool:
    """Whether ``build_model(fused=True)`` computes the rows with :mod:`.fused_rows` (normal, independent noise,
    a power-sum law)."""
    return spec.likelihood == "normal" and spec.checkpoint_noise == "independent" and bool(spec.law_obj.terms)


def treatment_params(spec: ModelSpec) -> list[str]:
    """The sampling parameters a treatment shifts (treatment scale > 0)."""
    shifted = spec.priors.treatment_priors(spec.law_obj)
    return [p for p in spec.law_obj.sampling if p in shifted]


def whitens(spec: ModelSpec) -> bool:
    """Whether :func:`build_model` whitens the family layer when given a whitening (centred, several families)."""
    return len(spec.untreated) > 1 and not spec.noncentred


def _population_families(mu, spec: ModelSpec, params: list[str], families: list[str], dim: str,
                         whitening: dict | None = None):
    """Parameters of ``families`` drawn from the population (theta = mu when there is only one)."""
    pri = spec.priors
    law = spec.law_obj
    n_par = len(params)
    name = "theta" if dim == "family" else "theta_untreated"
    if len(families) == 1:
        return pm.Deterministic(name, mu[None, :], dims=(dim, "param")) if dim == "family" else mu[None, :]
    chol, corr, tau = pm.LKJCholeskyCov(
        "family_chol", n=n_par, eta=pri.family_correlation["eta"],
        sd_dist=vector_distribution([pri.tau[p] for p in params], n_par),
        compute_corr=True, store_in_trace=False)
    pm.Deterministic("tau", tau, dims="param")
    pm.Deterministic("corr", corr, dims=("param", "param_bis"))
    v = law.level_vector
    if v.any():  # a law without a level direction has no level factor
        tau_level = pri.tau_level.create("tau_level")
        chol = pt.linalg.cholesky(chol @ chol.T + tau_level**2 * np.outer(v, v))
    nc = [params.index(p) for p in spec.noncentred]
    if not nc and whitening is not None:
        return _whitened(mu, chol, whitening, name, dim)
    if not nc:
        return pm.MvNormal(name, mu=mu, chol=chol, dims=(dim, "param"))
    return _block_noncentred(mu, chol, params, nc, name, dim, [spec.noncentering[params[k]] for k in nc])


#: the data containers of a whitening's arrays (:func:`bayes_scaling.inference.parameterisation.family_whitening`)
WHITENING_DATA = {"shift": "whiten_shift", "chol": "whiten_chol", "hessian": "whiten_hessian"}


def whitening_updates(whitening: dict) -> dict[str, np.ndarray]:
    """A whitening's arrays by data container name: what ``with_data`` swaps in for another data set."""
    return {WHITENING_DATA[k]: np.asarray(v, float) for k, v in whitening.items() if k in WHITENING_DATA}


def _whitened(mu, chol, whitening: dict, name: str, dim: str):
    """``theta`` per family as an affine map of a sampled ``u``, with ``theta``'s own prior MvNormal(mu, chol).

    ``"fixed"``: ``theta = shift + W_f u`` with constant coefficients, so the Jacobian is constant and
    the posterior of ``theta`` is exactly the centred model's. ``"conditional"``: the map of
    :func:`bayes_scaling.inference.parameterisation.family_whitening` that combines the family's data
    Hessian with the sampled population prior (:func:`_conditional_map`); its log Jacobian is a
    potential. ``u = 0`` is the family estimates (fixed) or their combination with the population
    (conditional). The coefficients are data containers (:mod:`..inference.compile_cache`).
    """
    data = {n: pm.Data(n, v) for n, v in whitening_updates(whitening).items()}
    u = pm.Flat(f"{name}_whitened", dims=(dim, "param"))
    if whitening["mode"] == "conditional":
        n_par = np.shape(whitening["shift"])[1]
        value, log_jacobian = _conditional_map(data["whiten_shift"], data["whiten_hessian"], mu, chol, u, n_par)
        pm.Potential(f"{name}_jacobian", log_jacobian)
    else:
        # an elementwise product and sum, not a batched matmul, which numba compiled more slowly (exploratory)
        value = data["whiten_shift"] + (data["whiten_chol"] * u[:, None, :]).sum(axis=-1)
    theta = pm.Deterministic(name, value, dims=(dim, "param"))
    pm.Potential(f"{name}_prior", pm.logp(pm.MvNormal.dist(mu=mu, chol=chol), theta).sum())
    return theta


def _conditional_map(shift, hess, mu, chol, u, n: int):
    """``theta_f = m_f + R_f^-T u_f`` and its log Jacobian, ``R_f R_f' = H_f + Sigma^-1`` (Sigma = chol chol').

    The batched ``P x P`` Cholesky factor and triangular solves are unrolled over the (few) parameters,
    each step a vector over families. numba compiles this graph far longer than the fixed map's (a batched
    ``pt.linalg`` version longer still), which is why ``whiten="auto"`` samples it only when the fixed map's
    draws show the population spread mixing slowly (:func:`..inference.run.choose_whitening`).
    """
    inv_chol = pt.linalg.solve_triangular(chol, pt.eye(n), lower=True)
    prec = inv_chol.T @ inv_chol
    a = hess + prec[None, :, :]
    b = (hess * shift[:, None, :]).sum(axis=-1) + (prec @ mu)[None, :]
    r = [[None] * n for _ in range(n)]
    for j in range(n):
        r[j][j] = pt.sqrt(a[:, j, j] - sum((r[j][k] ** 2 for k in range(j)), pt.zeros_like(a[:, j, j])))
        for i in range(j + 1, n):
            r[i][j] = (a[:, i, j] - sum((r[i][k] * r[j][k] for k in range(j)), pt.zeros_like(a[:, i, j]))) / r[j][j]
    c = []
    for i in range(n):  # R c = b
        c.append((b[:, i] - sum((r[i][k] * c[k] for k in range(i)), pt.zeros_like(b[:, i]))) / r[i][i])
    x = [None] * n
    for i in reversed(range(n)):  # R' x = c + u
        x[i] = (c[i] + u[:, i] - sum((r[k][i] * x[k] for k in range(i + 1, n)), pt.zeros_like(b[:, i]))) / r[i][i]
    log_jacobian = -sum(pt.log(r[j][j]).sum() for j in range(n))
    return pt.stack(x, axis=1), log_jacobian


def _block_noncentred(mu, chol, params: list[str], nc: list[int], name: str, dim: str, degree: list[float]):
    """Exact mixed parameterisation: the parameters ``nc`` non-centred given the others, the rest centred.

    With ``Sigma`` reordered as (centred c, non-centred n) and its Cholesky factor ``L``, the centred
    block is ``theta_c ~ MvNormal(mu_c, L_cc)`` and the non-centred one is its exact conditional
    ``theta_n = mu_n + L_nc z_c + L_nn eta`` with ``z_c = L_cc^-1 (theta_c - mu_c)`` and
    ``eta ~ Normal(0, 1)``. ``eta`` (coordinate ``noncentred_param``) is a priori independent of the
    spread parameters, which removes the funnel of a parameter the family's data barely identify
    (typically the N-exponent) while the well-identified ones stay centred.

    ``degree`` (one per non-centred parameter, in (0, 1]) below 1 makes the non-centring partial
    (Papaspiliopoulos, Roberts & Sköld 2003; Gorinova, Moore & Hoffman 2020): with ``d = diag(L_nn)``
    and ``lam = 1 - degree``, the sampled variable is ``eta_tilde = d^lam * eta ~ Normal(0, d^lam)`` and
    ``theta_n = mu_n + L_nc z_c + L_nn (eta_tilde / d^lam)``, the same distribution of ``theta``. Degree 1
    is the non-centred ``eta``; towards 0 the sampled deviation scales with the spread as a centred one
    does. A parameter the data identify about as well as the population spread samples best in between.
    """
    n_par = len(params)
    cc = [k for k in range(n_par) if k not in nc]
    order = cc + nc
    full_chol = pt.linalg.cholesky((chol @ chol.T)[order][:, order])
    k = len(cc)
    l_nn = full_chol[k:, k:]
    lam = 1.0 - np.asarray(degree, float)
    if np.all(lam == 0.0):
        eta = pm.Normal("eta", 0.0, 1.0, dims=(dim, "noncentred_param"))
    else:  # partial: eta_tilde ~ Normal(0, d^lam), eta = eta_tilde / d^lam
        d_lam = pt.diagonal(l_nn) ** lam
        eta = pm.Normal("eta", 0.0, d_lam, dims=(dim, "noncentred_param")) / d_lam
    if k:
        l_cc = full_chol[:k, :k]
        theta_c = pm.MvNormal(f"{name}_centred", mu=mu[cc], chol=l_cc, dims=(dim, "centred_param"))
        z_c = pt.linalg.solve_triangular(l_cc, (theta_c - mu[cc][None, :]).T, lower=True)  # (centred, family)
        theta_n = mu[nc][None, :] + (full_chol[k:, :k] @ z_c).T + eta @ l_nn.T
        stacked = pt.concatenate([theta_c, theta_n], axis=1)
    else:
        stacked = mu[None, :] + eta @ full_chol.T
    back = [order.index(j) for j in range(n_par)]
    return pm.Deterministic(name, stacked[:, back], dims=(dim, "param"))


#: variables whose convergence is required (population parameters and noise scales)
POPULATION_VARS = ("mu", "tau", "tau_level", "sigma_total", "seed_share", "sigma_seed", "sigma_obs", "nu",
                   "ou_length", "ou_share", "treatment_shift")
