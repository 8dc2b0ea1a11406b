"""Time to a converged posterior, side by side in one run, and the cost of larger data.

Parts (``--parts``, default all):

``converge``  every configuration on every dataset with the same draws: wall time (compile + sampling
              + post-processing), the worst bulk/tail ESS and R-hat over the population parameters and
              noise scales (``POPULATION_VARS``), divergences, worst-bulk-ESS per second of sampling,
              and the projected seconds to ESS 400 (compile + sampling x 400 / worst ESS: a projection,
              labelled as such; ``converged`` says whether this run itself met R-hat <= 1.01,
              ESS >= 400 and no divergences). ``--until-converged MAX`` refits with the draws (and, unless
              ``--tune`` fixes them, the tuning steps) doubled until the fit converges (or MAX draws per
              chain): the measured time to a converged posterior, in a process whose compiled model is
              reused after the first attempt.
              Configurations: ``default`` (every default: centred, target_accept 0.98, nutpie), ``auto``
              (non-centring chosen from the data), ``auto_0.9`` (the same at target_accept 0.9), ``naive``
              (raw log A, alpha, log B, beta, log E per family, non-centred, explicit run effects; the
              issue's reference model), ``pymc_nuts`` (the default model with PyMC's own NUTS), ``jax``
              (the default model compiled by nutpie's JAX backend), ``until`` (the default model with
              ``until_converged=True``: sampling stops once the draws pass the R-hat and ESS checks;
              divergences are reported, not waited on).
``advi``      the fast approximate path (``bs.inference.fit_approximate``) against NUTS on the same data:
              posterior means and 90% widths of the population parameters and of the target prediction.
``cost``      log-density + gradient time and peak memory against rows (10^3 ... 10^6) and families,
              and the thinning strategy's effect on a real posterior.
``thinning_noise``  the same with a reference of ``--dense`` checkpoints per run, under each checkpoint-noise
              model (``--checkpoint-noise independent,ou``): does the posterior stop moving with the density
              once the noise is correlated along the run?
``predict``   :func:`expected_loss_moments` (below) on 10^5 (N, D) points x 4000 draws.
``cache``     fits that share a structure (a fit and its calibration fit, leave-one-family-out population
              fits, borrowed fits) with the compiled-model cache off and on, side by side; the same draws.
``backends``  nutpie's two compile backends (numba, JAX) side by side on the same fits, the compiled-model
              cache emptied before each: compile and sampling seconds, ESS, and one log density +
              gradient call of the JAX function alone and from two threads at once (the GIL).
``blas``      one compiled model per dataset (``--datasets``) sampled with BLAS's default thread count and with
              one BLAS thread per chain (what every fit now does), side by side: seconds per leapfrog step.
``store``     the disk cache of compiled models (``bayes_scaling.inference.compile_store``): per dataset two
              new processes in turn, each one ``converge`` fit of the default configuration at the draws
              that converged before (``STORE_DRAWS``), sharing an empty cache folder: the first compiles
              and writes the model, the second reads it back. Per process: wall seconds from start to
              exit (imports, data, compile or load, sampling), compile (or load) and sampling seconds,
              convergence, and a checksum of the draws (the same in both: the same computation).
              ``--configs default`` (the converged draws above) or ``until`` (``until_converged=True``,
              at most ``UNTIL_MAX_DRAWS`` draws per chain, the tuning steps of ``STORE_DRAWS``).
``fused``     the rows' likelihood as one kernel (``bayes_scaling.model.fused_rows``, the default) against
              PyTensor's elementwise graph (``fit(fused=False)``), per dataset: one log density + gradient
              call of nutpie's compiled function, the two models timed in alternation in one process
              (best of ``FUSED_ROUNDS`` rounds of ``FUSED_CALLS`` calls each), and their values at one point.
              Configurations ``unfused`` and ``A+B`` (e.g. ``until+unfused``) compare whole fits.
``plot``      redraw docs/figures/cost_curve.png from the stored ``cost`` part.

Usage::

    .venv/bin/python benchmarks/sampling.py --out benchmarks/results/sampling.json
    .venv/bin/python benchmarks/sampling.py --parts predict,cost --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import bayes_scaling as bs
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs
from bayes_scaling.errors import SamplingWarning
from bayes_scaling.grid.config import DATASETS
from bayes_scaling.inference.diagnostics import ESS_MIN, diagnose
from bayes_scaling.inference.sampling import sample_nutpie, single_blas_thread

def synthetic40(seed: int = 0) -> bs.ScalingData:
    """The guide's 40 families x 6 sizes x 10 checkpoints (2,400 rows), known truth."""
    rng = np.random.default_rng(seed)
    fams = simulate_family_parameters(40, rng)
    df = simulate_runs(fams, rng, sizes=(2e7, 5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=10)
    return bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                     run="run", seed="seed", source="synthetic 40 families")


