"""Posterior predictive of the loss, with no PyMC graph: numpy over posterior draws.

For each posterior draw ``s`` and query point (family f, N, D)::

    m_s        = log L(theta_s,f; N, D)                  (theta of a seen family, or for a new family
                                                          theta = mu + chol(diag(tau) Omega diag(tau)) z)
    delta_s    = sum_d g(Delta_d) (drift_d + kappa_d z_fd)   extrapolation discrepancy: Delta the distance from
                                                          the family's data in each direction d (compute,
                                                          parameters, tokens per parameter;
                                                          :mod:`bayes_scaling.data.extent`), g(x) = sign(x) |x|^growth,
                                                          z_fd = sqrt(shared) z_d + sqrt(1 - shared) z'_fd, each
                                                          part standard normal, or with ``tails`` a finite a, a
                                                          normal times sqrt(w), w ~ Gamma(a, 1/a) per family
                                                          (a variance-gamma: heavier tails, unit variance)
    expected   = E_s + (L_s - E_s) exp(delta_s)           expected loss of the configuration (no seed noise):
                                                          the discrepancy scales the reducible loss, so the
                                                          expected loss stays above the irreducible E (with
                                                          ``discrepancy_scale="loss"``: L_s exp(delta_s), and
                                                          where delta_s < 0 the reducible part shrinks instead;
                                                          :func:`with_discrepancy`)
    one run    = expected * exp(u + e)                    loss of the one run you will train:
                                                          u ~ N(0, sigma_seed), e ~ N(0, sigma_obs)
                                                          (robust fits: (u + e) sqrt(w), w ~ InvGamma(nu/2, nu/2))

Results are an xarray Dataset over ``point`` (with coords family, params, tokens, flops) holding the
summaries (mean, median, lower, upper at the chosen interval mass) of both quantities and,
optionally, their draws over ``sample``.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .data.container import MIN_LARGEST_PARAMS, MIN_LARGEST_TOKENS, TOKENS_PER_PARAM_RANGE
from .data.extent import BASE_DIRECTIONS, DIRECTION_MEANING, DIRECTIONS, distances, per_direction
from .errors import ExtrapolationWarning, UnknownFamilyError
from .laws import Law, standardized_inputs

#: at most this many (sample x point) values are held in memory at once
_CHUNK_VALUES = 4_000_000


def are(true: Any, pred: Any) -> float:
    """Absolute relative error of the Hitchhiker's guide: mean |L_true - L_pred| / L_true."""
    t = np.asarray(true, dtype=float)
    p = np.asarray(pred, dtype=float)
    return float(np.mean(np.abs(t - p) / t))


def sample_count(post: xr.Dataset) -> int:
    """The number of posterior draws of ``post``, every chain together."""
    return post.sizes["chain"] * post.sizes["draw"]


def _stack(post: xr.Dataset, name: str) -> np.ndarray:
    da = post[name].stack(sample=("chain", "draw"))
    return np.moveaxis(da.to_numpy(), -1, 0)  # sample first


def posterior_arrays(post: xr.Dataset) -> dict[str, np.ndarray]:
    """Posterior draws as numpy arrays with the sample axis first."""
    out = {"theta": _stack(post, "theta"), "mu": _stack(post, "mu"),
           "sigma_seed": _stack(post, "sigma_seed"), "sigma_obs": _stack(post, "sigma_obs")}
    if "tau" in post:
        out["tau"] = _stack(post, "tau")
        out["corr"] = _stack(post, "corr")
    if "tau_level" in post:
        out["tau_level"] = _stack(post, "tau_level")
    for name in ("nu", "ou_length", "ou_share"):
        if name in post:
            out[name] = _stack(post, name)
    out.update(discrepancy_arrays(post, out["mu"].shape[0]))
    return out


#: the discrepancy's per-draw scalars: (posterior variable, key in the draws' arrays, value when absent)
DISCREPANCY_SCALARS = (("discrepancy_growth", "growth", 1.0), ("discrepancy_shared", "shared", 0.0),
                       ("discrepancy_tails", "tails", np.inf), ("discrepancy_on_loss", "on_loss", 0.0))


