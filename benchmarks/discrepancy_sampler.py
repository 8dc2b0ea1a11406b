"""The extrapolation discrepancy's ensemble sampler on a real fit's calibration records, its covariance factored
two ways side by side in one process: whole (one n x n Cholesky factor per split and walker) and as the runs'
variances plus a low-rank factor (the default where that factor has fewer columns than the split has runs).

    python benchmarks/discrepancy_sampler.py --zoo porian --out benchmarks/results/discrepancy_sampler.json

The zoo is fitted once with the backtest's settings (2 chains x 500 draws, the fixed whitening), which runs its
nested leave-out and keeps each calibration fit's held-out runs; the sampler then learns the discrepancy from
those runs with either factorisation, the same seed, and the two posteriors' medians are printed beside the
seconds (the same draws up to floating-point rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

import bayes_scaling as bs
from bayes_scaling.data import load_kempner, load_misfitting, load_porian
from bayes_scaling.inference.extrapolation import HeldOut, discrepancy_posterior

ZOOS = {"porian": load_porian, "kempner": load_kempner, "misfitting": load_misfitting}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default="porian", choices=sorted(ZOOS))
    ap.add_argument("--draws", type=int, default=4000, help="discrepancy draws to keep")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(ZOOS[a.zoo](), None, {"draws": 500, "tune": 500, "chains": 2, "until_converged": False,
                                           "whiten": True, "random_seed": 0})
    ex = fit.extrapolation
    held = [HeldOut.from_dict(r["held_runs"]) for r in ex["splits"] if "held_runs" in r]
    n_dir = len(ex["directions"])
    rows = []
    for low_rank, name in ((False, "whole covariance"), (True, "variances + low-rank factor")):
        t0 = time.perf_counter()
        d = discrepancy_posterior(held, fit.spec.priors, a.draws, np.random.default_rng(0), n_dir=n_dir,
                                  low_rank=low_rank)
        seconds = time.perf_counter() - t0
        rows.append({"factorisation": name, "seconds": seconds,
                     **{f"kappa_{k}": float(np.median(d["kappa"][:, i])) for i, k in enumerate(ex["directions"])},
                     **{f"drift_{k}": float(np.median(d["drift"][:, i])) for i, k in enumerate(ex["directions"])},
                     "growth": float(np.median(d["growth"])), "shared": float(np.median(d["shared"]))})
        print(json.dumps(rows[-1]), flush=True)
    record = {"zoo": a.zoo, "families": len(fit.families), "cores": os.cpu_count(),
              "held_out_runs_per_split": [len(h.resid) for h in held], "rows": rows,
              "speedup": rows[0]["seconds"] / rows[1]["seconds"]}
    print(f"{a.zoo}: splits of {record['held_out_runs_per_split']} held-out runs; whole {rows[0]['seconds']:.1f} s, "
          f"low-rank {rows[1]['seconds']:.1f} s ({record['speedup']:.1f}x)")
    if a.out:
        a.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