#: the real sets pooled by :func:`pooled_real`, each thinned to ``POOLED_PER_RUN`` checkpoints per run
POOLED_SETS, POOLED_PER_RUN = ("kempner", "porian", "colpret", "gemstone"), 12


def pooled_real() -> bs.ScalingData:
    """A real many-family zoo: Kempner, Porian, ColPret and Gemstone (by width) as one set of 36 families,
    each family and run named after its set, checkpoints thinned to 12 per run (2,679 rows)."""
    parts = []
    for name in POOLED_SETS:
        df = bs.data.thin_checkpoints(DATASETS[name](), POOLED_PER_RUN).frame
        df = df.assign(family=name + ":" + df["family"].astype(str), run=name + ":" + df["run"].astype(str))
        parts.append(bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                               run="run", seed="seed", flops="flops", source=name))
    return bs.ScalingData.concat(parts, source="pooled real sets: " + ", ".join(POOLED_SETS))


def load(name: str) -> bs.ScalingData:
    built_here = {"synthetic40": synthetic40, "pooled_real": pooled_real}
    return built_here[name]() if name in built_here else DATASETS[name]()


# ------------------------------------------------------------------ the naive reference model
def naive_model(data: bs.ScalingData):
    """The issue's naive model: raw (log A, alpha, log B, beta, log E) per family, non-centred, run effects."""
    import pymc as pm
    import pytensor.tensor as pt

    df = data.frame
    fam = df["family"].astype("category").cat.codes.to_numpy()
    run = df["run"].astype("category").cat.codes.to_numpy()
    n_fam, n_run = int(fam.max()) + 1, int(run.max()) + 1
    log_n, log_d, y = np.log(df["params"].to_numpy()), np.log(df["tokens"].to_numpy()), np.log(df["loss"].to_numpy())
    loc = np.array([np.log(400.0), 0.35, np.log(400.0), 0.35, np.log(1.7)])
    with pm.Model() as model:
        mu = pm.Normal("mu", loc, np.array([2.0, 0.2, 2.0, 0.2, 0.5]))
        tau = pm.HalfNormal("tau", np.array([1.0, 0.1, 1.0, 0.1, 0.3]))
        z = pm.Normal("z", 0, 1, shape=(n_fam, 5))
        th = mu + z * tau
        sigma_seed = pm.HalfNormal("sigma_seed", 0.05)
        sigma_obs = pm.HalfNormal("sigma_obs", 0.05)
        u = pm.Normal("u", 0, 1, shape=n_run) * sigma_seed
        t = th[fam]
        loss = pt.exp(t[:, 4]) + pt.exp(t[:, 0] - t[:, 1] * log_n) + pt.exp(t[:, 2] - t[:, 3] * log_d)
        pm.Normal("y", pt.log(loss) + u[run], sigma_obs, observed=y)
    return model


#: what every configuration here starts from: the fixed whitening and every draw sampled, the settings these
#: measurements compare (the library's default chooses both from the draws: ``benchmarks/default_fit.py``)
PREVIOUS_DEFAULT = {"until_converged": False, "whiten": True}
_NAMED = {"default": {}, "auto": dict(noncentering="auto"), "auto_0.9": dict(noncentering="auto", target_accept=0.9),
          "pymc_nuts": dict(engine="pymc"), "jax": dict(backend="jax"), "unwhitened": dict(whiten=False),
          "whitened_0.9": dict(target_accept=0.9), "conditional": dict(whiten="conditional"),
          "conditional_0.9": dict(whiten="conditional", target_accept=0.9),
          "until": dict(until_converged=True), "unfused": dict(fused=False)}


def config_kwargs(config: str) -> dict:
    """The sampler settings (``bs.fit``'s ``sampler=``) of a named configuration over ``PREVIOUS_DEFAULT``;
    ``nc:PARAM=DEGREE[,PARAM=DEGREE]@TARGET_ACCEPT`` sets (partial) non-centring by hand, e.g.
    ``nc:log_alpha=0.3@0.9``; ``A+B`` joins two configurations."""
    settings = dict(PREVIOUS_DEFAULT)
    for part in config.split("+"):
        if part.startswith("nc:"):
            spec, _, accept = part[3:].partition("@")
            settings["noncentering"] = {k: float(v) for k, v in (item.split("=") for item in spec.split(","))}
            if accept:
                settings["target_accept"] = float(accept)
        else:
            settings.update(_NAMED[part])
    return settings


