"""Running NUTS: nutpie by default (low-rank mass matrix adaptation), PyMC's sampler as fallback.

nutpie's compiled model is reused across fits of one structure (:mod:`.compile_cache`) and processes
(:mod:`.compile_store`). Sampling runs with one BLAS thread (:func:`single_blas_thread`): each chain
already has a core, and the model's linear algebra (5 x 5 Cholesky factors and solves) only loses time
to threads fighting over them. With a ``stop`` rule (``bs.fit``'s ``until_converged``, and its ``whiten="auto"`` giving up a
parameterisation) nutpie samples in the background and is stopped as soon as the draws so far answer it
(:func:`sample_until`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import arviz as az
import numpy as np
import pymc as pm
import threadpoolctl

from ..interrupts import check as check_interrupt
from .compile_cache import compile_nutpie

#: posterior variables kept (the rest are sampler internals such as transformed values)
KEEP_VARS = ("mu", "tau", "tau_level", "corr", "theta", "sigma_total", "seed_share", "sigma_seed", "sigma_obs", "nu",
             "ou_length", "ou_share", "treatment_shift")
#: variables whose starting values are jittered so that chains start apart (noise scales, correlations)
JITTER_VARS = ("sigma_total", "seed_share", "family_chol")
#: ``sample_until``: the draws per chain at which the stop rule is asked first, and the growth of the next
#: such number (each is a multiple of 50, 20% above the last). Reading the draws so far costs 0.2-0.5 s
#: of a core (ColPret), taken from the chains, so the draws are read when the slowest chain should have
#: reached the next check point (from its pace so far), at least MIN_WAIT seconds apart; while the pace
#: is unknown (tuning), every CHECK_SECONDS or CHECK_FRACTION of the time so far, whichever is longer.
MIN_DRAWS_BEFORE_STOP = 200
CHECK_GROWTH = 1.2
CHECK_SECONDS = 2.0
CHECK_FRACTION = 0.1
MIN_WAIT = 0.5


def available_sampler(requested: str = "auto") -> str:
    """``"nutpie"`` when installed (or requested), else ``"pymc"``."""
    if requested not in ("auto", "nutpie", "pymc"):
        raise ValueError(f"sampler must be 'auto', 'nutpie' or 'pymc', got {requested!r}")
    has_nutpie = importlib.util.find_spec("nutpie") is not None
    if requested == "nutpie" and not has_nutpie:
        raise ImportError("sampler='nutpie' was requested but nutpie is not installed (pip install nutpie)")
    if requested == "auto":
        return "nutpie" if has_nutpie else "pymc"
    return requested


def nutpie_settings(*, draws: int, tune: int, chains: int, target_accept: float,
                    progressbar: bool = False) -> dict:
    """The keyword arguments of ``nutpie.sample`` every fit uses: the low-rank mass matrix; every chain at once,
    each in its own thread, the system sharing the cores among them; the tuning steps not stored (no fit reads
    them).

    With fewer threads than chains, nutpie starts a chain when another finishes: a stop rule
    (:func:`sample_until`), which waits for every chain to reach a check point, then waited for the first
    chains to sample the whole budget (ColPret, 4 chains on 2 cores, stopped at 750 of 2,000 draws: 28.8 s
    against 23.0 s with every chain at once, the same draws), and a core idled while the last pair ran.
    """
    return dict(draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                low_rank_modified_mass_matrix=True, progress_bar=progressbar, cores=chains, save_warmup=False)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS/LAPACK (OpenBLAS, MKL) to one thread inside the block, restoring the limits after.

    Measured (docs/benchmarks.md, "One BLAS thread per chain"): with two chains on two cores and
    OpenBLAS's default of one thread per core, every small Cholesky factor or solve in the gradient
    spreads over both cores, the chains' threads contend, and a leapfrog step of the Kempner model took
    0.39 ms instead of 0.12 ms; the draws are identical either way.
    """
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def sample_nutpie(compiled, *, seed: int, **settings):
    """``nutpie.sample`` of a compiled model with one BLAS thread (:func:`single_blas_thread`).

    ``settings``: the keywords of :func:`nutpie_settings`. nutpie answers Ctrl-C by returning the draws so far;
    here it stays an interrupt (``KeyboardInterrupt``), so that no caller mistakes them for a finished fit.
    """
    import nutpie

    with single_blas_thread():
        idata = nutpie.sample(compiled, seed=seed, **settings)
    if _common_draws(idata) < settings.get("draws", 0):
        raise KeyboardInterrupt("sampling was interrupted")
    return idata


