"""The data-constrained law on the datablations runs: fit few-epoch runs, predict many-epoch ones.

    python benchmarks/data_constrained.py --out benchmarks/results/data_constrained.json

Data: ../shared/data/colpret/datablations_losses.csv (Muennighoff et al. 2023, "Scaling Data-Constrained
Language Models", via IBM/ColPret, MIT): 2.8B, 4.2B and 8.7B models on c4 and oscar, each trained to one budget
(55B, 84B, 178B tokens) in 1, 2, 3, 4, 5, 7, 14 or 44 epochs of a smaller unique set. Families: c4 and oscar.
Rows (``--rows``): each run's final loss (default), or its checkpoints from 10B tokens (the guide's cut), at most
``--per-run`` per run, evenly spread in log tokens with the last kept; a checkpoint's unique tokens are
min(tokens, tokens per epoch). The runs decay their learning rate to their final token count, and the law's
U_N = min(N, N_opt(U_D)) describes finished models, so a checkpoint mid-run is not what the law predicts.

Fit: the runs of at most ``--max-epochs`` epochs (default 4), twice: with the learned extrapolation discrepancy
(the default model: nested leave-out in compute, size, tokens per parameter and epochs) and without one. Targets:
the final loss of every run with more epochs. Against: a least-squares fit of the same law to the same rows, per
family (Huber loss on log loss, delta 1e-3, the best of a grid of starts), as Muennighoff et al. and the
Hitchhiker's guide fit. Reported per fit: ARE of the medians per epoch count, coverage of the one-run intervals,
and the posterior of R*_D and R*_N beside the paper's 15.4 and 5.3 (fitted there on all their runs, including far
smaller models); for the learned discrepancy, its scale per decade of epochs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

import bayes_scaling as bs
from bayes_scaling.data import drop_early_checkpoints, keep_final_checkpoint
from bayes_scaling.laws import DATA_CONSTRAINED, reference_scales, standardized_inputs

PAPER = {"R_D": 15.4, "R_N": 5.3}


def thinned(data: bs.ScalingData, per_run: int) -> bs.ScalingData:
    """At most ``per_run`` checkpoints per run, evenly spread in log tokens, the last always kept."""
    df = data.frame
    keep = np.zeros(len(df), dtype=bool)
    for _, idx in df.groupby("run").indices.items():
        lt = np.log(df["tokens"].to_numpy()[idx])
        want = np.linspace(lt.min(), lt.max(), per_run)
        pick = {int(np.argmin(np.abs(lt - w))) for w in want} | {int(np.argmax(lt))}
        keep[idx[sorted(pick)]] = True
    return data.subset(keep, name="thinned", reason=f"at most {per_run} checkpoints per run (benchmark speed)")


def run_epochs(df: pd.DataFrame) -> pd.Series:
    """Each row's run's epoch count (its final tokens over its unique tokens)."""
    g = df.groupby("run")
    return (g["tokens"].transform("max") / g["unique_tokens"].transform("max")).round()


def least_squares_fit(train: pd.DataFrame, targets: pd.DataFrame, median_loss: float) -> np.ndarray:
    """Per family: Huber least squares of the law on log loss from a grid of starts; predictions at targets."""
    law = DATA_CONSTRAINED
    base = {p: prior["mu"] for p, prior in bs.Priors.default(law, median_loss).mu.items()}
    out = np.full(len(targets), np.nan)
    for fam, sub in train.groupby("family"):
        ref = reference_scales(law, {c: sub[c].to_numpy() for c in law.inputs})
        z = standardized_inputs(law, sub, ref)
        y = np.log(sub["loss"].to_numpy())

        def resid(x):
            with np.errstate(all="ignore"):
                r = y - law.log_loss(dict(zip(law.sampling, x)), z, ref=ref)
            return np.where(np.isfinite(r), r, 1.0)

        best = None
        for la, lb, rd, rn in itertools.product(np.log([0.2, 0.35, 0.5]), np.log([0.2, 0.35, 0.5]),
                                                np.log([2.0, 10.0, 50.0]), np.log([2.0, 10.0, 50.0])):
            x0 = np.array([base[p] for p in law.sampling])
            x0[[2, 4, 5, 6]] = la, lb, rd, rn
            res = least_squares(resid, x0, loss="huber", f_scale=1e-3, max_nfev=2000)
            if best is None or res.cost < best.cost:
                best = res
        tgt = targets["family"].to_numpy() == fam
        zt = standardized_inputs(law, targets[tgt], ref)
        out[tgt] = np.exp(law.log_loss(dict(zip(law.sampling, best.x)), zt, ref=ref))
        nat = law.to_natural(dict(zip(law.sampling, best.x)), ref)
        print(f"least squares {fam}: " + ", ".join(f"{k}={float(v):.4g}" for k, v in nat.items()), flush=True)
    return out


def scored_fit(train: bs.ScalingData, targets: pd.DataFrame, ls: np.ndarray, extrapolation: str | None,
               sampler: dict) -> dict:
    """Fit the data-constrained law to ``train`` with ``extrapolation``; its predictions of ``targets`` scored beside
    the least-squares predictions ``ls``."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.errors.SamplingWarning)
        fit = bs.fit(train, dict(law="data_constrained", extrapolation=extrapolation), sampler)
    seconds = time.perf_counter() - t0
    pred = fit.predict(targets["family"].to_numpy(), targets["params"].to_numpy(), targets["tokens"].to_numpy(),
                       inputs={"unique_tokens": targets["unique_tokens"].to_numpy()}, interval=0.9)
    pred50 = fit.predict(targets["family"].to_numpy(), targets["params"].to_numpy(), targets["tokens"].to_numpy(),
                         inputs={"unique_tokens": targets["unique_tokens"].to_numpy()}, interval=0.5)
    y = targets["loss"].to_numpy()
    t = targets.assign(bayes=pred["run_median"].to_numpy(), lower=pred["run_lower"].to_numpy(),
                       upper=pred["run_upper"].to_numpy(), lower50=pred50["run_lower"].to_numpy(),
                       upper50=pred50["run_upper"].to_numpy(), least_squares=ls)
    t["are_bayes"] = np.abs(t["bayes"] / y - 1)
    t["are_ls"] = np.abs(t["least_squares"] / y - 1)
    t["in90"] = (y >= t["lower"]) & (y <= t["upper"])
    t["in50"] = (y >= t["lower50"]) & (y <= t["upper50"])
    t["width90"] = (t["upper"] - t["lower"]) / t["bayes"]
    by_epochs = t.groupby("epochs").agg(targets=("loss", "size"), are_bayes=("are_bayes", "mean"),
                                        are_least_squares=("are_ls", "mean"), coverage90=("in90", "mean"),
                                        coverage50=("in50", "mean"), width90=("width90", "median")).reset_index()
    post = fit.idata.posterior
    r_star = {}
    for p in ("R_D", "R_N"):
        for level, da in [("population", post["population_natural"].sel(law_param=p))] + [
                (f, post["natural"].sel(family=f, law_param=p)) for f in fit.families]:
            q = da.quantile([0.05, 0.5, 0.95], dim=("chain", "draw")).to_numpy()
            r_star.setdefault(p, {})[level] = {"median": float(q[1]), "lower": float(q[0]), "upper": float(q[2])}
    kappa_epochs = None
    if "kappa" in post:
        q = post["kappa"].sel(direction="epochs").quantile([0.05, 0.5, 0.95], dim=("chain", "draw")).to_numpy()
        kappa_epochs = {"median": float(q[1]), "lower": float(q[0]), "upper": float(q[2])}
    d = fit.diagnostics
    below = t["epochs"] < 44
    return {"extrapolation": extrapolation, "fit_seconds": seconds,
            "diagnostics": {"divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                            "min_ess_tail": d.min_ess_tail},
            "warnings": sorted({str(w.message) for w in caught if issubclass(w.category, bs.errors.SamplingWarning)}),
            "are": {"bayes": float(t["are_bayes"].mean()), "least_squares": float(t["are_ls"].mean()),
                    "bayes_below_44": float(t.loc[below, "are_bayes"].mean()),
                    "least_squares_below_44": float(t.loc[below, "are_ls"].mean())},
            "coverage90": float(t["in90"].mean()), "coverage50": float(t["in50"].mean()),
            "coverage90_below_44": float(t.loc[below, "in90"].mean()),
            "coverage50_below_44": float(t.loc[below, "in50"].mean()),
            "by_epochs": by_epochs.to_dict("records"), "r_star": r_star, "kappa_epochs": kappa_epochs,
            "splits": [{k: r.get(k) for k in ("description", "heldout_are", "heldout_z_rms", "max_distance")}
                       for r in fit.extrapolation.get("splits", [])],
            "targets_table": t[["family", "params", "epochs", "loss", "bayes", "lower", "upper", "least_squares"]]
            .to_dict("records")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-epochs", type=int, default=4)
    ap.add_argument("--per-run", type=int, default=30)
    ap.add_argument("--rows", choices=["final", "checkpoints"], default="final",
                    help="fit each run's final loss (the law describes finished runs) or its checkpoints")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--target-accept", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    data = thinned(drop_early_checkpoints(bs.data.load_datablations(), 1e10), a.per_run)
    df = data.frame
    ep = run_epochs(df).to_numpy()
    train = data.subset(ep <= a.max_epochs, name="many_epochs", reason=f"held out: runs of more than {a.max_epochs} epochs")
    if a.rows == "final":
        train = keep_final_checkpoint(train)
    last = df.groupby("run")["tokens"].transform("max").to_numpy() == df["tokens"].to_numpy()
    targets = df[(ep > a.max_epochs) & last].assign(epochs=ep[(ep > a.max_epochs) & last]).reset_index(drop=True)
    print(f"{len(train)} training rows ({train.frame['run'].nunique()} runs), {len(targets)} targets", flush=True)

    ls = least_squares_fit(train.frame, targets, float(np.median(train.frame["loss"])))
    res = {"rows_kind": a.rows, "rows": len(train), "runs": int(train.frame["run"].nunique()), "targets": len(targets),
           "max_epochs": a.max_epochs, "per_run": a.per_run, "paper": PAPER,
           "least_squares_are": {"all": float(np.mean(np.abs(ls / targets["loss"].to_numpy() - 1))),
                                 "below_44": float(np.mean(np.abs(ls / targets["loss"].to_numpy() - 1)
                                                           [targets["epochs"].to_numpy() < 44]))},
           "fits": {}}
    sampler = dict(draws=a.draws, tune=a.tune, target_accept=a.target_accept, random_seed=a.seed)
    for name, extrapolation in (("learned discrepancy", "learn"), ("no discrepancy", None)):
        res["fits"][name] = scored_fit(train, targets, ls, extrapolation, sampler)
    text = json.dumps(res, indent=1, default=float)
    for name, r in res["fits"].items():
        print(name)
        print(pd.DataFrame(r["by_epochs"]).to_string())
        print(json.dumps({k: r[k] for k in ("are", "coverage90", "coverage50", "r_star", "kappa_epochs", "diagnostics",
                                            "fit_seconds")}, indent=1, default=float))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == "__main__":
    main()