def run_config(data: bs.ScalingData, config: str, draws: int, seed: int, tune: int | None = None) -> dict:
    """One fit of ``config``: ``draws`` per chain after ``tune`` tuning steps (default: as many as draws)."""
    tune = draws if tune is None else tune
    t0 = time.perf_counter()
    if config == "naive":
        import nutpie

        model = naive_model(data)
        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        idata = sample_nutpie(compiled, seed=seed, draws=draws, tune=tune, chains=2, cores=2, progress_bar=False)
        t2 = time.perf_counter()
        d = diagnose(idata, ["mu", "tau", "sigma_seed", "sigma_obs"], t2 - t1)
        out = {"compile_seconds": t1 - t0}
    else:
        kw = config_kwargs(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            fit = bs.fit(data, dict(extrapolation=None), dict(draws=draws, tune=tune, chains=2, random_seed=seed, **kw))
        d = fit.diagnostics
        out = {"compile_seconds": fit.sampler_info["compile_seconds"], "noncentred": fit.spec.noncentred,
               "compile_source": fit.sampler_info.get("compile_source"),
               "draws_checksum": float(fit.idata.posterior["mu"].sum()),
               "target_accept": fit.sampler_info["target_accept"], "whitened": fit.sampler_info.get("whitened"),
               "steps_per_draw": float(fit.idata.sample_stats["n_steps"].mean()),
               "draws_kept": fit.sampler_info["draws"], "stopped_early": fit.sampler_info.get("stopped_early")}
    worst = min(d.min_ess_bulk, d.min_ess_tail)
    out.update(sampling_seconds=d.sampling_seconds, max_rhat=d.max_rhat, min_ess_bulk=d.min_ess_bulk,
               min_ess_tail=d.min_ess_tail, worst=d.worst.get("ess_bulk"), divergences=d.divergences,
               wall_seconds=time.perf_counter() - t0, ess_per_second=d.min_ess_bulk / d.sampling_seconds,
               projected_seconds_to_ess400=out["compile_seconds"] + d.sampling_seconds * ESS_MIN / max(worst, 1),
               converged=d.ok, config=config, draws=draws, tune=tune, rows=len(data.frame),
               families=len(data.families))
    return out


def part_converge(datasets: list[str], configs: list[str], draws: int, seed: int,
                  max_draws: int | None = None, tune: int | None = None) -> list[dict]:
    """Every configuration on every dataset at ``draws``; with ``max_draws``, each fit is repeated with the
    draws (and the tuning steps, unless ``tune`` fixes them) doubled until it converges or would exceed
    ``max_draws`` (``attempt`` counts)."""
    rows = []
    for name in datasets:
        data = load(name)
        for config in configs:
            if config in ("naive", "pymc_nuts") and name not in ("synthetic40", "kempner"):
                continue  # the reference configurations run on the synthetic set and one real set
            n, attempt, spent = draws, 1, 0.0
            while True:
                r = run_config(data, config, n, seed, tune)
                spent += r["wall_seconds"]
                r.update(dataset=name, attempt=attempt, cumulative_wall_seconds=spent)
                print(json.dumps(r), flush=True)
                rows.append(r)
                if max_draws is None or r["converged"] or 2 * n > max_draws:
                    break
                n, attempt = 2 * n, attempt + 1
    return rows


#: draws and tuning steps per chain at which the default configuration converged on each dataset
#: (docs/benchmarks.md, "Sampling speed", "Time to a converged posterior on the real sets, whitened")
STORE_DRAWS = {"kempner": (2000, 2000), "porian": (2000, 500), "colpret": (2000, 500), "synthetic40": (500, 500)}
#: the most draws per chain of an ``until`` fit (it stops once converged)
UNTIL_MAX_DRAWS = 4000


def part_store(datasets: list[str], seed: int, config: str = "default") -> list[dict]:
    """A cold process (empty disk cache: compiles) then a warm one (reads the model back) per dataset.

    ``config="until"`` (or ``until+...``): ``bs.fit(until_converged=True)`` with at most ``UNTIL_MAX_DRAWS``
    draws per chain."""
    import subprocess
    import tempfile

    rows = []
    for name in datasets:
        draws, tune = STORE_DRAWS[name]
        draws = UNTIL_MAX_DRAWS if "until" in config.split("+") else draws
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "BAYES_SCALING_COMPILE_CACHE_DIR": str(Path(folder) / "compiled")}
            for label in ("cold", "warm"):
                out = Path(folder) / f"{label}.json"
                cmd = [sys.executable, __file__, "--parts", "converge", "--datasets", name, "--configs", config,
                       "--draws", str(draws), "--tune", str(tune), "--seed", str(seed), "--out", str(out)]
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                r = json.loads(out.read_text())["converge"][0]
                r.update(dataset=name, process=label, process_wall_seconds=time.perf_counter() - t0)
                print(json.dumps(r), flush=True)
                rows.append(r)
    return rows


#: rounds and calls per round of the ``fused`` part's gradient timing
FUSED_ROUNDS, FUSED_CALLS = 7, 2000