def _common_draws(idata: az.InferenceData) -> int:
    """Draws every chain has reached (nutpie's chains run at their own pace; the rest is NaN-padded)."""
    if "posterior" not in idata.groups() or not idata.posterior.data_vars or not idata.posterior.sizes.get("draw"):
        return 0
    first = np.asarray(next(iter(idata.posterior.data_vars.values())))
    done = ~np.isnan(first.reshape(first.shape[0], first.shape[1], -1)).any(axis=2)
    return int(done.sum(axis=1).min())


def _first_draws(idata: az.InferenceData, n: int) -> az.InferenceData:
    groups = {g: getattr(idata, g).isel(draw=slice(0, n)) for g in ("posterior", "sample_stats") if g in idata.groups()}
    return az.InferenceData(**groups)


def check_points(min_draws: int, max_draws: int) -> list[int]:
    """The draws per chain at which ``sample_until`` asks its rule: from ``min_draws``, each a multiple of 50
    about ``CHECK_GROWTH`` times the last, below ``max_draws``."""
    points, n = [], min_draws
    while n < max_draws:
        points.append(n)
        n = max(n + 50, int(np.ceil(n * CHECK_GROWTH / 50)) * 50)
    return points


def sample_until(compiled, stop: Callable[[az.InferenceData, int], str | None], *, seed: int,
                 min_draws: int = MIN_DRAWS_BEFORE_STOP, budget: int | None = None,
                 **settings) -> tuple[az.InferenceData, str | None]:
    """``nutpie.sample`` in the background, stopped at the first of :func:`check_points` where ``stop`` says why.

    nutpie's chains run at their own pace; the draws so far are read when the slowest chain should have
    reached the next check point (``MIN_WAIT``, ``CHECK_SECONDS``, ``CHECK_FRACTION``), and ``stop`` is
    asked, in order, of the first ``n`` draws of every chain (and ``budget``, by default ``settings["draws"]``)
    for each check point ``n`` all chains have reached; a ``budget`` below the draws nutpie samples is a check
    point of its own. At the first it answers with a reason (e.g. ``"converged"``),
    sampling is aborted and those ``n`` draws are returned; otherwise every draw sampled. The answer is a
    function of the draws alone, never of how fast they came: with the same seed, every process on a
    machine keeps the same draws (another CPU may round the compiled arithmetic differently).
    Returns (draws, the reason sampling stopped early or None).
    """
    import nutpie

    budget = settings["draws"] if budget is None else budget
    points = check_points(min_draws, settings["draws"])
    if budget < settings["draws"]:
        points = sorted({*points, budget})
    points = iter(points)
    due = next(points, None)

    def first_passing(idata: az.InferenceData, reached: int) -> tuple[int, str] | None:
        nonlocal due
        while due is not None and due <= reached:
            reason = stop(_first_draws(idata, due), budget)
            if reason:
                return due, reason
            due = next(points, None)
        return None

    with single_blas_thread():
        sampler = nutpie.sample(compiled, seed=seed, blocking=False, **settings)
        start = time.perf_counter()
        wait, last = CHECK_SECONDS, None
        while due is not None and not _finished(sampler):
            time.sleep(wait)
            check_interrupt()
            so_far = sampler.inspect()
            now, reached = time.perf_counter(), _common_draws(so_far)
            hit = first_passing(so_far, reached)
            if hit is not None:
                return _first_draws(sampler.abort(), hit[0]), hit[1]
            wait = max(CHECK_SECONDS, CHECK_FRACTION * (now - start))
            if last is not None and due is not None and reached > last[1]:  # the slowest chain's pace
                wait = max(MIN_WAIT, (due - reached) * (now - last[0]) / (reached - last[1]))
            last = (now, reached) if reached else None
        trace = sampler.wait()
    hit = first_passing(trace, _common_draws(trace))  # the check points reached after the last look
    return (trace, None) if hit is None else (_first_draws(trace, hit[0]), hit[1])


def _finished(sampler) -> bool:
    try:
        return bool(sampler.is_finished)
    except TimeoutError:  # nutpie 0.16 raises instead of answering False while chains still run
        return False


