"""Backtest run planning against the guide's heuristics on real zoos, and time the planner.

    python benchmarks/planning.py                                   # kempner and porian, every family
    python benchmarks/planning.py --only kempner --families 3 --draws 300 --tune 300

Per dataset and held-out family (:mod:`bayes_scaling.evaluate.planning`): the population prior from
the other families; the target is the family's most expensive run; per budget (a fraction of the
target's compute) the plan's runs, the spread heuristic's runs and (at its own cost) the
target-at-30% run are revealed and scored with the same borrowed-prior fit. Writes
``benchmarks/results/planning_<dataset>.csv`` after every family, ``planning.json`` (the summary
tables, the per-heuristic match table of :func:`backtest_matches`, and the planner's own time on a
50-candidate grid) and ``planning.png`` (ARE against compute
spent, per method).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.evaluate.planning import (BacktestSettings, backtest_matches, backtest_planning, budget_labels,
                                             matches_table)
from bayes_scaling.grid.config import DATASETS
from bayes_scaling.model.spec import CHECKPOINT_NOISES
from bayes_scaling.report.format import markdown_table

RESULTS = Path(__file__).parent / "results"


def backtest_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, budget and method: families, median compute spent, median and mean ARE, 90% coverage."""
    r = results.assign(budget_label=budget_labels(results))
    g = r.groupby(["dataset", "budget_label", "method"], sort=False)
    return g.agg(families=("are", "size"), spent_fraction=("spent_fraction", "median"), runs=("runs", "median"),
                 median_are=("are", "median"), mean_are=("are", "mean"), cover90=("cover90", "mean"),
                 expected_are=("expected_are", "median")).reset_index()


def planner_timing(prior: bs.PopulationPrior, target: dict, seed: int = 0) -> dict:
    """plan() on the default 50-candidate grid, greedy to the budget (no early stop)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = bs.decisions.plan(prior, target, budget=0.3 * 6 * target["params"] * target["tokens"], stop_at_accuracy=False,
                    random_seed=seed)
    return {"seconds": time.perf_counter() - t0, "candidates": p.settings["candidates"], "steps": len(p.chosen),
            "fantasies": p.settings["fantasies"], "draws": p.settings["draws"]}


def markdown(table: pd.DataFrame) -> str:
    return markdown_table(
        ["budget", "method", "families", "compute spent (median, x target)", "runs (median)", "median ARE", "mean ARE",
         "90% covers", "plan's expected ARE"],
        ([r.budget_label, r.method, r.families, f"{r.spent_fraction:.3f}", f"{r.runs:g}", f"{r.median_are:.2%}",
          f"{r.mean_are:.2%}", f"{r.cover90:.0%}", f"{r.expected_are:.2%}"] for r in table.itertuples()))


def markdown_matches(table: pd.DataFrame) -> str:
    return markdown_table(
        ["dataset", "heuristic", "budget", "families", "plan matched its ARE within its compute",
         "median compute ratio (plan / heuristic)", "plan's ARE lower at the same budget",
         "median ARE: heuristic / plan"],
        ([r.dataset, r.heuristic, r.budget, r.families, f"{r.matched}/{r.families}",
          "–" if np.isnan(r.median_ratio) else f"{r.median_ratio:.2f}", f"{r.lower_at_same_budget}/{r.families}",
          f"{r.heuristic_median_are:.2%} / {r.plan_median_are:.2%}"] for r in table.itertuples()))


def plot(results: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        r = results[results["dataset"] == name]
        for method, marker in (("plan", "o"), ("spread", "s"), ("target_30pct", "^")):
            m = r[r["method"] == method]
            if len(m) == 0:
                continue
            g = m.groupby(m["budget_fraction"].round(6)).agg(spent=("spent_fraction", "median"), are=("are", "median"))
            ax.plot(g["spent"], g["are"] * 100, marker=marker, label=method, linestyle="-" if method != "target_30pct" else "")
        ax.set_xscale("log")
        ax.set_xlabel("compute spent (median, fraction of the target's)")
        ax.set_ylabel("median ARE on the target (%)")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="kempner,porian")
    ap.add_argument("--families", default="0", help="at most this many held-out families per dataset, evenly "
                    "spread over the sorted names (0: all); one number, or one per dataset of --only (e.g. 6,3)")
    ap.add_argument("--budgets", default="0.01,0.03,0.1")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--method", default="laplace")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-noise", default="independent", choices=CHECKPOINT_NOISES,
                    help="the checkpoint noise of every Bayesian fit (population and revealed runs); the planner "
                         "takes it from the population prior")
    ap.add_argument("--tag", default="", help="suffix of the result files (planning_<dataset><tag>.csv, "
                    "planning<tag>.json, planning<tag>.png)")
    ap.add_argument("--no-timing", action="store_true", help="skip the planner's timing on a 50-candidate grid")
    ap.add_argument("--from-csv", action="store_true", help="skip the backtest: summarise the stored "
                    "planning_<dataset>.csv files (e.g. of a run stopped early), plot, and time the planner")
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    settings = BacktestSettings(budgets=tuple(float(b) for b in args.budgets.split(",")), method=args.method,
                                model=dict(checkpoint_noise=args.checkpoint_noise),
                                sampler=dict(draws=args.draws, tune=args.tune, chains=2), random_seed=args.seed)
    summary: dict = {"machine": {"cores": os.cpu_count()},
                     "command": " ".join(["python benchmarks/planning.py", *sys.argv[1:]]),
                     "settings": settings.as_dict(), "tables": {}}
    frames = []
    names = args.only.split(",")
    counts = [int(c) for c in args.families.split(",")]
    counts = counts * len(names) if len(counts) == 1 else counts
    for name, n_fam in zip(names, counts):
        data = DATASETS[name]()
        fams = sorted(f for f in data.families if data.frame.loc[data.frame["family"] == f, "params"].nunique() >= 3)
        if n_fam and n_fam < len(fams):
            fams = [fams[int(i)] for i in np.linspace(0, len(fams) - 1, n_fam).round()]
        out = RESULTS / f"planning_{name}{args.tag}.csv"
        if args.from_csv:
            res = pd.read_csv(out)
        else:
            res = backtest_planning(data, families=fams, settings=settings, dataset=name,
                                    log=lambda m: print(m, flush=True), on_family=lambda df: df.to_csv(out, index=False))
            res.to_csv(out, index=False)
        frames.append(res)
        table = backtest_table(res)
        summary["tables"][name] = json.loads(table.to_json(orient="records"))
        summary.setdefault("families", {})[name] = sorted(res["family"].unique())
        print(markdown(table), flush=True)
    results = pd.concat(frames, ignore_index=True)
    matches = matches_table(backtest_matches(results))
    summary["matches"] = json.loads(matches.to_json(orient="records"))
    print(markdown_matches(matches), flush=True)
    plot(results, RESULTS / f"planning{args.tag}.png")
    if args.no_timing:
        (RESULTS / f"planning{args.tag}.json").write_text(json.dumps(summary, indent=1, default=str))
        return 0
    # the planner's own time: a 50-candidate default grid from the first dataset's population prior
    data = DATASETS[args.only.split(",")[0]]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pop = bs.fit(data, sampler=dict(draws=args.draws, tune=args.tune, chains=2, random_seed=args.seed))
    big = data.frame.loc[data.frame["params"].idxmax()]
    summary["planner"] = planner_timing(bs.PopulationPrior.from_fit(pop), {"params": float(big["params"]) * 10,
                                                                           "tokens": float(big["tokens"]) * 10})
    (RESULTS / f"planning{args.tag}.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary["planner"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