def discrepancy_arrays(post: xr.Dataset, n_samples: int) -> dict[str, np.ndarray]:
    """The discrepancy's draws: ``kappa`` and ``drift`` (sample, direction), ``growth``, ``shared``, ``tails`` and
    ``on_loss`` (sample,).

    A posterior without them has none (zeros); one whose ``kappa`` has no ``direction`` axis holds the
    compute direction alone, growing linearly, with no shared component; one without ``discrepancy_tails``
    has normal tails (infinite ``tails``); one without ``discrepancy_on_loss`` a discrepancy of the reducible
    loss (``on_loss`` 0; 1: of the whole loss, :func:`with_discrepancy`).
    """
    out = {name: per_direction(_stack(post, name)) if name in post else np.zeros((n_samples, len(DIRECTIONS)))
           for name in ("kappa", "drift")}
    for name, key, default in DISCREPANCY_SCALARS:
        out[key] = _stack(post, name) if name in post else np.full(n_samples, default)
    return out


#: the discrepancy's tails a fit or a borrowed prior chooses from: gamma shapes a of its variance mixing
#: (:func:`tail_weights`), from normal (infinite) to heavy (kurtosis 3 (1 + 1/a): 15 at 0.25)
DISCREPANCY_TAILS = (np.inf, 2.0, 1.0, 0.5, 0.25)


def tail_weights(tails: np.ndarray, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    """Variance weights w ~ Gamma(a, 1/a) of shape (sample, *size) for draws' gamma shapes ``a`` (sample,)
    (mean 1: a normal times sqrt(w) keeps unit variance); None when every ``a`` is infinite (normal tails)."""
    tails = np.asarray(tails, dtype=float)
    if np.all(np.isinf(tails)):
        return None
    a = np.where(np.isfinite(tails), tails, 1.0).reshape((-1,) + (1,) * len(size))
    w = rng.gamma(np.broadcast_to(a, (len(tails),) + size), 1.0) / a
    return np.where(np.isfinite(tails).reshape(a.shape), w, 1.0)


def new_family_theta(arrays: dict[str, np.ndarray], rng: np.random.Generator,
                     level_vector: np.ndarray | None = None) -> np.ndarray:
    """Draw one new family's parameters per posterior draw: (sample, param).

    The family covariance is ``diag(tau) corr diag(tau) + tau_level^2 v v'`` with ``v`` the law's
    ``level_vector`` (see :mod:`bayes_scaling.model.hierarchical`).
    """
    if "tau" not in arrays:
        raise UnknownFamilyError(
            "this fit has a single family, so it carries no information on how families differ; "
            "predict a new family from a fit with several families (or borrow a population prior)."
        )
    tau, corr = arrays["tau"], arrays["corr"]
    cov = tau[:, :, None] * corr * tau[:, None, :]
    if "tau_level" in arrays:
        if level_vector is None:
            raise ValueError("this fit has a loss-level factor: pass the law's level_vector")
        cov = cov + arrays["tau_level"][:, None, None] ** 2 * np.outer(level_vector, level_vector)[None]
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(cov.shape[-1]))
    z = rng.standard_normal(arrays["mu"].shape)
    return arrays["mu"] + np.einsum("sij,sj->si", chol, z)


