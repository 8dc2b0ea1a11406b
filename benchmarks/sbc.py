"""Simulation-based calibration of the hierarchical model: ranks, chi-square tests, rank histograms.

    python benchmarks/sbc.py --sims 100 --draws 1000 --thin 20 --out benchmarks/results/sbc.json \
        --plot docs/figures/sbc_ranks.png
"""

from __future__ import annotations

import argparse
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from bayes_scaling.evaluate.sbc import sbc, uniformity  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=100)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--noncentering", default=None, help="'all' to non-centre every family parameter (default: centred, as bs.fit)")
    ap.add_argument("--out", default="benchmarks/results/sbc.json")
    ap.add_argument("--plot", default="docs/figures/sbc_ranks.png")
    a = ap.parse_args()
    t0 = time.perf_counter()
    ranks = sbc(n_sims=a.sims, draws=a.draws, thin=a.thin, noncentering=a.noncentering, random_seed=0)
    wall = time.perf_counter() - t0
    L, names = ranks.attrs["L"], ranks.attrs["names"]
    tests = uniformity(ranks, L, names, bins=a.bins)
    # one combined test: Fisher's method over the parameters (they are not independent: read it as a summary)
    fisher = stats.combine_pvalues(tests["p_value"].to_numpy(), method="fisher")
    res = {"command": f"python benchmarks/sbc.py --sims {a.sims} --draws {a.draws} --thin {a.thin} --out {a.out} "
                      f"--plot {a.plot}" + (f" --noncentering {a.noncentering}" if a.noncentering else ""),
           "cores": os.cpu_count(), "noncentred": ranks.attrs["noncentred"],
           "target_accept": ranks.attrs["target_accept"], "sims": a.sims, "draws_per_chain": ranks.attrs["draws"],
           "chains": ranks.attrs["chains"], "thin": a.thin, "L": L, "bins": a.bins,
           "wall_seconds": wall, "compile_seconds": ranks.attrs["compile_seconds"],
           "design_rows": ranks.attrs["design_rows"], "families": ranks.attrs["families"],
           "sims_with_divergences": int((ranks["divergences"] > 0).sum()),
           "sims_rhat_above_1_01": int((ranks["max_rhat"] > 1.01).sum()),
           "sims_rhat_above_1_05": int((ranks["max_rhat"] > 1.05).sum()),
           "median_max_rhat": float(ranks["max_rhat"].median()),
           "sims_min_ess_bulk_below_L": int((ranks["min_ess_bulk"] < L).sum()),
           "median_min_ess_bulk": float(ranks["min_ess_bulk"].median()),
           "tests": tests.to_dict("records"), "bonferroni_min_p": float(tests["p_value"].min() * len(tests)),
           "fisher_statistic": float(fisher.statistic), "fisher_p": float(fisher.pvalue),
           "ranks": ranks.to_dict("records")}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    fig, axes = plt.subplots(3, 4, figsize=(13, 7.5))
    edges = np.linspace(-0.5, L + 0.5, a.bins + 1)
    expect = a.sims / a.bins
    lo, hi = stats.binom.ppf([0.005, 0.995], a.sims, 1 / a.bins)
    for ax, n, row in zip(axes.ravel(), names, tests.itertuples()):
        ax.hist(ranks[n], bins=edges, color="tab:blue", alpha=0.75)
        ax.axhspan(lo, hi, color="grey", alpha=0.2, lw=0)
        ax.axhline(expect, color="black", lw=0.8)
        ax.set_title(f"{n}  p={row.p_value:.2g}", fontsize=9)
        ax.set_yticks([])
    fig.suptitle(f"SBC rank histograms, {a.sims} simulations, L={L} (grey: 99% band of a uniform bin count)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(a.plot), exist_ok=True)
    fig.savefig(a.plot, dpi=100)
    print(tests.round(4).to_string(index=False))
    print({k: res[k] for k in ("wall_seconds", "compile_seconds", "sims_with_divergences", "sims_rhat_above_1_01",
                               "sims_rhat_above_1_05", "median_min_ess_bulk", "fisher_p", "bonferroni_min_p")})


if __name__ == "__main__":
    main()
