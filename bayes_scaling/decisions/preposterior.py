"""Preposterior simulation: how much a run not yet trained would narrow a target's predictive.

The state is one family's current uncertainty as ``S`` draws (:class:`~bayes_scaling.model.draws.LawDraws`): its law
parameters in natural units, the seed and checkpoint noise scales, and the extrapolation
discrepancy. A candidate run (N, D) evaluated at ``K`` checkpoints is **fantasised** ``J`` times: pick
a draw ``s_j`` as the truth, simulate the run's checkpoint log losses with one shared seed deviation
``u ~ N(0, sigma_seed)`` and checkpoint noise ``e_k ~ N(0, sigma_obs)`` (the model's likelihood; when
the draws come from a fit with ``checkpoint_noise="ou"``, the checkpoint noise drifts along the run as
that model says, :func:`bayes_scaling.model.checkpoint_noise.run_covariance`), then update on the
fantasy in one of two ways and read off the target's predictive:

:class:`LaplacePreposterior` (the default) **refits** each fantasy: the current uncertainty as a
Gaussian on the law's sampling scale (the form a borrowed prior takes in :func:`bayes_scaling.fit`),
the posterior mode by damped Gauss–Newton on the fantasised checkpoints (seed deviation integrated
out), and the Laplace covariance there. It stays accurate however many runs are added.

:class:`ImportancePreposterior` **reweights** the ``S`` draws by the likelihood of each fantasy,

    w_js ∝ N(y_j | log L(theta_s; run), sigma_obs^2 I + sigma_seed^2 11')   (w_{j,s_j} = 0: leave one out)

(closed form by Sherman–Morrison; with OU checkpoint noise, the Kalman filter of the fit's
likelihood), truncated at ``mean(w) sqrt(S)`` (Ionides 2008). No Gaussian
assumption, but the effective number of draws collapses as runs accumulate (its ``ess`` says so):
good for one or two runs, optimistic beyond.

Either way, fantasies share their truths and noise across candidate sets (common random numbers), so
differences between sets are not simulation noise.

The target's predictive carries the discrepancy ``Delta (drift + kappa z)``, ``Delta`` the decades of
compute between the target and the largest compute observed so far (trained or planned): a run close
to the target shortens the extrapolation. The fantasised truth is the law itself plus one run's seed
and checkpoint noise, so the expected ARE is that of predicting **the one run you will train**, and
it cannot fall below the seed-noise floor.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..laws import Law, sampling_moments
from ..data.extent import DIRECTIONS
from ..laws.flops import training_flops
from ..model.checkpoint_noise import layout as ou_layout
from ..model.likelihood import run_marginal_loglik
from ..model.checkpoint_noise import run_loglik_numpy
from ..model.draws import LawDraws
from ..predict import with_discrepancy

#: the direction of the discrepancy a plan measures (compute)
COMPUTE = DIRECTIONS.index("flops")
#: the central interval whose relative width the planner narrows
DEFAULT_INTERVAL = 0.9


def run_log_likelihood(y: np.ndarray, mean: np.ndarray, sigma_seed: np.ndarray, sigma_obs: np.ndarray) -> np.ndarray:
    """log N(y_j | mean_s, sigma_obs_s^2 I + sigma_seed_s^2 11') for fantasies j and draws s: (J, S).

    ``y`` (J, K) are one run's K checkpoint log losses per fantasy; ``mean`` (S, K) the law's log loss at
    those checkpoints per draw. The shared seed deviation is integrated out exactly.
    """
    k = y.shape[1]
    ss2, so2 = sigma_seed[None, :] ** 2, sigma_obs[None, :] ** 2
    # the run sums S1 = sum_k (y - m) and S2 = sum_k (y - m)^2 without a (J, S, K) array; S2 is kept at or above
    # the part S1 explains, so that rounding in the expansion cannot make the quadratic form negative
    s1 = y.sum(axis=1)[:, None] - mean.sum(axis=1)[None, :]
    s2 = (y**2).sum(axis=1)[:, None] - 2 * y @ mean.T + (mean**2).sum(axis=1)[None, :]
    s2 = np.maximum(s2, ss2 * s1**2 / (so2 + k * ss2))
    return run_marginal_loglik(s1, s2, k, sigma_seed[None, :], sigma_obs[None, :])


def normalised_weights(log_w: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Truncated importance weights per row (J, S) summing to one, and each row's effective sample size.

    ``exclude[j]`` is a draw whose weight is set to zero in row ``j`` (the draw that generated the fantasy).
    """
    log_w = np.array(log_w, dtype=float, copy=True)
    if exclude is not None:
        log_w[np.arange(len(log_w)), exclude] = -np.inf
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    n = np.isfinite(log_w).sum(axis=1, keepdims=True)
    cap = w.sum(axis=1, keepdims=True) / n * np.sqrt(n)
    w = np.minimum(w, cap)
    w /= w.sum(axis=1, keepdims=True)
    return w, 1.0 / (w**2).sum(axis=1)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles (J, len(qs)) of ``values`` (S,) under each row of ``weights`` (J, S)."""
    order = np.argsort(values)
    v = values[order]
    cw = np.cumsum(weights[:, order], axis=1)
    cw /= cw[:, -1:]
    idx = np.stack([(cw < q).sum(axis=1) for q in qs], axis=1)
    return v[np.minimum(idx, len(v) - 1)]


def law_jacobian(law: Law, theta: np.ndarray, z: dict[str, np.ndarray], ref: dict[str, float] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """log L and its gradient in the sampling parameters: theta (J, P), z inputs (K,) -> (J, K), (J, K, P).

    Exact for a power-sum law (:attr:`Law.terms`); central differences for any other (which needs ``ref``)."""
    idx = {p: i for i, p in enumerate(law.sampling)}
    j, k = theta.shape[0], len(next(iter(z.values())))
    if not law.terms:
        def f_at(th: np.ndarray) -> np.ndarray:
            return law.log_loss({p: th[:, i, None] for p, i in idx.items()}, {q: v[None, :] for q, v in z.items()},
                                ref=ref)
        h = 1e-5
        steps = [h * np.eye(theta.shape[1])[i] for i in range(theta.shape[1])]
        jac = np.stack([(f_at(theta + s) - f_at(theta - s)) / (2 * h) for s in steps], axis=-1)
        return np.broadcast_to(f_at(theta), (j, k)), jac
    e_col = idx[law.sampling_name(law.irreducible)]
    terms = [np.broadcast_to(theta[:, e_col, None], (j, k))]
    dterms = [{e_col: 1.0}]
    for amp, expo, inp in law.terms:
        a_col, x_col = idx[law.sampling_name(amp)], idx[law.sampling_name(expo)]
        e = np.exp(theta[:, x_col, None])
        terms.append(theta[:, a_col, None] - e * z[inp][None, :])
        dterms.append({a_col: 1.0, x_col: -e * z[inp][None, :]})
    t = np.stack(terms)  # (T, J, K)
    top = t.max(axis=0)
    ex = np.exp(t - top)
    total = ex.sum(axis=0)
    f = top + np.log(total)
    soft = ex / total
    jac = np.zeros((j, k, theta.shape[1]))
    for ti, d in enumerate(dterms):
        for pi, v in d.items():
            jac[:, :, pi] += soft[ti] * v
    return f, jac


@dataclass
class Fantasies:
    """Common random numbers of one preposterior analysis (fixed across candidate sets)."""

    picks: np.ndarray  # (J,) the draw behind each fantasy
    disc_z: np.ndarray  # (S,) the standard normal of each draw's discrepancy
    truth_noise: np.ndarray  # (J,) one run's seed + checkpoint noise of the target in each fantasy
    entropy: int


@dataclass
class FantasyRun:
    """One candidate run, fantasised: checkpoint inputs, outcomes per fantasy and its compute."""

    z: dict[str, np.ndarray]  # standardised inputs at its checkpoints (K,)
    y: np.ndarray  # (J, K) fantasised log losses
    log10_flops: float
    log10_tokens: np.ndarray  # (K,) where its checkpoints are (the OU checkpoint noise's clock)
    extra: Any = None  # method-specific (importance: its log-likelihood; Laplace: its noise precision)


class _PreposteriorBase:
    """The target, the fantasies' common random numbers and the extrapolation distance."""

    method = ""

    def __init__(self, draws: LawDraws, target_params: float, target_tokens: float,
                 target_flops: float | None = None, *, fantasies: int = 256, interval: float = DEFAULT_INTERVAL,
                 random_seed: int = 0):
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        if fantasies < 8:
            raise ValueError(f"fantasies must be at least 8, got {fantasies}")
        self.draws, self.interval = draws, interval
        self.target_flops = float(training_flops(target_params, target_tokens, target_flops))
        self.target_log10_flops = float(np.log10(self.target_flops))
        self.reference = {"params": float(target_params), "tokens": float(target_tokens), "flops": self.target_flops}
        self.target_log = draws.log_loss(target_params, target_tokens, self.target_flops)[:, 0]
        # the discrepancy scales the reducible loss or the whole loss (bayes_scaling.predict.with_discrepancy);
        # planning measures a target's distance in compute: the runs it proposes change how far the target lies
        # beyond the family's largest compute
        self.target_log_floor = draws.log_floor
        self.kappa, self.drift = draws.kappa[:, COMPUTE], draws.drift[:, COMPUTE]
        self.on_loss = draws.on_loss
        self.target_share = (np.where(self.on_loss > 0, 1.0, 1.0 - np.exp(self.target_log_floor - self.target_log))
                             if self.target_log_floor is not None else np.ones(draws.size))
        ss = np.random.SeedSequence(random_seed)
        rng = np.random.default_rng(ss)
        picks = rng.integers(0, draws.size, fantasies)
        noise = (draws.sigma_seed[picks] * rng.standard_normal(fantasies)
                 + draws.sigma_obs[picks] * rng.standard_normal(fantasies))
        self.crn = Fantasies(picks=picks, disc_z=rng.standard_normal(draws.size), truth_noise=noise,
                             entropy=int(ss.entropy))
        self._cache: dict[Any, FantasyRun] = {}

    def _inputs(self, params: np.ndarray, tokens: np.ndarray, flops: np.ndarray) -> dict[str, np.ndarray]:
        cols = {"params": params, "tokens": tokens, "flops": flops}
        return {inp: np.log(cols[inp] / self.reference[inp]) for inp in self.draws.law.inputs}

    def run(self, key: Any, params: float, tokens: Sequence[float], flops: Sequence[float] | None = None) -> FantasyRun:
        """One candidate run evaluated at checkpoint ``tokens``, fantasised once per fantasy (cached by ``key``)."""
        if key in self._cache:
            return self._cache[key]
        tokens = np.asarray(tokens, float)
        n = np.full(len(tokens), float(params))
        fl = training_flops(n, tokens, flops)
        mean = self.draws.log_loss(n, tokens, fl)  # (S, K)
        rng = np.random.default_rng(np.random.SeedSequence([self.crn.entropy, zlib.crc32(repr(key).encode())]))
        p = self.crn.picks
        x = np.log10(tokens)
        seed = self.draws.sigma_seed[p, None] * rng.standard_normal((len(p), 1))
        checkpoint = np.linalg.cholesky(self.draws.noise_covariance(p, x, seed=False))  # diagonal: independent
        y = mean[p] + seed + np.einsum("jkl,jl->jk", checkpoint, rng.standard_normal((len(p), len(tokens))))
        out = FantasyRun(z=self._inputs(n, tokens, fl), y=y, log10_flops=float(np.log10(fl.max())), log10_tokens=x,
                         extra=self._prepare(y, mean, x))
        self._cache[key] = out
        return out

    def _prepare(self, y: np.ndarray, mean: np.ndarray, log10_tokens: np.ndarray) -> Any:
        return None

    def decades(self, runs: Sequence[FantasyRun]) -> float:
        """Decades of compute from the largest observed (trained or planned) compute to the target; with
        nothing of the family observed, from the source families' largest compute (as a fit predicts a new
        family), or 0 when that is unknown."""
        observed = [r.log10_flops for r in runs]
        if self.draws.observed_log10_flops is not None:
            observed.append(self.draws.observed_log10_flops)
        if not observed and self.draws.population_log10_flops is not None:
            observed.append(self.draws.population_log10_flops)
        return max(0.0, self.target_log10_flops - max(observed)) if observed else 0.0

    def truth(self) -> np.ndarray:
        """The one target run's loss in each fantasy (the law of its truth draw plus one run's noise)."""
        return np.exp(self.target_log[self.crn.picks] + self.crn.truth_noise)

    def _summary(self, lower: np.ndarray, median: np.ndarray, upper: np.ndarray, ess: np.ndarray,
                 delta: float) -> dict[str, float]:
        truth = self.truth()
        return {"width": float(np.mean((upper - lower) / median)),
                "are": float(np.mean(np.abs(truth - median) / truth)),
                "ess": float(np.median(ess)), "extrapolation_decades": delta}


class ImportancePreposterior(_PreposteriorBase):
    """Importance reweighting of the current draws by each fantasy's likelihood (see the module docstring)."""

    method = "importance"

    def _prepare(self, y: np.ndarray, mean: np.ndarray, log10_tokens: np.ndarray) -> np.ndarray:
        d = self.draws
        if d.ou_length is None:
            return run_log_likelihood(y, mean, d.sigma_seed, d.sigma_obs)
        # OU checkpoint noise: the fit's own Kalman filter, fantasies x draws as leading axes, in blocks of draws
        grid = ou_layout(np.zeros(len(log10_tokens), dtype=np.int64), log10_tokens, 1)
        out = np.empty((y.shape[0], d.size))
        for lo in range(0, d.size, 256):
            s = slice(lo, lo + 256)
            col = lambda v: v[s][None, :, None]
            out[:, s] = run_loglik_numpy(y[:, None, :] - mean[None, s, :], grid, col(d.sigma_seed), col(d.sigma_obs),
                                         col(d.ou_share), col(d.ou_length))[..., 0]
        return out

    def evaluate(self, runs: Sequence[FantasyRun]) -> dict[str, float]:
        """Expected relative interval width, expected ARE and median ESS after observing ``runs``."""
        d = self.draws
        delta = self.decades(runs)
        log_t = with_discrepancy(self.target_log, self.target_log_floor,
                                 delta * (self.drift + self.kappa * self.crn.disc_z), self.on_loss)
        log_w = np.zeros((len(self.crn.picks), d.size))
        for r in runs:
            log_w = log_w + r.extra
        w, ess = normalised_weights(log_w, exclude=self.crn.picks)
        lo_q, hi_q = (1 - self.interval) / 2, (1 + self.interval) / 2
        q = np.exp(weighted_quantiles(log_t, w, (lo_q, 0.5, hi_q)))
        return self._summary(q[:, 0], q[:, 1], q[:, 2], ess, delta)


class LaplacePreposterior(_PreposteriorBase):
    """Refit every fantasy by a Gaussian (Laplace) approximation (see the module docstring)."""

    method = "laplace"
    #: damped Gauss-Newton iterations per refit (each with up to 4 step halvings)
    iterations = 12

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prior_mean, cov = sampling_moments(self.draws.law, self.draws.natural, self.reference)
        self.prior_prec = np.linalg.inv(cov)
        share = self.target_share  # a change of the discrepancy moves the log loss by about this share
        self._disc_var = float(np.mean((share * self.kappa) ** 2) + np.var(share * self.drift))
        self._drift = float(np.mean(share * self.drift))
        self._modes: dict[tuple, np.ndarray] = {}

    def _prepare(self, y: np.ndarray, mean: np.ndarray, log10_tokens: np.ndarray) -> np.ndarray:
        """The run's noise precision per fantasy (J, K, K): its seed deviation and checkpoint noise under
        the fantasy's truth draw, inverted once per run."""
        return np.linalg.inv(self.draws.noise_covariance(self.crn.picks, log10_tokens))

    def _stack(self, runs: Sequence[FantasyRun]):
        """The runs' inputs and fantasies side by side, and R^-1 per fantasy (J, K, K): R is block-diagonal,
        one block per run (each run's precision from :meth:`_prepare`)."""
        z = {inp: np.concatenate([r.z[inp] for r in runs]) for inp in self.draws.law.inputs}
        y = np.concatenate([r.y for r in runs], axis=1)
        prec = np.zeros((y.shape[0], y.shape[1], y.shape[1]))
        start = 0
        for r in runs:
            k = slice(start, start + r.y.shape[1])
            prec[:, k, k] = r.extra
            start = k.stop
        return z, y, prec

    def _objective(self, theta, z, y, prec):
        f, _ = law_jacobian(self.draws.law, theta, z, self.reference)
        r = y - f
        dev = theta - self.prior_mean
        return 0.5 * np.einsum("jk,jkl,jl->j", r, prec, r) + 0.5 * np.einsum("jp,pq,jq->j", dev, self.prior_prec, dev)

    def refit(self, runs: Sequence[FantasyRun]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mode (J, P) and covariance (J, P, P) of each fantasy's Laplace refit."""
        j, p = len(self.crn.picks), len(self.prior_mean)
        if not runs:
            return np.tile(self.prior_mean, (j, 1)), np.broadcast_to(np.linalg.inv(self.prior_prec), (j, p, p))
        # warm start from the refit of the same runs without the last one (the greedy plan's current set)
        theta = self._modes.get(tuple(id(r) for r in runs[:-1]))
        theta = np.tile(self.prior_mean, (j, 1)) if theta is None else theta.copy()
        z, y, prec = self._stack(runs)
        obj = self._objective(theta, z, y, prec)
        for _ in range(self.iterations):
            f, jac = law_jacobian(self.draws.law, theta, z, self.reference)
            rj = prec @ jac
            h = np.einsum("jkp,jkq->jpq", jac, rj) + self.prior_prec
            grad = np.einsum("jkp,jk->jp", rj, y - f) - (theta - self.prior_mean) @ self.prior_prec
            step = np.linalg.solve(h, grad[..., None])[..., 0]
            scale = np.ones(j)
            for _ in range(4):  # halve the step where the objective did not fall
                cand = theta + scale[:, None] * step
                new = self._objective(cand, z, y, prec)
                worse = ~(new <= obj)
                if not worse.any():
                    break
                scale = np.where(worse, scale / 2, scale)
            better = new <= obj
            theta = np.where(better[:, None], cand, theta)
            gain = np.where(better, obj - new, 0.0)
            obj = np.where(better, new, obj)
            if gain.max() < 1e-6:  # converged: the objective is a log density, 1e-6 nats is nothing
                break
        if len(self._modes) > 4096:
            self._modes.clear()
        self._modes[tuple(id(r) for r in runs)] = theta
        _, jac = law_jacobian(self.draws.law, theta, z, self.reference)
        h = np.einsum("jkp,jkq->jpq", jac, prec @ jac) + self.prior_prec
        return theta, np.linalg.inv(h)

    def evaluate(self, runs: Sequence[FantasyRun]) -> dict[str, float]:
        """Expected relative interval width and expected ARE after observing ``runs`` (``ess`` is nan: no weights)."""
        from scipy.stats import norm

        theta, cov = self.refit(runs)
        zt = {inp: np.zeros(1) for inp in self.draws.law.inputs}  # the target is the reference point
        f, g = law_jacobian(self.draws.law, theta, zt, self.reference)
        delta = self.decades(runs)
        var = np.einsum("jp,jpq,jq->j", g[:, 0], cov, g[:, 0]) + delta**2 * self._disc_var
        centre = f[:, 0] + delta * self._drift
        half = norm.ppf(0.5 + self.interval / 2) * np.sqrt(var)
        return self._summary(np.exp(centre - half), np.exp(centre), np.exp(centre + half),
                             np.full(len(theta), np.nan), delta)


#: the preposterior methods by name
METHODS = {"laplace": LaplacePreposterior, "importance": ImportancePreposterior}