def discrepancy(arrays: dict[str, np.ndarray], dist: np.ndarray, rng: np.random.Generator,
                groups: Sequence[Any] | None = None) -> np.ndarray:
    """Draws of the extrapolation discrepancy of the log reducible loss, (sample, point).

    ``dist``: (point, direction) distances (:func:`bayes_scaling.data.extent.distances`). Points of one
    group (a family) share their standard normal ``z`` per direction, partly shared with every other group
    (``arrays["shared"]``); ``groups=None``: every point its own group. With finite ``arrays["tails"]`` each
    group's part (and the common part) is scaled by sqrt(w) of :func:`tail_weights`, one w for all directions:
    a family whose law misses far misses in every direction.
    """
    dist = np.asarray(dist, dtype=float)
    n_s, n_pts = arrays["kappa"].shape[0], dist.shape[0]
    if not np.any(dist):
        return np.zeros((n_s, n_pts))
    codes = np.arange(n_pts) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    # the directions past the base ones (epochs) draw their normals only where a point reaches them: a prediction
    # of data seen once draws the random numbers it would draw without them
    n_dir = dist.shape[1] if np.any(dist[:, len(BASE_DIRECTIONS):]) else min(dist.shape[1], len(BASE_DIRECTIONS))
    dist = dist[:, :n_dir]
    z_own = rng.standard_normal((n_s, int(codes.max()) + 1, n_dir))[:, codes, :]
    z_all = rng.standard_normal((n_s, 1, n_dir))
    tails = arrays.get("tails", np.full(n_s, np.inf))
    w_own = tail_weights(tails, (int(codes.max()) + 1,), rng)
    if w_own is not None:
        z_own = z_own * np.sqrt(w_own)[:, codes, None]
        z_all = z_all * np.sqrt(tail_weights(tails, (1,), rng))[:, :, None]
    share = arrays["shared"][:, None, None]
    z = np.sqrt(share) * z_all + np.sqrt(1.0 - share) * z_own
    g = np.sign(dist)[None] * np.abs(dist)[None] ** arrays["growth"][:, None, None]  # (S, p, d)
    return np.einsum("spd,spd->sp", g, arrays["drift"][:, None, :n_dir] + arrays["kappa"][:, None, :n_dir] * z)


def with_discrepancy(log_mu: np.ndarray, log_floor: np.ndarray | None, delta: np.ndarray,
                     on_loss: np.ndarray | float = 0.0) -> np.ndarray:
    """The log expected loss with the discrepancy ``delta``; the result stays above the irreducible loss E in
    every draw (``log_floor`` = log E; None: the law has no E, and the whole loss is scaled).

    Where ``on_loss`` is 0, ``delta`` is a relative error of the reducible loss: log(E + (L - E) exp(delta)).
    Where it is 1, a relative error of the whole loss: log L + delta where delta >= 0, and below 0
    log(E + (L - E) exp(delta / s)) with s = 1 - E / L, the reducible share, which lowers the log loss by
    about delta while it is small and approaches E, never crossing it, as it grows. ``on_loss`` broadcasts
    against ``delta`` (the caller puts the sample axis where ``delta`` has it).
    """
    if log_floor is None:
        return log_mu + delta
    with np.errstate(divide="ignore"):
        log_share = np.log1p(-np.minimum(np.exp(log_floor - log_mu), 1.0))
    reducible = np.logaddexp(log_floor, log_mu + log_share + delta)
    on_loss = np.broadcast_to(on_loss, np.broadcast(delta, on_loss).shape)
    if not np.any(on_loss):
        return reducible
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        lowered = np.logaddexp(log_floor, log_mu + log_share + np.minimum(delta, 0.0) / np.exp(log_share))
        whole = np.where(delta >= 0, log_mu + delta, np.where(np.isfinite(lowered), lowered, log_floor))
    return np.where(on_loss > 0, whole, reducible)


def closest_names(name: str, names: Sequence[str], n: int = 3) -> list[str]:
    """The names most like ``name``, ignoring case: the same name in other case alone, else up to ``n``."""
    lower = {f.lower(): f for f in names}
    if name.lower() in lower:
        return [lower[name.lower()]]
    return [lower[h] for h in difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)]


