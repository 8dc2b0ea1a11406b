"""Updating a one-size new family with a borrowed population prior (synthetic, known truth).

    python benchmarks/borrow_update.py --out benchmarks/results/borrow_update.json

Fits 4 synthetic families, extracts their population prior, then fits the 5th family from its smallest
model only (6 checkpoints) with that prior, and predicts its largest model (16x the parameters); then
times a second update in the same process (the next size alone), which reuses the compiled model.
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
from bayes_scaling.data.synthetic import simulate_family_parameters, simulate_runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/borrow_update.json")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(11)
    fams = simulate_family_parameters(5, rng)
    df = simulate_runs(fams, rng, sizes=(5e7, 1e8, 2e8, 4e8, 8e8), checkpoints=6, sigma_seed=0.01, sigma_obs=0.004)
    data = bs.ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss", run="run")
    new = sorted(fams)[-1]
    pop = bs.fit(data.select_families([f for f in data.families if f != new]), draws=500, tune=500, chains=2,
                 random_seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = bs.PopulationPrior.from_fit(pop).save(Path(tmp) / "population.nc")
        size = path.stat().st_size
        one = df[(df.family == new) & (df.params == df.params.min())]
        d1 = bs.ScalingData.from_frame(one, family="family", params="params", tokens="tokens", loss="loss", run="run")
        t = time.perf_counter()
        f1 = bs.fit(d1, borrow=path, draws=500, tune=500, chains=2)
        wall = time.perf_counter() - t
        # a second update in the same process (another one-size data set of the new family): the compiled
        # model of the first is reused with the new data (bayes_scaling.inference.compile_cache)
        two = df[(df.family == new) & (df.params == np.sort(df.params.unique())[1])]
        d2 = bs.ScalingData.from_frame(two, family="family", params="params", tokens="tokens", loss="loss", run="run")
        t = time.perf_counter()
        f2 = bs.fit(d2, borrow=path, draws=500, tune=500, chains=2)
        warm_wall = time.perf_counter() - t
    big = df[(df.family == new) & (df.params == df.params.max())]
    p = f1.predict(new, big.params.values, big.tokens.values, interval=0.9)
    last = big.tokens.values.argmax()
    res = {"cores": os.cpu_count(), "prior_file_bytes": size, "update_wall_seconds": wall,
           "compile_seconds": f1.sampler_info.get("compile_seconds"), "sampling_seconds": f1.diagnostics.sampling_seconds,
           "warm_update_wall_seconds": warm_wall, "warm_compile_cache_hit": f2.sampler_info["compile_cache_hit"],
           "divergences": f1.diagnostics.divergences, "max_rhat": f1.diagnostics.max_rhat,
           "target_true_loss": float(big.loss.values[last]), "target_median": float(p["run_median"][last]),
           "target_90": [float(p["run_lower"][last]), float(p["run_upper"][last])],
           "are_largest_model": bs.are(big.loss.values, p["run_median"].values)}
    print(json.dumps(res, indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
