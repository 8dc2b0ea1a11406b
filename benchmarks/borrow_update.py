"""Updating a one-size new family with a borrowed population prior (synthetic, known truth).

    python benchmarks/borrow_update.py --out benchmarks/results/borrow_update.json
    python benchmarks/borrow_update.py --checkpoint-noise ou --backends numba,jax,auto \
        --out benchmarks/results/borrow_update_ou.json

Fits 4 synthetic families, extracts their population prior, then fits the 5th family from its smallest
model only (6 checkpoints) with that prior, and predicts its largest model (16x the parameters); then
times a second update in the same process (the next size alone), which may reuse the compiled model.
With several ``--backends`` the two updates are timed for each in turn, side by side in one process,
the compiled-model cache emptied before each (as in a new process).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import bayes_scaling as bs
from bayes_scaling.inference import compile_cache
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/borrow_update.json")
    ap.add_argument("--checkpoint-noise", default="independent", choices=["independent", "ou"])
    ap.add_argument("--backends", default="auto", help="comma-separated compile backends: auto, numba, jax")
    a = ap.parse_args()
    noise = a.checkpoint_noise
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(11)
    fams = simulate_family_parameters(5, rng)
    df = simulate_runs(fams, rng, sizes=(5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=6, sigma_seed=0.01, sigma_obs=0.004)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    new = sorted(fams)[-1]
    pop = bs.fit(data.select_families([f for f in data.families if f != new]), dict(checkpoint_noise=noise),
                 dict(draws=500, tune=500, chains=2, random_seed=1))
    with tempfile.TemporaryDirectory() as tmp:
        path = bs.PopulationPrior.from_fit(pop).save(Path(tmp) / "population.nc")
        size = path.stat().st_size
        one = df[(df.family == new) & (df.params == df.params.min())]
        d1 = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
        # a second update in the same process (another one-size data set of the new family), which may reuse
        # the compiled model of the first (bayes_scaling.inference.compile_cache)
        two = df[(df.family == new) & (df.params == np.sort(df.params.unique())[1])]
        d2 = bs.ScalingData.from_frame(two, family="family", params="params", tokens="tokens", loss="loss", run="run")
        big = df[(df.family == new) & (df.params == df.params.max())]
        last = big.tokens.values.argmax()
        runs = {}
        for backend in a.backends.split(","):
            compile_cache.clear()
            t = time.perf_counter()
            f1 = bs.fit(d1, dict(checkpoint_noise=noise),
                        dict(draws=500, tune=500, chains=2, backend=backend), borrow=path)
            wall = time.perf_counter() - t
            t = time.perf_counter()
            f2 = bs.fit(d2, dict(checkpoint_noise=noise),
                        dict(draws=500, tune=500, chains=2, backend=backend), borrow=path)
            warm_wall = time.perf_counter() - t
            p = f1.predict(new, big.params.values, big.tokens.values, interval=0.9)
            runs[backend] = {
                "update_wall_seconds": wall, "backend_used": f1.sampler_info["backend"],
                "compile_seconds": f1.sampler_info.get("compile_seconds"),
                "sampling_seconds": f1.diagnostics.sampling_seconds, "warm_update_wall_seconds": warm_wall,
                "warm_backend_used": f2.sampler_info["backend"],
                "warm_compile_cache_hit": f2.sampler_info["compile_cache_hit"],
                "divergences": f1.diagnostics.divergences, "max_rhat": f1.diagnostics.max_rhat,
                "min_ess_bulk": f1.diagnostics.min_ess_bulk,
                "target_median": float(p["run_median"][last]),
                "target_90": [float(p["run_lower"][last]), float(p["run_upper"][last])],
                "are_largest_model": bs.evaluate.are(big.loss.values, p["run_median"].values)}
            print(backend, json.dumps(runs[backend]), flush=True)
    res = {"cores": os.cpu_count(), "checkpoint_noise": noise, "prior_file_bytes": size,
           "target_true_loss": float(big.loss.values[last]), "updates": runs}
    if len(runs) == 1:  # the single-backend layout of earlier runs
        res.update(next(iter(runs.values())))
    print(json.dumps(res, indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