def new_family_mask(families: Sequence[str], asked: Sequence[str], new_family: bool) -> np.ndarray:
    """Which of the ``asked`` family names are new families. A name the fit has not seen is an error unless
    ``new_family`` (a misspelt family would otherwise be predicted as a new one, with a far wider interval);
    ``new_family`` with a name the fit has seen is an error too."""
    known = set(families)
    is_new = np.array([f not in known for f in asked], dtype=bool)
    if new_family:
        seen = sorted(set(np.asarray(asked, dtype=object)[~is_new]))
        if seen:
            raise ValueError(f"new_family=True, but {seen} {'is a family' if len(seen) == 1 else 'are families'} of "
                             "the fit; drop new_family to predict a fitted family, or give the new one another name")
    elif is_new.any():
        unknown = sorted(set(np.asarray(asked, dtype=object)[is_new]))
        close = {u: closest_names(u, families) for u in unknown}
        hints = "; ".join(f"{u!r}: closest {c}" if c else f"{u!r}: nothing close" for u, c in close.items())
        raise UnknownFamilyError(
            f"famil{'y' if len(unknown) == 1 else 'ies'} {unknown} {'is' if len(unknown) == 1 else 'are'} not in the "
            f"fit ({hints}; the fit has {len(families)}: {list(families)[:12]}"
            f"{' ...' if len(families) > 12 else ''}). Check the spelling, or pass new_family=True to predict a family "
            "the fit has not seen from the population of families.")
    return is_new


def family_theta_draws(arrays: dict[str, np.ndarray], families: Sequence[str], family: str,
                       rng: np.random.Generator, level_vector: np.ndarray | None = None, *,
                       new_family: bool = False) -> tuple[np.ndarray, bool]:
    """Sampling-scale draws (sample, param) of one family, or of a new family drawn from the population."""
    if not new_family_mask(families, [family], new_family)[0]:
        return arrays["theta"][:, list(families).index(family), :], False
    return new_family_theta(arrays, rng, level_vector), True