def jittered(model: pm.Model, jitter_vars: tuple[str, ...] | None = JITTER_VARS) -> set | None:
    """The model's variables among ``jitter_vars`` whose starting values nutpie jitters (None: every variable,
    nutpie's default)."""
    if jitter_vars is None:
        return None
    jitter = {model[n] for n in jitter_vars if n in model.named_vars}
    if not jitter:  # nutpie starts from an unusable point when nothing is jittered
        raise ValueError(f"none of the jitter variables {jitter_vars} is in the model")
    return jitter


def run_nuts(model: pm.Model, initvals: dict, *, draws: int, tune: int, chains: int, random_seed: int,
             target_accept: float, sampler: str = "auto", backend: str = "auto", progressbar: bool = False,
             keep_vars: tuple[str, ...] = KEEP_VARS,
             jitter_vars: tuple[str, ...] | None = JITTER_VARS,
             stop: Callable[[az.InferenceData, int], str | None] | None = None, budget: int | None = None,
             ) -> tuple[az.InferenceData, dict]:
    """Sample ``model``; returns the InferenceData (posterior, sample_stats) and sampler info.

    All chains start at ``initvals`` (see :mod:`.initial`), with a U(-1, 1) jitter on the noise and
    correlation parameters (``jitter_vars``; None: nutpie's default, every variable) so that chains still
    start apart. ``keep_vars``: the posterior
    variables kept. ``backend``: nutpie's compile backend, ``"auto"``, ``"numba"`` or ``"jax"``
    (:func:`.compile_cache.resolve_backend`). ``stop``: a rule on the draws so far and the budget that ends
    sampling before ``draws`` by answering why (e.g. ``"converged"``; :func:`sample_until`; nutpie only,
    PyMC's sampler runs all draws); ``info["stopped_early"]`` says whether it did, ``info["stop_reason"]``
    why, and ``info["draws"]`` how many draws per chain were kept. ``budget``: the draws the rule is told
    it has (default ``draws``); ``draws`` above it are there for the rule to go on past it (PyMC's sampler
    samples the budget).
    """
    budget = draws if budget is None else budget
    which = available_sampler(sampler)
    jitter = jittered(model, jitter_vars)
    t0 = time.perf_counter()
    init_retry = False
    source = None
    used = None
    if which == "nutpie":
        compiled, source, used = compile_nutpie(model, initvals, jitter, backend)
        check_interrupt()  # a Ctrl-C lost during the compile stops here, before sampling
        t1 = time.perf_counter()
        kw = nutpie_settings(draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                             progressbar=progressbar)

        def run(compiled):
            if stop is None:
                return sample_nutpie(compiled, seed=random_seed, **kw), None
            return sample_until(compiled, stop, seed=random_seed, budget=budget, **kw)

        try:
            idata, stopped = run(compiled)
        except RuntimeError as exc:
            if "initialization points failed" not in str(exc) or jitter is None:
                raise
            # jittering only the noise scales can leave a start whose gradient is not finite (seen on a
            # single small family): start again with nutpie's own jitter of every variable
            compiled, source, used = compile_nutpie(model, initvals, None, backend)
            t1 = time.perf_counter()
            idata, stopped = run(compiled)
            init_retry = True
    else:  # PyMC's sampler cannot be stopped: it samples the budget
        draws = budget
        t1 = time.perf_counter()
        stopped = None
        with single_blas_thread():  # forked chain processes inherit the limit
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, available_cores()), model=model,
                              random_seed=random_seed, initvals=initvals, target_accept=target_accept,
                              progressbar=progressbar, compute_convergence_checks=False)
    t2 = time.perf_counter()
    keep = [v for v in keep_vars if v in idata.posterior]
    post = idata.posterior[keep]
    stats = idata.sample_stats
    info = {"sampler": which, "compile_seconds": t1 - t0, "sampling_seconds": t2 - t1,
            "draws": int(idata.posterior.sizes["draw"]), "max_draws": draws,
            "budget": budget, "stopped_early": stopped is not None, "stop_reason": stopped,
            "tune": tune, "chains": chains, "random_seed": random_seed, "target_accept": target_accept,
            "init_retry": init_retry, "compile_cache_hit": source in ("memory", "disk"), "compile_source": source,
            "backend": used}
    return az.InferenceData(posterior=post, sample_stats=stats), info
