"""Issue-2 evidence on real data, measured in one run; writes JSON and a Markdown section.

    python benchmarks/core_real_data.py --out benchmarks/results/core_real_data.json

1. Kempner (6 corpora, 529 runs): default fit, convergence and wall time.
2. Epoch's 240 Chinchilla points: 95% intervals vs Epoch's published refit.
3. Datablations code runs keyed by the column Seed: sigma_seed vs the raw spread of final losses, and
   the one-run vs expected-loss interval widths.
4. Honest extrapolation on Kempner: hold out each corpus's top IsoFLOP budget, fit the rest, predict it,
   with and without the learned extrapolation-discrepancy term.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.data import load_datablations_code, load_epoch_chinchilla, load_kempner

warnings.simplefilter("ignore", FutureWarning)
EPOCH = {"E": 1.817, "A": 482.0, "alpha": 0.348, "B": 2085.4, "beta": 0.366}


def kempner_default() -> dict:
    t = time.perf_counter()
    f = bs.fit(load_kempner())
    wall = time.perf_counter() - t
    s = f.summary()
    return {"wall_seconds": wall, **{k: s[k] for k in ("divergences", "max_rhat", "min_ess_bulk", "min_ess_tail",
                                                        "sampling_seconds", "compile_seconds")},
            "kappa_median": s["extrapolation"].get("kappa_median"),
            "drift_median": s["extrapolation"].get("drift_median"), "target_accept": f.sampler_info.get("target_accept")}


def epoch() -> dict:
    out = {}
    for likelihood in ("student_t", "normal"):
        t = time.perf_counter()
        f = bs.fit(load_epoch_chinchilla(drop_highest_losses=5), dict(likelihood=likelihood))
        wall = time.perf_counter() - t
        s = f.summary(interval=0.95)
        rows = {}
        for k, v in EPOCH.items():
            p = s["parameters"][k]
            rows[k] = {"epoch": v, "median": p["median"], "lower": p["lower"], "upper": p["upper"],
                       "contains": p["lower"] <= v <= p["upper"]}
        out[likelihood] = {"wall_seconds": wall, "divergences": s["divergences"], "max_rhat": s["max_rhat"],
                           "min_ess_bulk": s["min_ess_bulk"], "min_ess_tail": s["min_ess_tail"],
                           "nu": s["parameters"].get("nu"), "parameters": rows}
    return out


def seeds() -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.errors.SeedSpreadWarning)
        data = load_datablations_code()
    data_warnings = [str(w.message) for w in caught if issubclass(w.category, bs.errors.SeedSpreadWarning)]
    rt = data.run_table()
    spread = rt.groupby("family")["final_loss"].agg(lambda x: float(np.log(x).max() - np.log(x).min()))
    t = time.perf_counter()
    f = bs.fit(data)
    wall = time.perf_counter() - t
    s = f.summary()
    fam = data.families[0]
    n, dmax = float(rt["params"].iloc[0]), float(rt["max_tokens"].max())
    p = f.predict(fam, n, dmax)
    return {"wall_seconds": wall, "data_warnings": data_warnings, "divergences": s["divergences"],
            "max_rhat": s["max_rhat"], "min_ess_bulk": s["min_ess_bulk"], "sigma_seed": s["parameters"]["sigma_seed"],
            "sigma_obs": s["parameters"]["sigma_obs"],
            "raw_log_spread_final_mean": float(spread.mean()),
            "raw_log_sd_final": float(spread.mean() / np.sqrt(2)),
            "final_loss_by_seed": rt.pivot_table(index="family", columns="seed", values="final_loss").round(4).to_dict(),
            "one_run_interval": [float(p["run_lower"][0]), float(p["run_upper"][0])],
            "expected_interval": [float(p["expected_lower"][0]), float(p["expected_upper"][0])]}


def extrapolation() -> dict:
    data = load_kempner()
    raw = pd.read_csv(bs.data.data_root() / "kempner_loss_to_loss" / "sweep.csv")
    top = raw.groupby("data")["iso_flop"].transform("max")
    held_ids = set(raw.loc[raw["iso_flop"] == top, "id"].astype(str))
    held = data.frame["run"].isin(held_ids).to_numpy()
    train = data.subset(~held, name="holdout_top_isoflop", reason="each corpus's top IsoFLOP budget held out")
    test = data.frame.loc[held]
    out = {"heldout_runs": int(held.sum()), "train_runs": int((~held).sum())}
    for mode in ("learn", None):
        t = time.perf_counter()
        f = bs.fit(train, dict(extrapolation=mode))
        wall = time.perf_counter() - t
        p = f.predict(test["family"].to_numpy(), test["params"].to_numpy(), test["tokens"].to_numpy(), interval=0.9)
        y = test["loss"].to_numpy()
        cover = (y >= p["run_lower"].values) & (y <= p["run_upper"].values)
        p50 = f.predict(test["family"].to_numpy(), test["params"].to_numpy(), test["tokens"].to_numpy(), interval=0.5)
        cover50 = (y >= p50["run_lower"].values) & (y <= p50["run_upper"].values)
        width = (p["run_upper"].values - p["run_lower"].values) / p["run_median"].values
        d = np.log10(test["flops"].to_numpy()) - np.array([f.spec.family_max_log10_flops[x] for x in test["family"]])
        out[str(mode)] = {"wall_seconds": wall, "are": bs.evaluate.are(y, p["run_median"].values),
                          "coverage90": float(cover.mean()), "coverage50": float(cover50.mean()),
                          "mean_rel_width90": float(width.mean()), "max_abs_rel_error": float(np.max(np.abs(y / p["run_median"].values - 1))),
                          "distance_decades_max": float(d.max()), "divergences": f.diagnostics.divergences,
                          "kappa_median": f.extrapolation.get("kappa_median"),
                          "drift_median": f.extrapolation.get("drift_median"),
                          "mean_rel_error": float(np.mean(y / p["run_median"].values - 1))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/core_real_data.json")
    ap.add_argument("--only", default=None, help="comma-separated subset of: kempner,epoch,seeds,extrapolation")
    a = ap.parse_args()
    jobs = {"kempner": kempner_default, "epoch": epoch, "extrapolation": extrapolation, "seeds": seeds}
    names = a.only.split(",") if a.only else list(jobs)
    res = {"cores": os.cpu_count()}
    for n in names:
        print(f"== {n}", flush=True)
        res[n] = jobs[n]()
        print(json.dumps(res[n], indent=1, default=float), flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, default=float))  # after each part


if __name__ == "__main__":
    main()