def predict_draws(law: Law, arrays: dict[str, np.ndarray], families: Sequence[str], reference: dict,
                  extents: dict[str, dict[str, float]], family: np.ndarray, columns: dict[str, np.ndarray],
                  *, rng: np.random.Generator, interval: float, keep_draws: bool,
                  new_family: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Predictive summaries (and draws) of expected and one-run loss at each point.

    Returns (result arrays, is_new_family per point). A family the fit has not seen must be asked for with
    ``new_family`` (:func:`new_family_mask`).
    """
    n_pts = len(family)
    fam_index = {f: i for i, f in enumerate(families)}
    new_mask = new_family_mask(families, family, new_family)
    theta = arrays["theta"]  # (S, F, P)
    names = law.sampling
    n_s = theta.shape[0]
    theta_new = new_family_theta(arrays, rng, law.level_vector) if new_mask.any() else None
    z = standardized_inputs(law, columns, reference)
    dist = distances(extents, family, columns)
    warn_far_beyond(dist, family, columns)
    floor = names.index(law.sampling_name(law.irreducible)) if law.irreducible else None
    lo_q, hi_q = (1 - interval) / 2, (1 + interval) / 2
    keys = ("mean", "median", "lower", "upper")
    res = {f"{kind}_{k}": np.empty(n_pts) for kind in ("expected", "run") for k in keys}
    if keep_draws:
        res["expected_draws"] = np.empty((n_s, n_pts))
        res["run_draws"] = np.empty((n_s, n_pts))
    chunk = max(1, _CHUNK_VALUES // max(n_s, 1))
    s_seed = arrays["sigma_seed"][:, None]
    s_obs = arrays["sigma_obs"][:, None]
    nu = arrays["nu"][:, None] if "nu" in arrays else None
    for start in range(0, n_pts, chunk):
        sl = slice(start, min(start + chunk, n_pts))
        idx = np.array([fam_index.get(f, 0) for f in family[sl]])
        th = theta[:, idx, :]  # (S, p, P)
        if theta_new is not None and new_mask[sl].any():
            th = th.copy()
            th[:, new_mask[sl], :] = theta_new[:, None, :]
        log_mu = law.log_loss({p: th[..., k] for k, p in enumerate(names)}, {k: v[sl] for k, v in z.items()},
                              ref=reference)
        shape = log_mu.shape
        delta = discrepancy(arrays, dist[sl], rng, groups=family[sl])
        log_expected = with_discrepancy(log_mu, None if floor is None else th[..., floor], delta,
                                        arrays["on_loss"][:, None])
        noise = s_seed * rng.standard_normal(shape) + s_obs * rng.standard_normal(shape)
        if nu is not None:  # robust likelihood: the run's noise is a scale mixture (multivariate t)
            noise = noise * np.sqrt(nu / rng.chisquare(np.broadcast_to(nu, shape)))
        log_run = log_expected + noise
        for kind, lg in (("expected", log_expected), ("run", log_run)):
            val = np.exp(lg)
            # a run's loss under the robust likelihood is exp of a Student-t: its mean does not exist (the
            # draws' average is dominated by a few huge values), so it is NaN; the median is the summary
            heavy = kind == "run" and nu is not None
            res[f"{kind}_mean"][sl] = np.nan if heavy else val.mean(axis=0)
            q = np.quantile(lg, [0.5, lo_q, hi_q], axis=0)  # quantiles commute with exp
            res[f"{kind}_median"][sl], res[f"{kind}_lower"][sl], res[f"{kind}_upper"][sl] = np.exp(q)
            if keep_draws:
                res[f"{kind}_draws"][:, sl] = val
    return res, new_mask


def as_dataset(res: dict[str, np.ndarray], family: np.ndarray, columns: dict[str, np.ndarray],
               new_mask: np.ndarray, interval: float) -> xr.Dataset:
    """Wrap predictive arrays in a labelled Dataset (dims ``point`` and ``sample``)."""
    coords = {"point": np.arange(len(family)), "family": ("point", np.asarray(family, dtype=str)),
              **{k: ("point", v) for k, v in columns.items()}, "new_family": ("point", new_mask)}
    data_vars = {k: ("point", v) for k, v in res.items() if not k.endswith("_draws")}
    for kind in ("expected", "run"):
        if f"{kind}_draws" in res:
            data_vars[f"{kind}_loss"] = (("sample", "point"), res[f"{kind}_draws"])
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(interval=interval, description="expected_*: loss of the configuration without seed noise; "
                    "run_*: loss of one new training run (seed and checkpoint noise included); run_mean is NaN "
                    "under the Student-t likelihood, where a run's loss has no mean")
    return ds


#: a prediction this many decades beyond its family's data in any direction gets a warning: the discrepancy is
#: calibrated on hold-outs of a decade or two, and three decades is past where any backtest can vouch for it
FAR_DECADES = 3.0


def warn_far_beyond(dist: np.ndarray, family: Sequence[str], columns: dict[str, np.ndarray]) -> None:
    """Warn once when some points lie :data:`FAR_DECADES` or more beyond their family's data (``dist``: the
    points' :func:`~bayes_scaling.data.extent.distances`), naming the farthest, and the likely unit mistake
    when the query's scale is one no scaling zoo has (the data checks' bounds)."""
    dist = np.abs(dist)
    far = dist.max(axis=1) >= FAR_DECADES
    if not far.any():
        return
    i = int(np.argmax(dist.max(axis=1)))
    k = int(np.argmax(dist[i]))
    where = f"of {DIRECTION_MEANING[DIRECTIONS[k]]}"
    n, d = float(columns["params"][i]), float(columns["tokens"][i])
    unit = ""
    lo, hi = TOKENS_PER_PARAM_RANGE
    if n < MIN_LARGEST_PARAMS or d < MIN_LARGEST_TOKENS or not lo <= d / n <= hi:
        unit = (" Check the units: params and tokens are plain counts (7e9, not 7; 2e12, not 2000), and this point "
                f"has N={n:.3g}, D={d:.3g} ({d / n:.3g} tokens per parameter).")
    warnings.warn(
        f"{int(far.sum())} of {len(far)} predicted point(s) lie {FAR_DECADES:g} or more decades beyond their family's "
        f"data; the farthest (family {str(family[i])!r}, N={n:.3g}, D={d:.3g}) is {dist[i, k]:.1f} decades {where}. The "
        "interval there rests on the law's form alone, which no hold-out has tested that far." + unit,
        ExtrapolationWarning, stacklevel=4)  # the caller of ScalingFit.predict


