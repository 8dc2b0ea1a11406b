"""The extrapolation discrepancy, learned by nested leave-out inside the training data.

A law fitted on small runs is used far beyond them, where its form, not only its parameters, may be
wrong. The predictive (:mod:`bayes_scaling.predict`) therefore scales the reducible loss ``L - E`` by
``exp(delta)``::

    delta = sum_d g(Delta_d) (drift_d + kappa_d z_fd),   g(x) = sign(x) |x|^growth,
    z_fd  = sqrt(shared) z_d + sqrt(1 - shared) z'_fd

with ``Delta`` the distance of the point from its family's data in each direction ``d``
(:mod:`bayes_scaling.data.extent`: compute beyond the largest run, parameters beyond the largest
model, tokens per parameter outside the trained range, and, where the data count unique tokens, epochs
beyond the most repeated run), ``kappa_d`` the sd and ``drift_d`` the systematic bias of the log
reducible loss per unit distance, ``growth`` how the error grows with distance, and ``shared`` the share
of it common to every family of the fit (their laws err together: the same optimiser, tokenizer or
evaluation) beside each family's own ``z'_fd``. Acting on the reducible part keeps every draw of the
expected loss above the family's irreducible loss E. With ``ModelConfig(discrepancy_scale="loss")`` delta is a
relative error of the whole loss, learned from the held-out runs' log-loss residuals as they are, and still kept
above E (:func:`bayes_scaling.predict.with_discrepancy`).

All of them are learned from the fit's own data by **nested leave-out** (:func:`holdout_splits`):

1. For each direction and depth ``k`` (1, 2, ...), hold out in each family the runs at its ``k``
   largest levels: compute budgets (a run's largest compute), model sizes, tokens-per-parameter
   multipliers (a run's final D / N), or epochs (a run's final D / U). Levels closer than
   :data:`~bayes_scaling.data.extent.LEVEL_GAP` decades are one level. A family with too few levels keeps all
   its runs; a family of one compute level holds out its late checkpoints instead (compute direction, depth 1).
2. Fit the same hierarchical model to the rest (a shorter NUTS run, checked like any fit).
3. For each held-out run take the mean residual of its log loss against the inner predictive, the
   inner predictive variance, the reducible share ``1 - E / L`` (a residual on the log loss is
   ``(1 - E / L)`` times one on the log reducible loss; 1 for a discrepancy of the whole loss) and its
   distance from the inner fit's data.
4. Sample the joint posterior of ``(kappa_d, drift_d, growth, shared)`` given every split's residuals
   (each split a multivariate normal over its held-out runs: runs of one family share their ``z``, all
   runs share the common part) with an affine-invariant ensemble sampler (:func:`discrepancy_posterior`).
5. With ``ModelConfig(discrepancy_tails="choose")``, choose the discrepancy's tails (:func:`choose_tails`): with
   the variance those draws set, the shape that best predicts the held-out runs, normal or a variance-gamma
   (a narrow centre and long tails, for families that mostly extrapolate alike and a few far otherwise).

A direction no split reaches keeps its priors, and the fit's notes say so. Data without unique tokens
cannot leave their data in epochs: their discrepancy there is zero, and the sampler runs over the other
directions alone.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from ..data import ScalingData
from ..data.extent import DIRECTIONS, directions_of, distance_columns, distances, levels, log_epochs, per_direction
from ..errors import SamplingWarning
from ..model import PopulationPrior, Prior, Priors
from ..model.config import DEFAULT_DEPTHS, ModelConfig
from ..model.spec import ModelSpec, checkpoint_noise_for
from ..predict import DISCREPANCY_TAILS, tail_weights

log = logging.getLogger("bayes_scaling")

#: the run key of each direction: a run's level in it
_RUN_KEY = {"flops": "log_flops", "params": "log_params", "ratio": "log_ratio", "epochs": "log_epochs"}


@dataclass
class Holdout:
    """One nested leave-out split: the rows held out, in which direction, how deep."""

    direction: str
    depth: int
    held: np.ndarray
    description: str


def _run_keys(data: ScalingData) -> pd.DataFrame:
    df = data.frame
    le = log_epochs(df)
    g = df.assign(log_flops=np.log10(df["flops"]), log_params=np.log10(df["params"]),
                  log_ratio=np.log10(df["tokens"] / df["params"]),
                  log_epochs=np.zeros(len(df)) if le is None else le).groupby("run", sort=False)
    return pd.DataFrame({"family": g["family"].first(), "log_flops": g["log_flops"].max(),
                         "log_params": g["log_params"].first(), "log_ratio": g["log_ratio"].max(),
                         "log_epochs": g["log_epochs"].max()})


def holdout_splits(data: ScalingData, depths: tuple[int, ...] = DEFAULT_DEPTHS,
                   directions: tuple[str, ...] = DIRECTIONS) -> list[Holdout]:
    """The nested leave-out splits of ``data``: one per direction (of ``directions``) and depth that holds
    something out in some family, splits identical to an earlier one dropped."""
    df = data.frame
    runs = _run_keys(data)
    row_run = df["run"].to_numpy()
    splits: list[Holdout] = []
    seen: list[np.ndarray] = []
    for direction in directions:
        for depth in depths:
            held_runs: set = set()
            late_rows = np.zeros(len(df), dtype=bool)
            for fam, part in runs.groupby("family", sort=False):
                level = levels(part[_RUN_KEY[direction]].to_numpy())
                if level.max() >= depth:  # the family keeps at least one level
                    held_runs.update(part.index[level < depth])
                elif direction == "flops" and depth == 1:
                    late_rows |= _late_checkpoints(df, fam)
            held = np.isin(row_run, list(held_runs)) | late_rows
            if not held.any() or held.all() or any(np.array_equal(held, s) for s in seen):
                continue
            seen.append(held)
            what = {"flops": "compute budgets", "params": "model sizes", "ratio": "tokens-per-parameter levels",
                    "epochs": "epoch counts"}
            splits.append(Holdout(direction, depth, held,
                                  f"{direction}, depth {depth}: held out each family's {depth} largest "
                                  f"{what[direction]} ({int(held.sum())} of {len(held)} rows)"))
    return splits


def _late_checkpoints(df: pd.DataFrame, family: str, decades: float = 0.3) -> np.ndarray:
    """Rows of ``family`` within ``decades`` of its largest compute, when each of its runs keeps two earlier
    checkpoints (a family of one compute level: the late part of its curves)."""
    in_fam = (df["family"] == family).to_numpy()
    lc = np.log10(df["flops"].to_numpy())
    late = in_fam & (lc > lc[in_fam].max() - decades)
    left = pd.Series((~late)[in_fam]).groupby(df.loc[in_fam, "run"].to_numpy()).sum()
    return late if (left >= 2).all() and late.any() else np.zeros(len(df), dtype=bool)


@dataclass
class HeldOut:
    """The held-out runs of one split, aggregated per run (their checkpoints share the run's seed effect)."""

    resid: np.ndarray  # mean residual of log loss against the inner predictive mean
    var: np.ndarray  # mean inner predictive variance of log loss
    share: np.ndarray  # reducible share 1 - E / L (converts log reducible loss to log loss)
    dist: np.ndarray  # (run, direction) mean distance from the inner fit's data
    family: np.ndarray  # family code of each run

    def to_dict(self) -> dict[str, list]:
        """The runs as lists (stored with the fit's calibration record)."""
        return {"resid": self.resid.tolist(), "var": self.var.tolist(), "share": self.share.tolist(),
                "dist": self.dist.tolist(), "family": self.family.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> "HeldOut":
        return cls(*(np.asarray(d[k], dtype=float) for k in ("resid", "var", "share")),
                   np.asarray(d["dist"], dtype=float).reshape(len(d["resid"]), -1), np.asarray(d["family"], dtype=int))


def aggregate_runs(run: np.ndarray, family: np.ndarray, resid: np.ndarray, var: np.ndarray, share: np.ndarray,
                   dist: np.ndarray) -> HeldOut:
    """Per-run means of held-out rows."""
    keys, inv = np.unique(np.asarray(run, dtype=str), return_inverse=True)
    inv = inv.ravel()
    count = np.bincount(inv, minlength=len(keys)).astype(float)

    def mean(v: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=v, minlength=len(keys)) / count

    fam_of_run = np.empty(len(keys), dtype=object)
    fam_of_run[inv] = np.asarray(family, dtype=str)
    codes = np.unique(fam_of_run.astype(str), return_inverse=True)[1].ravel()
    return HeldOut(resid=mean(resid), var=mean(var), share=mean(share),
                   dist=np.column_stack([mean(dist[:, d]) for d in range(dist.shape[1])]), family=codes)


#: the hyperparameters a pooled discrepancy adds to the walkers, after (log kappa_d or eta_d, drift_d or xi_d,
#: log growth, logit shared): log of the common scale, of the spread of log kappa across directions, of the
#: drift's scale
POOLED_HYPER = 3


def _unpack(phi: np.ndarray, n_dir: int, priors: Priors, pooled: bool) -> tuple[np.ndarray, ...]:
    """(kappa, drift, growth, shared, log prior density with every Jacobian) of walkers ``phi``.

    Independent: ``phi`` holds (log kappa_d, drift_d, log growth, logit shared), each kappa_d with the prior
    ``priors.kappa`` and each drift_d ``priors.drift``. Pooled (``pooled``), it also holds (log kappa_0, log s,
    log sigma_drift) and the directions share their scale: ``kappa_d = kappa_0 exp(s eta_d)`` with
    ``kappa_0 ~ priors.kappa``, ``s ~ priors.kappa_spread`` and ``eta_d ~ N(0, 1)``, and ``drift_d =
    sigma_drift xi_d`` with ``sigma_drift ~ HalfNormal(priors.drift.scale)`` and ``xi_d ~ N(0, 1)`` (both
    non-centred: no funnel as the spread shrinks).
    """
    a, b = phi[:, :n_dir], phi[:, n_dir:2 * n_dir]
    log_growth, logit_shared = phi[:, 2 * n_dir], phi[:, 2 * n_dir + 1]
    growth, shared = np.exp(log_growth), 1.0 / (1.0 + np.exp(-logit_shared))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lp = priors.growth.logpdf(growth) + log_growth + priors.shared.logpdf(shared) + np.log(shared) + np.log1p(-shared)
        if not pooled:
            kappa, drift = np.exp(a), b
            lp = lp + (priors.kappa.logpdf(kappa) + a).sum(axis=1) + priors.drift.logpdf(drift).sum(axis=1)
        else:
            log_k0, log_s, log_sd = (phi[:, 2 * n_dir + 2 + i] for i in range(POOLED_HYPER))
            k0, s, sd = np.exp(log_k0), np.exp(log_s), np.exp(log_sd)
            kappa, drift = k0[:, None] * np.exp(s[:, None] * a), sd[:, None] * b
            lp = lp + priors.kappa.logpdf(k0) + log_k0 + priors.kappa_spread.logpdf(s) + log_s
            lp = lp + _drift_scale_prior(priors).logpdf(sd) + log_sd - 0.5 * (a**2 + b**2).sum(axis=1)
    return kappa, drift, growth, shared, lp


def _drift_scale_prior(priors: Priors) -> Prior:
    """The prior of the drift's scale the directions share: a HalfNormal of the drift prior's sd."""
    return Prior("HalfNormal", sigma=priors.drift.scale)


def _log_density(phi: np.ndarray, splits: list[HeldOut], priors: Priors, pooled: bool = False,
                 low_rank: bool | None = None) -> np.ndarray:
    """Log posterior density (up to a constant) of walkers ``phi`` (:func:`_unpack`); ``D``, the number of
    directions, is read from the width of ``phi``. Each split's covariance is factored whole, or as the runs'
    variances plus a low-rank factor (``low_rank``; None: whichever is cheaper, the factor when it has fewer
    columns than the split has runs); the two give the same density."""
    n_dir = (phi.shape[1] - 2 - (POOLED_HYPER if pooled else 0)) // 2
    kappa, drift, growth, shared, lp = _unpack(phi, n_dir, priors, pooled)
    for h in splits:
        with np.errstate(over="ignore", invalid="ignore"):  # a walker far out overflows: scored -inf below
            dist = h.dist[:, :n_dir]
            mag = np.abs(dist)[None, :, :] ** growth[:, None, None]  # (W, n, d)
            a = h.share[None, :, None] * np.sign(dist)[None] * mag  # effect on log loss per unit discrepancy
            mean = np.einsum("wnd,wd->wn", a, drift)
            ak = a * kappa[:, None, :]
            fam = np.unique(h.family, return_inverse=True)[1].ravel()
            n_fam, n_run = int(fam.max()) + 1, len(h.var)
            if (n_dir * (n_fam + 1) < n_run) if low_rank is None else low_rank:
                # cov = diag(var) + U U' with U = [sqrt(shared) ak, sqrt(1 - shared) ak of each family apart]: a
                # low-rank factor, cheaper than the dense matrix's Cholesky factor when there are many runs
                own = np.zeros((len(phi), n_run, n_fam, n_dir))
                own[:, np.arange(n_run), fam, :] = ak
                u = np.concatenate([np.sqrt(shared)[:, None, None] * ak,
                                    np.sqrt(1.0 - shared)[:, None, None] * own.reshape(len(phi), n_run, -1)], axis=2)
                lp = lp + _factor_mvn_logpdf(h.resid[None, :] - mean, h.var, u)
                continue
            same = (fam[:, None] == fam[None, :]).astype(float)
            corr = shared[:, None, None] + (1.0 - shared)[:, None, None] * same[None]
            cov = (ak @ ak.transpose(0, 2, 1)) * corr
            cov[:, np.arange(n_run), np.arange(n_run)] += h.var[None, :]
        lp = lp + _mvn_logpdf(h.resid[None, :] - mean, cov)
    return np.where(np.isfinite(lp), lp, -np.inf)


def _walker_logpdf(score: Callable[..., np.ndarray], ok: np.ndarray, *per_walker: np.ndarray) -> np.ndarray:
    """``score`` of the walkers ``ok`` marks, given their slices of ``per_walker``; -inf for the others and for
    any whose matrix is not positive definite (a proposal far out in the tails: huge kappa overflows). The
    walkers are scored together, or one by one where one bad walker fails the batch."""
    out = np.full(len(ok), -np.inf)
    if not ok.any():
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            out[ok] = score(*(a[ok] for a in per_walker))
        except np.linalg.LinAlgError:
            for i in np.flatnonzero(ok):
                try:
                    out[i] = score(*(a[i:i + 1] for a in per_walker))[0]
                except np.linalg.LinAlgError:
                    pass
    return out


def _factor_mvn_logpdf(r: np.ndarray, var: np.ndarray, u: np.ndarray) -> np.ndarray:
    """log N(r_w | 0, diag(var) + u_w u_w') up to a constant for each walker w (:func:`_low_rank_mvn_logpdf`);
    -inf where ``u_w`` or ``r_w`` is not finite."""
    ok = np.all(np.isfinite(u), axis=(1, 2)) & np.all(np.isfinite(r), axis=1)
    return _walker_logpdf(lambda rr, uu: _low_rank_mvn_logpdf(rr, var, uu), ok, r, u)


def _mvn_logpdf(r: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(r_w | 0, cov_w) up to a constant for each walker w; -inf where ``cov_w`` is not a finite positive
    definite matrix."""
    def dense(rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        chol = np.linalg.cholesky(cc)
        sol = solve_triangular(chol, rr[..., None], lower=True, check_finite=False)[..., 0]
        return -0.5 * (sol**2).sum(axis=1) - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)

    return _walker_logpdf(dense, np.all(np.isfinite(cov), axis=(1, 2)), r, cov)


def discrepancy_posterior(splits: list[HeldOut], priors: Priors, size: int, rng: np.random.Generator, *,
                          n_dir: int = len(DIRECTIONS), pooled: bool = False, walkers: int = 32, steps: int = 1200,
                          burn: int = 400, low_rank: bool | None = None) -> dict[str, np.ndarray]:
    """Draws of the discrepancy's parameters given the held-out runs of every split, in the first ``n_dir``
    directions of :data:`~bayes_scaling.data.extent.DIRECTIONS` (zero in the rest); ``pooled``: the directions
    share their scale (:func:`_unpack`).

    Returns ``kappa``, ``drift`` (size, direction), ``growth`` and ``shared`` (size,). An affine-invariant
    ensemble sampler (Goodman and Weare 2010, the stretch move) on the unconstrained walkers of
    :func:`_unpack`: no step size to tune, and ``walkers`` x ``steps`` evaluations of a density that is
    cheap (one Cholesky factor per split and walker, of the covariance or of its low-rank part: ``low_rank``,
    :func:`_log_density`).
    """
    kappa_scale, drift_scale = priors.kappa.scale, priors.drift.scale
    if pooled:  # (eta_d, xi_d) about 0; the common scales about half their priors' scales
        per_dir = 0.5 * rng.standard_normal((walkers, 2 * n_dir))
        hyper = np.concatenate([np.log(scale * 0.5) + 0.5 * rng.standard_normal((walkers, 1))
                                for scale in (kappa_scale, priors.kappa_spread.scale, drift_scale)], axis=1)
    else:
        per_dir = np.concatenate([np.log(kappa_scale * 0.5) + 0.5 * rng.standard_normal((walkers, n_dir)),
                                  0.1 * drift_scale * rng.standard_normal((walkers, n_dir))], axis=1)
        hyper = np.empty((walkers, 0))
    x = np.concatenate([per_dir, 0.1 * rng.standard_normal((walkers, 1)), 0.5 * rng.standard_normal((walkers, 1)),
                        hyper], axis=1)
    dim = x.shape[1]
    lp = _log_density(x, splits, priors, pooled, low_rank)
    half = walkers // 2
    kept = []
    a = 2.0
    for step in range(steps):
        for first in (True, False):
            move = slice(0, half) if first else slice(half, walkers)
            other = slice(half, walkers) if first else slice(0, half)
            xs, xo = x[move], x[other]
            z = ((a - 1.0) * rng.random(len(xs)) + 1.0) ** 2 / a
            partner = xo[rng.integers(0, len(xo), len(xs))]
            prop = partner + z[:, None] * (xs - partner)
            lp_prop = _log_density(prop, splits, priors, pooled, low_rank)
            accept = np.log(rng.random(len(xs))) < (dim - 1) * np.log(z) + lp_prop - lp[move]
            xs = np.where(accept[:, None], prop, xs)
            x[move] = xs
            lp[move] = np.where(accept, lp_prop, lp[move])
        if step >= burn:
            kept.append(x.copy())
    chain = np.concatenate(kept)
    pick = chain[rng.choice(len(chain), size=size, replace=size > len(chain))]
    kappa, drift, growth, shared, _ = _unpack(pick, n_dir, priors, pooled)
    return {"kappa": per_direction(kappa), "drift": per_direction(drift), "growth": growth, "shared": shared}


#: posterior draws of the discrepancy each candidate of :func:`choose_tails` is scored with
TAILS_SCORE_DRAWS = 2000


def choose_tails(splits: list[HeldOut], draws: dict[str, np.ndarray], n_dir: int,
                 random_seed: int = 0) -> tuple[float, dict[float, float]]:
    """The discrepancy's tails, a gamma shape of :data:`~bayes_scaling.predict.DISCREPANCY_TAILS` (infinite:
    normal), that best predict the held-out runs of ``splits`` given ``draws`` of (kappa, drift, growth, shared);
    and each candidate's score.

    The draws set the discrepancy's variance; the tails set only its shape. With a finite shape a, each family's
    part of the discrepancy and the part common to all families are normals times sqrt(w), w ~ Gamma(a, 1/a)
    (unit mean), as :func:`bayes_scaling.predict.discrepancy` draws them: a narrower centre and longer tails at the
    same variance, for families that mostly extrapolate alike and a few far otherwise. The score is the log
    predictive density of each family's held-out runs in each split (its runs share its w and its z, so they are
    scored together), summed over families and splits, over :data:`TAILS_SCORE_DRAWS` of the draws; every
    candidate uses the same draws and random numbers, and the normal is kept unless a heavier shape scores higher.
    """
    rng = np.random.default_rng(random_seed)
    n = len(draws["growth"])
    pick = rng.choice(n, size=min(n, TAILS_SCORE_DRAWS), replace=False)
    kappa, drift = draws["kappa"][pick, :n_dir], draws["drift"][pick, :n_dir]
    growth, shared = draws["growth"][pick], draws["shared"][pick]
    weight_seed = int(rng.integers(2**31))
    # each family's block in each split: its residuals less the drift, its variances, and the discrepancy's
    # factor at unit variance weight (the candidates only rescale it)
    blocks = []
    for h in splits:
        dist = h.dist[:, :n_dir]
        a = h.share[None, :, None] * np.sign(dist)[None] * np.abs(dist)[None] ** growth[:, None, None]
        for fam in np.unique(h.family):
            own = h.family == fam
            blocks.append((h.resid[own][None, :] - np.einsum("snd,sd->sn", a[:, own, :], drift), h.var[own],
                           a[:, own, :] * kappa[:, None, :]))
    scores = {}
    for tails in DISCREPANCY_TAILS:
        w = tail_weights(np.full(len(pick), tails), (2,), np.random.default_rng(weight_seed))
        root = np.ones(len(pick)) if w is None else np.sqrt(shared * w[:, 0] + (1.0 - shared) * w[:, 1])
        scores[tails] = float(sum(logsumexp(_low_rank_mvn_logpdf(r, var, u * root[:, None, None])) - np.log(len(pick))
                                  for r, var, u in blocks))
    normal = DISCREPANCY_TAILS[0]
    best = max(scores, key=scores.get)
    return (best if scores[best] > scores[normal] else normal), scores


def _low_rank_mvn_logpdf(r: np.ndarray, var: np.ndarray, u: np.ndarray) -> np.ndarray:
    """log N(r_s | 0, diag(var) + u_s u_s') up to a constant for each draw s: r (S, n), var (n,), u (S, n, d) with
    d below n (the directions, or the directions of each family and of all), by the matrix determinant lemma and
    Woodbury's identity (d x d factors, not n x n)."""
    ui = u / var[None, :, None]  # D^-1 u
    cap = np.swapaxes(u, 1, 2) @ ui + np.eye(u.shape[2])[None]  # I + u' D^-1 u
    chol = np.linalg.cholesky(cap)
    proj = np.linalg.solve(chol, np.swapaxes(ui, 1, 2) @ r[..., None])[..., 0]  # L^-1 u' D^-1 r
    quad = np.einsum("sn,sn->s", r, r / var[None, :]) - (proj**2).sum(axis=1)
    logdet = np.log(var).sum() + 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return -0.5 * (quad + logdet)


def prior_draws(priors: Priors, size: int, rng: np.random.Generator, n_dir: int = len(DIRECTIONS),
                pooled: bool = False) -> dict[str, np.ndarray]:
    """Draws of the discrepancy's priors (nothing held out), in the first ``n_dir`` directions (zero in the rest);
    ``pooled``: the directions share their scale (:func:`_unpack`)."""
    if pooled:
        phi = np.concatenate([rng.standard_normal((size, 2 * n_dir)), np.zeros((size, 2)),
                              np.log(np.column_stack([priors.kappa.sample(rng, size),
                                                      priors.kappa_spread.sample(rng, size),
                                                      _drift_scale_prior(priors).sample(rng, size)]))], axis=1)
        kappa, drift = _unpack(phi, n_dir, priors, True)[:2]
    else:
        kappa, drift = priors.kappa.sample(rng, (size, n_dir)), priors.drift.sample(rng, (size, n_dir))
    return {"kappa": per_direction(kappa), "drift": per_direction(drift),
            "growth": priors.growth.sample(rng, size), "shared": priors.shared.sample(rng, size)}


def grid_discrepancy_posterior(resid: np.ndarray, var: np.ndarray, dist: np.ndarray, weight: np.ndarray,
                          kappa_scale: float, drift_scale: float | None, size: int, rng: np.random.Generator,
                          n_grid: int = 241, return_evidence: bool = False):
    """Draws of (kappa, drift) of a discrepancy along one distance, from their grid posterior given held-out
    residuals (the data-mixing law's discrepancy, :mod:`bayes_scaling.mixing.fit`).

    ``r_i ~ Normal(drift * Delta_i, sqrt(v_i + kappa^2 Delta_i^2))`` with weights ``w_i``;
    priors ``kappa ~ HalfNormal(kappa_scale)``, ``drift ~ Normal(0, drift_scale)``;
    ``drift_scale=None``: a centred discrepancy, drift = 0 (for a distance without a direction).
    ``return_evidence``: also return the log marginal likelihood of the residuals (the grid sum of
    likelihood x normalised priors), to compare forms of ``Delta`` on the same residuals.
    """
    pos = dist != 0
    centred = drift_scale is None
    # the grids reach well past the priors and past the steepest residual-per-distance seen
    slope = float(np.max(np.abs(resid[pos]) / np.abs(dist[pos]))) if pos.any() else 0.0
    kappa = np.linspace(0.0, max(10 * kappa_scale, 3 * slope), n_grid)
    if centred:
        drift = np.zeros(1)
    else:
        m_hi = max(5 * drift_scale, 3 * slope)
        drift = np.linspace(-m_hi, m_hi, n_grid)
    total_var = var[None, :] + (kappa[:, None] * dist[None, :]) ** 2  # (K, n)
    logp = np.empty((n_grid, drift.size))
    for j, m in enumerate(drift):
        r = resid - m * dist
        ll = -0.5 * (np.log(2 * np.pi * total_var) + r[None, :] ** 2 / total_var)
        logp[:, j] = (ll * weight[None, :]).sum(axis=1)
    # log prior densities, normalised: HalfNormal 2 / (s sqrt(2 pi)), Normal 1 / (s sqrt(2 pi))
    logp += -0.5 * (kappa[:, None] / kappa_scale) ** 2 + np.log(2.0) - 0.5 * np.log(2 * np.pi) - np.log(kappa_scale)
    log_cell = np.log(kappa[1] - kappa[0])
    if not centred:
        logp += -0.5 * (drift[None, :] / drift_scale) ** 2 - 0.5 * np.log(2 * np.pi) - np.log(drift_scale)
        log_cell += np.log(drift[1] - drift[0])
    top = logp.max()
    p = np.exp(logp - top).ravel()
    idx = rng.choice(p.size, size=size, p=p / p.sum())
    ik, im = np.unravel_index(idx, logp.shape)
    jitter = rng.random((2, size)) - 0.5  # uniform inside each grid cell
    k = np.clip(kappa[ik] + jitter[0] * (kappa[1] - kappa[0]), 0.0, None)
    m = drift[im] if centred else drift[im] + jitter[1] * (drift[1] - drift[0])
    if not return_evidence:
        return k, m
    return k, m, float(top + np.log(p.sum()) + log_cell)


# ---------------------------------------------------------------------------- the policies
#: how the calibration fits are made: a fit of the rows kept, with the model spec of those rows (``fit`` passes
#: its own sampler, shortened unless it samples until converged)
InnerFit = Callable[[ScalingData, ModelSpec], Any]


def discrepancy_draws(cfg: ModelConfig, data: ScalingData, spec: ModelSpec, prior: PopulationPrior | None,
                      n_samples: int, rng: np.random.Generator,
                      inner_fit: InnerFit) -> tuple[dict[str, np.ndarray], dict]:
    """Draws of the discrepancy (``kappa`` and, where learned or borrowed, ``drift``, ``growth``, ``shared``) and
    what was done, by the policy of ``cfg.extrapolation``: None, none; a number, a fixed kappa; ``"learn"``,
    the borrowed prior's discrepancy for a fit that borrows, else the nested leave-out of this module."""
    mode = cfg.extrapolation
    if mode is None:
        return {"kappa": np.zeros((n_samples, len(DIRECTIONS)))}, {"mode": "none"}
    if mode != "learn":
        return {"kappa": np.full(n_samples, float(mode))}, {"mode": "fixed", "kappa": float(mode)}
    if prior is not None:
        pick = rng.integers(0, len(prior.kappa), n_samples)
        draws = {k: v[pick] for k, v in prior.borrowed_discrepancy().items()}
        return draws, {"mode": "borrowed", "source": prior.source, "calibrated": True,
                       "kappa_median": float(np.median(draws["kappa"][:, 0])),
                       "source_drift_median": float(np.median(prior.drift[:, 0])),
                       "note": "the source fit's kappa and |drift| together set this family's discrepancy scale"}
    return _learn_discrepancy(data, spec, inner_fit, cfg.holdout_depths, rng, n_samples,
                              choose=cfg.discrepancy_tails == "choose", pooled=cfg.discrepancy_pooling == "directions",
                              on_loss=cfg.discrepancy_scale == "loss")


def predictive_moments(log_draws: np.ndarray, robust: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centre and variance of predictive log-loss draws (sample, point): their mean and variance, or with
    ``robust`` their median and the variance of a normal of the same interquartile range.

    A Student-t run noise has no finite variance below 2 degrees of freedom and a sample variance set by
    its few largest draws, which would swamp the held-out residuals the discrepancy is learned from: its
    draws take the robust pair, as do the points where any likelihood's draws overflow to infinite loss.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        mean, var = log_draws.mean(axis=0), log_draws.var(axis=0)
    plain = np.isfinite(var) & (not robust)
    if plain.all():
        return mean, var
    q25, q50, q75 = np.quantile(log_draws, [0.25, 0.5, 0.75], axis=0)
    return np.where(plain, mean, q50), np.where(plain, var, ((q75 - q25) / 1.349) ** 2)


def _learn_discrepancy(data: ScalingData, spec: ModelSpec, inner_fit: InnerFit, depths: tuple[int, ...],
                       rng: np.random.Generator, n_samples: int, choose: bool = False,
                       pooled: bool = False, on_loss: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """The discrepancy's draws by nested leave-out (:mod:`.extrapolation`), and what was held out; with
    ``choose``, its tails chosen from the held-out runs (:func:`choose_tails`); ``pooled``: the directions share
    their scale (:func:`_unpack`); ``on_loss``: a relative error of the whole loss, not of the reducible loss."""
    info: dict[str, Any] = {"mode": "learn", "prior": str(spec.priors.kappa), "drift_prior": str(spec.priors.drift),
                            "depths": list(depths), "splits": []}
    active = directions_of(data.frame)
    info["directions"] = list(active)
    splits = holdout_splits(data, depths, active)
    if not splits:
        info["calibrated"] = False
        info["holdout"] = "nothing could be held out"
        info["note"] = ("nothing could be held out (no family has two levels of compute, size, tokens per "
                        "parameter or epochs, nor a curve to cut); the discrepancy keeps its priors")
        info["scale"] = "loss" if on_loss else "reducible"
        return {**prior_draws(spec.priors, n_samples, rng, len(active), pooled),
                "on_loss": np.full(n_samples, float(on_loss))}, info
    held_out = []
    for i, split in enumerate(splits):
        log.info("calibration fit %d of %d: %s", i + 1, len(splits), split.description)
        held_run, record = _held_out_residuals(data, spec, inner_fit, split, rng)
        info["splits"].append(record)
        if held_run is not None:
            held_out.append(held_run)
    info["holdout"] = "; ".join(r["description"] for r in info["splits"])
    draws = _posterior_of_held_out(held_out, active, spec.priors, n_samples, rng, choose, pooled, on_loss, info)
    unconverged = [f"{r['direction']} depth {r['depth']}: {r['inner_diagnostics']['problems'][0]}"
                   for r in info["splits"] if r.get("inner_diagnostics", {}).get("problems")]
    if unconverged:  # said once for all the calibration fits; the draws of kappa rest on them
        info["inner_problems"] = unconverged
        warnings.warn(f"{len(unconverged)} of {len(info['splits'])} extrapolation calibration fits did not pass the "
                      f"convergence checks ({'; '.join(unconverged)}); the discrepancy learned from them is "
                      "less certain than it looks: they sample until they pass within the fit's draws (500 each "
                      "without until_converged), so raise "
                      "them (sampler={'draws': 4000}) where ESS falls short, or the target acceptance "
                      "(sampler={'target_accept': 0.99}) where they diverge", SamplingWarning,
                      stacklevel=5)  # at fit's caller
    return draws, info


def _posterior_of_held_out(held_out: list[HeldOut], active: tuple[str, ...], priors: Priors, n_samples: int,
                           rng: np.random.Generator, choose: bool, pooled: bool, on_loss: bool,
                           info: dict) -> dict[str, np.ndarray]:
    """The discrepancy's draws given the held-out runs of the calibration fits (its priors where there are
    none), with ``info`` completed: the directions reached, each direction's kappa and drift, the tails chosen.
    ``on_loss``: the discrepancy is a relative error of the whole loss, so a held-out run's log-loss residual
    measures it as it is, whatever the run's reducible share."""
    reached = [d for i, d in enumerate(active) if any(np.any(h.dist[:, i] != 0) for h in held_out)]
    info["directions_calibrated"] = reached
    info["calibrated"] = bool(reached)
    info["pooling"] = "directions" if pooled else "none"
    info["scale"] = "loss" if on_loss else "reducible"
    if on_loss:
        held_out = [replace(h, share=np.ones_like(h.share)) for h in held_out]
    if held_out:
        draws = discrepancy_posterior(held_out, priors, n_samples, rng, n_dir=len(active), pooled=pooled)
        if choose:
            tails, scores = choose_tails(held_out, draws, len(active), int(rng.integers(2**31)))
            draws["tails"] = np.full(n_samples, tails)
            info["tails"] = None if np.isinf(tails) else tails
            info["tails_scores"] = {("normal" if np.isinf(a) else f"{a:g}"): v for a, v in scores.items()}
    else:
        draws = prior_draws(priors, n_samples, rng, len(active), pooled)
    draws["on_loss"] = np.full(n_samples, float(on_loss))
    for i, d in enumerate(active):
        for name in ("kappa", "drift"):
            v = draws[name][:, i]
            info[f"{name}_{d}"] = {"median": float(np.median(v)), "q05": float(np.quantile(v, 0.05)),
                                   "q95": float(np.quantile(v, 0.95))}
    for name in ("growth", "shared"):
        info[f"{name}_median"] = float(np.median(draws[name]))
    info["kappa_median"], info["drift_median"] = info["kappa_flops"]["median"], info["drift_flops"]["median"]
    missing = [d for d in active if d not in reached]
    if missing:
        info["note"] = (f"no held-out run lay beyond the rest in {', '.join(missing)}: the discrepancy keeps its "
                        "prior there")
    return draws


def relearned(info: dict, priors: Priors, n_samples: int, rng: np.random.Generator, *,
              pooled: bool, choose: bool = False, on_loss: bool | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The discrepancy of a fit that learned it (``info``: its ``fit.extrapolation``) learned again from the same
    calibration fits' held-out runs, with other choices (``pooled``, ``choose``, ``on_loss``: of the whole loss or
    the reducible loss; None: as the fit learned it): its draws and record."""
    if info.get("mode") != "learn":
        raise ValueError(f"only a learned discrepancy can be learned again; this fit's is {info.get('mode')!r}")
    held_out = [HeldOut.from_dict(r["held_runs"]) for r in info["splits"] if "held_runs" in r]
    keep = ("mode", "prior", "drift_prior", "depths", "directions", "splits", "holdout", "inner_problems")
    out = {k: info[k] for k in keep if k in info}
    if on_loss is None:
        on_loss = info.get("scale") == "loss"
    draws = _posterior_of_held_out(held_out, tuple(info["directions"]), priors, n_samples, rng, choose, pooled,
                                   on_loss, out)
    return draws, out


def _held_out_residuals(data: ScalingData, spec: ModelSpec, inner_fit: InnerFit, split: Holdout,
                        rng: np.random.Generator) -> tuple[HeldOut | None, dict]:
    """Fit the rows ``split`` keeps, predict those it holds out; their per-run residuals and a record."""
    train = data.subset(~split.held, name="nested_leave_out", reason=split.description)
    inner_spec = ModelSpec.from_data(train, spec.law_obj, spec.priors, likelihood=spec.likelihood,
                                     noncentering=spec.noncentering,
                                     checkpoint_noise=checkpoint_noise_for(spec.checkpoint_noise, train),
                                     treatments={g: t for g, t in spec.treatments.items()
                                                 if g in train.families and t in train.families})
    record: dict[str, Any] = {"direction": split.direction, "depth": split.depth, "description": split.description,
                              "heldout_rows": int(split.held.sum())}
    if inner_spec.families != spec.families:  # a family would vanish: its runs cannot be predicted as its own
        record["skipped"] = "a family would lose every run"
        return None, record
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # the inner fit's diagnostics are stored, not shouted
        inner = inner_fit(train, inner_spec)
    test = data.frame.loc[split.held]
    cols = distance_columns(test)
    fam = test["family"].to_numpy().astype(str)
    pred = inner.predict(family=fam, params=cols["params"], tokens=cols["tokens"], flops=cols["flops"],
                         inputs={c: test[c].to_numpy() for c in inner.law.further_inputs},
                         keep_draws=True, random_seed=int(rng.integers(2**31)))
    log_draws = np.log(pred["run_loss"].to_numpy())
    centre, var = predictive_moments(log_draws, robust=inner_spec.likelihood == "student_t")
    resid = np.log(test["loss"].to_numpy()) - centre
    if inner.law.irreducible:
        e_median = (inner.idata.posterior["natural"].sel(law_param=inner.law.irreducible)
                    .median(("chain", "draw")).to_series())
        floor = e_median.reindex(fam).to_numpy()
    else:
        floor = np.zeros(len(fam))
    share = np.clip(1.0 - floor / np.exp(centre), 0.05, 1.0)
    dist = distances(inner_spec.extents, fam, cols)
    held = aggregate_runs(test["run"].to_numpy(), fam, resid, var, share, dist)
    record.update(heldout_runs=int(len(held.resid)), held_runs=held.to_dict(),
                  max_distance={d: float(np.abs(dist[:, i]).max()) for i, d in enumerate(directions_of(test))},
                  heldout_are=float(np.mean(np.abs(np.expm1(-resid)))),
                  heldout_z_rms=float(np.sqrt(np.mean(resid**2 / var))),
                  inner_diagnostics=inner.diagnostics.to_dict(), inner_sampling=_sampled_with(inner.sampler_info))
    return held, record


def _sampled_with(info: dict) -> dict:
    """How a calibration fit was sampled: its whitening, its step (target acceptance) and, where chosen, why."""
    return {"whitening": info.get("whitened"), "target_accept": info.get("target_accept"),
            "reason": (info.get("parameterisation") or {}).get("reason")}