def nutpie_gradient_call(compiled):
    """One call of nutpie's compiled log density + gradient (its numba ``cfunc``, as the sampler calls it) at a
    fixed point near zero: ``(call, logp, grad)``, ``call()`` filling the ``logp`` and ``grad`` buffers."""
    import ctypes

    ptr = ctypes.POINTER(ctypes.c_double)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ptr, ptr, ptr, ctypes.c_void_p)(
        compiled.compiled_logp_func.address)
    x = 0.01 * np.random.default_rng(0).standard_normal(compiled.n_dim)
    grad, logp = np.zeros(compiled.n_dim), np.zeros(())
    args = (compiled.n_dim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
            compiled.user_data.ctypes.data)

    def call():
        fn(*args)
    return call, logp, grad


def part_fused(datasets: list[str]) -> list[dict]:
    from bayes_scaling.inference.compile_cache import compile_nutpie
    from bayes_scaling.inference.fit import model_spec
    from bayes_scaling.inference.compiled import CompiledModel

    rows = []
    for name in datasets:
        data = load(name)
        spec, estimates = model_spec(data, "chinchilla", None)
        calls, out = {}, {"dataset": name, "rows": len(data.frame), "families": len(data.families)}
        for fused in (True, False):
            cm = CompiledModel.build(data, spec, estimates, fused=fused)
            t0 = time.perf_counter()
            compiled, source, _ = compile_nutpie(cm.model, cm.initvals, None, "numba")
            out[f"{'fused' if fused else 'graph'}_compile"] = {"seconds": time.perf_counter() - t0, "source": source}
            calls[fused] = nutpie_gradient_call(compiled)
        values = {}
        for fused, (call, logp, grad) in calls.items():
            call()
            values[fused] = (float(logp), grad.copy())
        best = {True: np.inf, False: np.inf}
        with single_blas_thread():
            for _ in range(FUSED_ROUNDS):
                for fused, (call, _, _) in calls.items():
                    t0 = time.perf_counter()
                    for _ in range(FUSED_CALLS):
                        call()
                    best[fused] = min(best[fused], (time.perf_counter() - t0) / FUSED_CALLS)
        out.update(fused_gradient_ms=best[True] * 1e3, graph_gradient_ms=best[False] * 1e3,
                   speedup=best[False] / best[True], logp_difference=abs(values[True][0] - values[False][0]),
                   gradient_max_difference=float(np.abs(values[True][1] - values[False][1]).max()))
        print(json.dumps(out), flush=True)
        rows.append(out)
    return rows


# ------------------------------------------------------------------ fast approximate path
def part_advi(dataset: str, draws: int, seed: int) -> dict:
    data = load(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        t0 = time.perf_counter()
        nuts = bs.fit(data, dict(extrapolation=None), dict(draws=draws, tune=draws, chains=2, random_seed=seed))
        t_nuts = time.perf_counter() - t0
    out = {"dataset": dataset, "nuts_seconds": t_nuts, "nuts_diagnostics": nuts.diagnostics.to_dict(), "methods": {}}
    biggest = data.frame.loc[data.frame["flops"].idxmax()]
    q = dict(family=str(biggest["family"]), params=float(biggest["params"]) * 4, tokens=float(biggest["tokens"]) * 4)
    ref_pred = nuts.predict(**q, random_seed=seed)
    for method in ("advi", "fullrank_advi"):
        t0 = time.perf_counter()
        approx = bs.inference.fit_approximate(data, method=method, random_seed=seed)
        secs = time.perf_counter() - t0
        cmp = {}
        for var in ("mu", "tau", "sigma_total"):
            a, b = nuts.idata.posterior[var], approx.idata.posterior[var]
            sd = a.std(("chain", "draw"))
            z = ((b.mean(("chain", "draw")) - a.mean(("chain", "draw"))) / sd).values.ravel()
            wa = (a.quantile(0.95, ("chain", "draw")) - a.quantile(0.05, ("chain", "draw"))).values.ravel()
            wb = (b.quantile(0.95, ("chain", "draw")) - b.quantile(0.05, ("chain", "draw"))).values.ravel()
            cmp[var] = {"max_abs_mean_shift_in_nuts_sd": float(np.max(np.abs(z))),
                        "width_ratio_median": float(np.median(wb / wa)), "width_ratio_min": float(np.min(wb / wa))}
        pred = approx.predict(**q, random_seed=seed)

        def width(p):
            return float(p["expected_upper"][0] - p["expected_lower"][0])

        cmp["prediction"] = {"query": q, "mean_relative_difference":
                             float(abs(pred["expected_mean"][0] / ref_pred["expected_mean"][0] - 1)),
                             "width_ratio_90": width(pred) / width(ref_pred)}
        out["methods"][method] = {"seconds": secs, "speedup_vs_nuts": t_nuts / secs, "vs_nuts": cmp,
                                  "info": approx.sampler_info}
        print(json.dumps({method: out["methods"][method]}), flush=True)
    return out


# ------------------------------------------------------------------ cost curve
def _grad_timing(data: bs.ScalingData, repeats: int, checkpoint_noise: str = "independent") -> dict:
    import pytensor

    from bayes_scaling.model import ModelSpec, build_model

    tracemalloc.start()
    t0 = time.perf_counter()
    spec = ModelSpec.from_data(data, checkpoint_noise=checkpoint_noise)
    model = build_model(data, spec)
    logp = model.logp()
    fn = model.compile_fn([logp, *pytensor.grad(logp, model.value_vars)], inputs=model.value_vars,
                          point_fn=False, mode="NUMBA")
    ip = model.initial_point()
    args = [ip[v.name] for v in model.value_vars]
    fn(*args)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    per = (time.perf_counter() - t0) / repeats
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"build_compile_seconds": build, "gradient_seconds": per, "python_peak_mib": peak / 2**20}


