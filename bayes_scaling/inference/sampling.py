"""Running NUTS: nutpie by default (low-rank mass matrix adaptation), PyMC's sampler as fallback.

nutpie's compiled model is reused across fits of one structure (:mod:`.compile_cache`). Sampling runs
with one BLAS thread (:func:`single_blas_thread`): each chain already has a core, and the model's
linear algebra (5 x 5 Cholesky factors and solves) only loses time to threads fighting over them.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from contextlib import contextmanager

import arviz as az
import pymc as pm
import threadpoolctl

from .compile_cache import compile_nutpie

#: posterior variables kept (the rest are sampler internals such as transformed values)
KEEP_VARS = ("mu", "tau", "tau_level", "corr", "theta", "sigma_total", "seed_share", "sigma_seed", "sigma_obs", "nu",
             "ou_length", "ou_share", "treatment_shift")
#: variables whose starting values are jittered so that chains start apart (noise scales, correlations)
JITTER_VARS = ("sigma_total", "seed_share", "family_chol")


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
    """The keyword arguments of ``nutpie.sample`` every fit uses (low-rank mass matrix, a core per chain)."""
    return dict(draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                low_rank_modified_mass_matrix=True, progress_bar=progressbar, cores=min(chains, 2))


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

    ``settings``: the keywords of :func:`nutpie_settings`.
    """
    import nutpie

    with single_blas_thread():
        return nutpie.sample(compiled, seed=seed, **settings)


def run_nuts(model: pm.Model, initvals: dict, *, draws: int, tune: int, chains: int, random_seed: int,
             target_accept: float, sampler: str = "auto", backend: str = "auto", progressbar: bool = False,
             keep_vars: tuple[str, ...] = KEEP_VARS,
             jitter_vars: tuple[str, ...] | None = JITTER_VARS,
             ) -> tuple[az.InferenceData, dict]:
    """Sample ``model``; returns the InferenceData (posterior, sample_stats) and sampler info.

    All chains start at ``initvals`` (see :mod:`.initial`), with a U(-1, 1) jitter on the noise and
    correlation parameters (``jitter_vars``; None: nutpie's default, every variable) so that chains still
    start apart. ``keep_vars``: the posterior
    variables kept. ``backend``: nutpie's compile backend, ``"auto"``, ``"numba"`` or ``"jax"``
    (:func:`.compile_cache.resolve_backend`).
    """
    which = available_sampler(sampler)
    jitter = None if jitter_vars is None else {model[n] for n in jitter_vars if n in model.named_vars}
    if jitter is not None and not jitter:  # nutpie starts from an unusable point when nothing is jittered
        raise ValueError(f"none of the jitter variables {jitter_vars} is in the model")
    t0 = time.perf_counter()
    init_retry = False
    source = None
    used = None
    if which == "nutpie":
        compiled, source, used = compile_nutpie(model, initvals, jitter, backend)
        t1 = time.perf_counter()
        kw = nutpie_settings(draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                             progressbar=progressbar)
        try:
            idata = sample_nutpie(compiled, seed=random_seed, **kw)
        except RuntimeError as exc:
            if "initialization points failed" not in str(exc) or jitter is None:
                raise
            # jittering only the noise scales can leave a start whose gradient is not finite (seen on a
            # single small family): start again with nutpie's own jitter of every variable
            compiled, source, used = compile_nutpie(model, initvals, None, backend)
            t1 = time.perf_counter()
            idata = sample_nutpie(compiled, seed=random_seed, **kw)
            init_retry = True
    else:
        t1 = time.perf_counter()
        with single_blas_thread():  # forked chain processes inherit the limit
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2), model=model,
                              random_seed=random_seed, initvals=initvals, target_accept=target_accept,
                              progressbar=progressbar, compute_convergence_checks=False)
    t2 = time.perf_counter()
    keep = [v for v in keep_vars if v in idata.posterior]
    post = idata.posterior[keep]
    stats = idata.sample_stats
    info = {"sampler": which, "compile_seconds": t1 - t0, "sampling_seconds": t2 - t1, "draws": draws,
            "tune": tune, "chains": chains, "random_seed": random_seed, "target_accept": target_accept,
            "init_retry": init_retry, "compile_cache_hit": source in ("memory", "disk"), "compile_source": source, "backend": used}
    return az.InferenceData(posterior=post, sample_stats=stats), info
