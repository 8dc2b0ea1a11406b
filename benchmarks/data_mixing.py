"""The BiMix data-mixing law, hierarchical across domains, on the BiMix release (Pile, SlimPajama).

For each dataset: fit ours (hierarchical BiMix, NUTS, share-extrapolation term learned by
leave-one-mixture-out) and the release's method (per-domain least squares of the same law) on the four
entropy-proxy mixtures (SE, JE, CE, VNE); predict every domain and step of the held-out Baseline and
DoReMi mixtures; report the mean relative error of both, side by side, and the coverage of our 50%
and 90% one-run intervals. Then optimise the mixture at the last step under the posterior and compare
it with the release's BiMix-optimised mixture (configs/*_opt.json) and the Baseline.

    python benchmarks/data_mixing.py --out benchmarks/results/data_mixing.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from bayes_scaling.mixing.data import load_bimix, load_bimix_config
from bayes_scaling.mixing.decisions import compare_mixtures, optimize_mixture
from bayes_scaling.mixing.evaluate import evaluate_heldout

TRAIN = ["SE", "JE", "CE", "VNE"]
HELDOUT = ["Baseline", "DoReMi"]


def run(name: str, fit_kwargs: dict) -> dict:
    data = load_bimix(name)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table, summary, fit = evaluate_heldout(data, TRAIN, HELDOUT, **fit_kwargs)
    seconds = time.perf_counter() - t0
    d = fit.diagnostics
    step = float(data.frame["step"].max())
    opt = optimize_mixture(fit, step)
    props = data.proportions()
    mixtures = {"ours (optimised)": opt.to_dict(), "release *_opt": load_bimix_config(name, "opt").to_dict(),
                **{m: props.loc[m].to_dict() for m in TRAIN + HELDOUT}}
    comp = compare_mixtures(fit, mixtures, step)
    last = data.frame[data.frame["step"] == step]
    comp["observed"] = comp["mixture"].map(last.groupby("mixture")["loss"].mean())  # trained mixtures only
    release_opt = np.array([mixtures["release *_opt"][k] for k in fit.domains])
    return {
        "dataset": name, "domains": len(fit.domains), "train_rows": int((data.frame["mixture"].isin(TRAIN)).sum()),
        "fit_seconds_including_inner_fits": seconds, "sampling_seconds": d.sampling_seconds,
        "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
        "min_ess_tail": d.min_ess_tail, "warnings": sorted({str(w.message) for w in caught}),
        "extrapolation": fit.extrapolation,
        "heldout": summary.to_dict("records"),
        "overall": {"mre_ours": float(table["re_ours"].mean()), "mre_least_squares": float(table["re_least_squares"].mean()),
                    "coverage_50": float(table["in50"].mean()), "coverage_90": float(table["in90"].mean()),
                    "median_re_ours": float(table["re_ours"].median()),
                    "median_re_least_squares": float(table["re_least_squares"].median())},
        "optimised_mixture": {k: float(v) for k, v in opt.items()},
        "optimiser_converged": opt.attrs["converged"],
        "l1_distance_to_release_opt": float(np.abs(opt.to_numpy() - release_opt).sum()),
        "comparison_at_last_step": comp.to_dict("records"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/data_mixing.json")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--datasets", default="slimpajama,pile")
    ap.add_argument("--likelihood", default="normal", choices=["normal", "student_t"],
                    help="distribution of a run's deviation from the law")
    a = ap.parse_args()
    fit_kwargs = dict(likelihood=a.likelihood, sampler=dict(draws=a.draws, tune=a.draws, chains=a.chains, random_seed=1))
    command = f"python benchmarks/data_mixing.py --out {a.out} --datasets {a.datasets} --likelihood {a.likelihood}"
    res = {"command": command, "cores": os.cpu_count(),
           "fit_settings": fit_kwargs, "results": []}
    for name in a.datasets.split(","):
        r = run(name, fit_kwargs)
        print(json.dumps({k: r[k] for k in ("dataset", "fit_seconds_including_inner_fits", "divergences", "max_rhat",
                                            "min_ess_bulk", "overall", "heldout", "extrapolation",
                                            "l1_distance_to_release_opt")}, indent=1, default=str))
        print(json.dumps(r["comparison_at_last_step"], indent=1))
        res["results"].append(r)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1, default=str)


if __name__ == "__main__":
    main()