def part_cost(seed: int, max_rows: int) -> dict:
    rng = np.random.default_rng(seed)
    rows_curve = []
    for n_rows in [r for r in (1_000, 10_000, 100_000, 1_000_000) if r <= max_rows]:
        # 40 families x 6 sizes; checkpoints per run grow with the rows (dense curves, as in the guide's data)
        ckpt = max(2, n_rows // 240)
        fams = simulate_family_parameters(40, rng)
        df = simulate_runs(fams, rng, sizes=(2e7, 5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=ckpt)
        data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
        r = _grad_timing(data, repeats=max(3, int(2000 / max(1, n_rows / 1000))))
        thinned = bs.data.thin_checkpoints(data, 20)
        rt = _grad_timing(thinned, repeats=200)
        r.update(rows=len(df), thinned_rows=len(thinned.frame), thinned_gradient_seconds=rt["gradient_seconds"],
                 maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(r), flush=True)
        rows_curve.append(r)
    fam_curve = []
    for n_fam in (5, 10, 20, 40, 80, 160):
        fams = simulate_family_parameters(n_fam, rng)
        df = simulate_runs(fams, rng, sizes=(2e7, 5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=10)
        data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
        r = _grad_timing(data, repeats=500)
        r.update(families=n_fam, rows=len(df))
        print(json.dumps(r), flush=True)
        fam_curve.append(r)
    return {"rows": rows_curve, "families": fam_curve}


def part_thinning(dataset: str, draws: int, seed: int, per_run: int, dense: int | None = None,
                  noises: tuple[str, ...] = ("independent",)) -> dict:
    """The posterior of a dense real dataset with ``dense`` checkpoints per run (None: every checkpoint)
    and thinned to ``per_run`` per run, under each checkpoint-noise model in ``noises``, side by side.

    Returns ``{noise: {...}}``; each entry gives, per population variable and noise scale, the largest
    shift of a posterior mean (thinned - dense) in the dense posterior's sd and the range of the sd
    ratios (thinned / dense).
    """
    data = load(dataset)
    if dense is not None:
        data = bs.data.thin_checkpoints(data, dense)
    thinned = bs.data.thin_checkpoints(data, per_run)
    out = {}
    for noise in noises:
        fits = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            for label, d in (("all", data), ("thinned", thinned)):
                t0 = time.perf_counter()
                f = bs.fit(d, dict(extrapolation=None, checkpoint_noise=noise),
                           dict(draws=draws, tune=draws, chains=2, random_seed=seed))
                fits[label] = (f, time.perf_counter() - t0)
        a, b = fits["all"][0].idata.posterior, fits["thinned"][0].idata.posterior
        res = {"dataset": dataset, "checkpoint_noise": noise, "rows": len(data.frame), "dense_per_run": dense,
               "thinned_rows": len(thinned.frame), "per_run": per_run,
               "seconds": {k: v[1] for k, v in fits.items()},
               "diagnostics": {k: {"max_rhat": v[0].diagnostics.max_rhat, "min_ess_bulk": v[0].diagnostics.min_ess_bulk,
                                   "divergences": v[0].diagnostics.divergences} for k, v in fits.items()}}
        for var in ("mu", "tau", "sigma_total", "sigma_seed", "sigma_obs", "ou_length", "ou_share"):
            if var not in a:
                continue
            sd = a[var].std(("chain", "draw"))
            z = ((b[var].mean(("chain", "draw")) - a[var].mean(("chain", "draw"))) / sd).values.ravel()
            ratio = (b[var].std(("chain", "draw")) / sd).values.ravel()
            res[var] = {"max_abs_mean_shift_in_sd": float(np.max(np.abs(z))), "sd_ratio_min": float(ratio.min()),
                        "sd_ratio_max": float(ratio.max())}
            if a[var].ndim == 2:  # a scalar: its medians with every checkpoint and thinned
                res[var].update(median_all=float(a[var].median()), median_thinned=float(b[var].median()))
        print(json.dumps(res), flush=True)
        out[noise] = res
    return out


# ------------------------------------------------------------------ compiled-model reuse
def part_cache(dataset: str, draws: int, seed: int) -> dict:
    """Fits that share a structure, with the compile cache off and then on, side by side in one run.

    Three sequences on ``dataset``: one default fit (its leave-largest-out calibration fit has the
    fit's structure), three leave-one-family-out population fits (the evaluation protocol's), and a
    borrowed fit of every family's smallest model size from one population prior. Each sequence runs
    with ``BAYES_SCALING_COMPILE_CACHE=0`` and then with an empty cache; the same seeds must give the
    same draws (``max_abs_diff`` of every ``mu`` draw).
    """
    from bayes_scaling.evaluate.protocol import split_family
    from bayes_scaling.inference import compile_cache

    data = load(dataset)
    fams = data.families
    kw = dict(draws=draws, tune=draws, chains=2, random_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        prior = bs.PopulationPrior.from_fit(bs.fit(data.select_families(fams[:-1]), dict(extrapolation=None), kw))
    sequences = {
        "default fit (with its calibration fit)": [lambda: bs.fit(data, sampler=kw)],
        "3 leave-one-family-out population fits": [
            (lambda f=f: bs.fit(data.select_families([g for g in fams if g != f]), sampler=kw)) for f in fams[:3]],
        f"{len(fams)} borrowed fits of one model size": [
            (lambda f=f: bs.fit(split_family(data, f, 1).train, sampler=kw, borrow=prior)) for f in fams],
    }
    out = {"dataset": dataset, "draws": draws, "sequences": []}
    for label, fits in sequences.items():
        row: dict = {"sequence": label, "fits": len(fits)}
        draws_by_mode = {}
        for mode in ("off", "on"):
            os.environ["BAYES_SCALING_COMPILE_CACHE"] = "0" if mode == "off" else "1"
            compile_cache.clear()
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                done = [f() for f in fits]
            row[f"seconds_{mode}"] = time.perf_counter() - t0
            row[f"compile_seconds_{mode}"] = sum(f.sampler_info["compile_seconds"] for f in done)
            row[f"cache_{mode}"] = compile_cache.stats()
            draws_by_mode[mode] = [f.idata.posterior["mu"].to_numpy() for f in done]
        os.environ.pop("BAYES_SCALING_COMPILE_CACHE")
        row["speedup"] = row["seconds_off"] / row["seconds_on"]
        row["max_abs_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(draws_by_mode["off"], draws_by_mode["on"]))
        print(json.dumps(row), flush=True)
        out["sequences"].append(row)
    return out


# ------------------------------------------------------------------ prediction
def _jax_call_timing(data: bs.ScalingData, noise: str, repeats: int = 300) -> dict:
    """One JAX log density + gradient call (nutpie's Python callback), alone and from two threads at once."""
    import threading

    from bayes_scaling.inference.compile_cache import _compile_jax
    from bayes_scaling.model import ModelSpec, build_model

    compiled = _compile_jax(build_model(data, ModelSpec.from_data(data, checkpoint_noise=noise)), {}, None)
    f, shared = compiled._make_logp_func(), compiled._shared_data
    x = np.asarray(compiled._make_initial_points(0), dtype="float64")

    def loop():
        for _ in range(repeats):
            f(x, **shared)

    loop()
    t = time.perf_counter()
    loop()
    alone = (time.perf_counter() - t) / repeats
    threads = [threading.Thread(target=loop) for _ in range(2)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    both = (time.perf_counter() - t) / repeats
    return {"jax_call_ms": alone * 1e3, "jax_two_threads_ms_per_pair": both * 1e3, "n_dim": int(compiled.n_dim)}


def part_backends(draws: int, seed: int) -> list[dict]:
    """numba against JAX on the same fits: Kempner (independent noise) and ColPret thinned to 20 checkpoints
    per run with the OU noise, 2 chains x ``draws`` after as many tuning steps, ``extrapolation=None``."""
    from bayes_scaling.inference import compile_cache

    rows = []
    for name, noise in (("kempner", "independent"), ("colpret", "ou")):
        data = load(name)
        if noise == "ou":
            data = bs.data.thin_checkpoints(data, 20)
        timing = _jax_call_timing(data, noise)
        for backend in ("numba", "jax"):
            compile_cache.clear()
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                fit = bs.fit(data, dict(checkpoint_noise=noise, extrapolation=None),
                             dict(backend=backend, draws=draws, tune=draws, chains=2, random_seed=seed))
            d = fit.diagnostics
            r = {"dataset": name, "checkpoint_noise": noise, "backend": backend, "rows": len(data.frame),
                 "wall_seconds": time.perf_counter() - t0, "compile_seconds": fit.sampler_info["compile_seconds"],
                 "sampling_seconds": d.sampling_seconds,
                 "mean_steps_per_draw": float(fit.idata.sample_stats["n_steps"].mean()),
                 "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                 "min_ess_tail": d.min_ess_tail,
                 "mu_mean": fit.idata.posterior["mu"].mean(("chain", "draw")).values.tolist(), **timing}
            print(json.dumps(r), flush=True)
            rows.append(r)
    return rows


def part_blas(datasets: list[str], draws: int, seed: int) -> list[dict]:
    """The same compiled model sampled with BLAS's own thread count and with one BLAS thread, side by side.

    2 chains on 2 cores, ``draws`` after as many tuning steps, default model, independent noise; the first
    sampling of each pair is repeated second (off, on, off) so that neither order nor warm-up favours one.
    """
    import nutpie
    import threadpoolctl

    from bayes_scaling.inference.compile_cache import compile_nutpie
    from bayes_scaling.inference.initial import family_point_estimates, initial_values
    from bayes_scaling.inference.sampling import jittered, nutpie_settings
    from bayes_scaling.model import POPULATION_VARS, ModelSpec, build_model

    threads = sorted({d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"})
    rows = []
    for name in datasets:
        data = load(name)
        spec = ModelSpec.from_data(data)
        model = build_model(data, spec)
        compiled, _, _ = compile_nutpie(model, initial_values(data, spec, family_point_estimates(data, spec)),
                                        jittered(model), "numba")
        kw = {**nutpie_settings(draws=draws, tune=draws, chains=2, target_accept=0.98), "save_warmup": True}
        means = {}
        for label in ("blas_default", "one_blas_thread", "blas_default"):
            t0 = time.perf_counter()
            if label == "one_blas_thread":
                idata = sample_nutpie(compiled, seed=seed, **kw)
            else:
                idata = nutpie.sample(compiled, seed=seed, **kw)
            secs = time.perf_counter() - t0
            steps = int(idata.warmup_sample_stats["n_steps"].sum() + idata.sample_stats["n_steps"].sum())
            keep = [v for v in POPULATION_VARS if v in idata.posterior]
            d = diagnose(idata, keep, secs)
            means[label] = idata.posterior["mu"].mean(("chain", "draw")).to_numpy()
            r = {"dataset": name, "rows": len(data.frame), "blas": label, "blas_threads_default": threads,
                 "sampling_seconds": secs, "leapfrog_steps": steps, "ms_per_step_per_chain": secs / steps * 2e3,
                 "min_ess_bulk": d.min_ess_bulk, "max_rhat": d.max_rhat, "divergences": d.divergences}
            print(json.dumps(r), flush=True)
            rows.append(r)
        rows[-1]["max_abs_mu_mean_difference"] = float(np.max(np.abs(means["blas_default"] - means["one_blas_thread"])))
    return rows


def expected_loss_moments(law: bs.laws.Law, theta: dict[str, np.ndarray], reference: dict, columns: dict[str, np.ndarray],
                          *, dtype: Any = np.float32, threads: int | None = None,
                          chunk_values: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and sd of the expected loss L(theta; x) at many points, with no PyMC graph.

    ``theta`` maps the law's sampling parameters to draws (sample,); ``columns`` its inputs (point,).
    Each term ``exp(log_amp_ref - exponent * z)`` is evaluated as an outer product over (sample, point)
    in ``dtype`` (float32 by default: ~7 significant digits, far below posterior spread) in chunks of
    ``chunk_values`` on ``threads`` threads (numpy releases the GIL). 10^5 points x 4000 draws took
    1.2 s on 2 cores (part ``predict``). Summaries accumulate in float64.
    """
    from concurrent.futures import ThreadPoolExecutor

    z = bs.laws.standardized_inputs(law, columns, reference)
    n_pts = len(next(iter(z.values())))
    name = law.sampling_name  # a power-sum law (Law.terms): the constant and each term's amplitude and exponent
    level = np.exp(np.asarray(theta[name(law.irreducible)], dtype=float)).astype(dtype)[:, None]
    terms = [(np.exp(np.asarray(theta[name(amp)], dtype=float)).astype(dtype)[:, None],
              (-np.exp(np.asarray(theta[name(expo)], dtype=float))).astype(dtype), z[inp].astype(dtype))
             for amp, expo, inp in law.terms]
    n_s = level.shape[0]
    mean, sd = np.empty(n_pts), np.empty(n_pts)
    step = max(1, int(chunk_values) // max(n_s, 1))

    def work(start: int) -> None:
        sl = slice(start, min(start + step, n_pts))
        total = None
        for amp, neg_expo, zi in terms:
            x = np.multiply.outer(neg_expo, zi[sl])
            np.exp(x, out=x)
            x *= amp
            total = x if total is None else np.add(total, x, out=total)
        total += level
        m = total.mean(axis=0, dtype=np.float64)
        mean[sl] = m
        total -= m.astype(dtype)[None, :]
        np.square(total, out=total)
        sd[sl] = np.sqrt(total.mean(axis=0, dtype=np.float64))

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        list(pool.map(work, range(0, n_pts, step)))
    return mean, sd


def part_predict(seed: int, n_points: int = 100_000, n_draws: int = 4000) -> dict:
    law = bs.laws.get_law("chinchilla")
    rng = np.random.default_rng(seed)
    theta = {p: rng.normal(m, 0.05, n_draws) for p, m in
             zip(law.sampling, (0.6, -0.5, np.log(0.35), -0.5, np.log(0.35)))}
    cols = {"params": 10 ** rng.uniform(7, 11, n_points), "tokens": 10 ** rng.uniform(9, 13, n_points)}
    ref = {"params": 1e8, "tokens": 2e9}
    expected_loss_moments(law, theta, ref, {k: v[:10] for k, v in cols.items()})  # warm
    t0 = time.perf_counter()
    mean, sd = expected_loss_moments(law, theta, ref, cols)
    secs = time.perf_counter() - t0
    # the same numbers by the law's own float64 numpy function, on a slice
    sl = slice(0, 200)
    z = bs.laws.standardized_inputs(law, {k: v[sl] for k, v in cols.items()}, ref)
    direct = np.exp(law.log_loss({k: v[:, None] for k, v in theta.items()}, z))
    r = {"points": n_points, "draws": n_draws, "seconds": secs, "cores": os.cpu_count(),
         "max_relative_error_mean": float(np.max(np.abs(mean[sl] / direct.mean(axis=0) - 1))),
         "max_relative_error_sd": float(np.max(np.abs(sd[sl] / direct.std(axis=0) - 1)))}
    print(json.dumps(r), flush=True)
    return r


def plot_cost(cost: dict, path: Path) -> None:
    """The cost curve: log density + gradient time against rows (all vs thinned) and against families."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    rows = cost["rows"]
    a.loglog([r["rows"] for r in rows], [r["gradient_seconds"] * 1e3 for r in rows], "o-", label="every checkpoint")
    a.loglog([r["rows"] for r in rows], [r["thinned_gradient_seconds"] * 1e3 for r in rows], "s--",
             label="thinned to 20 per run")
    a.set_xlabel("rows (checkpoints)")
    a.set_ylabel("log density + gradient (ms)")
    a.legend()
    fams = cost["families"]
    b.loglog([r["families"] for r in fams], [r["gradient_seconds"] * 1e3 for r in fams], "o-")
    b.set_xlabel("families (6 sizes x 10 checkpoints each)")
    b.set_ylabel("log density + gradient (ms)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--parts", default="converge,advi,cost,thinning,predict")
    ap.add_argument("--datasets", default="synthetic40,kempner,porian,colpret")
    ap.add_argument("--configs", default="default,auto,auto_0.9,naive,pymc_nuts")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--until-converged", type=int, default=None, metavar="MAX_DRAWS",
                    help="converge part: double the draws of a fit that did not converge, up to MAX_DRAWS per chain")
    ap.add_argument("--tune", type=int, default=None,
                    help="converge part: tuning steps per chain of every fit (default: as many as its draws)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    ap.add_argument("--checkpoint-noise", default="independent,ou",
                    help="the checkpoint-noise models the thinning_noise part compares (comma-separated)")
    ap.add_argument("--dense", type=int, default=80,
                    help="checkpoints per run of the thinning_noise part's reference fit")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    result: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = {"cores": os.cpu_count(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str))

    if "predict" in parts:
        result["predict"] = part_predict(args.seed)
        save()
    if "cost" in parts:
        result["cost"] = part_cost(args.seed, args.max_rows)
        save()
    if "cost" in parts or "plot" in parts:
        plot_cost(result["cost"], Path(__file__).parent.parent / "docs" / "figures" / "cost_curve.png")
    if "converge" in parts:
        result["converge"] = part_converge(args.datasets.split(","), args.configs.split(","), args.draws, args.seed,
                                           args.until_converged, args.tune)
        save()
    if "store" in parts:
        result["store"] = [r for config in args.configs.split(",")
                           for r in part_store(args.datasets.split(","), args.seed, config)]
        save()
    if "fused" in parts:
        result["fused"] = part_fused(args.datasets.split(","))
        save()
    if "advi" in parts:
        result["advi"] = part_advi("kempner", args.draws, args.seed)
        save()
    if "cache" in parts:
        result["cache"] = part_cache("kempner", args.draws, args.seed)
        save()
    if "backends" in parts:
        result["backends"] = part_backends(args.draws, args.seed)
        save()
    if "blas" in parts:
        result["blas"] = part_blas(args.datasets.split(","), args.draws, args.seed)
        save()
    if "thinning" in parts:
        result["thinning"] = part_thinning("colpret", args.draws, args.seed, per_run=20)["independent"]
        save()
    if "thinning_noise" in parts:
        result["thinning_noise"] = part_thinning("colpret", args.draws, args.seed, per_run=20, dense=args.dense,
                                                 noises=tuple(args.checkpoint_noise.split(",")))
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
