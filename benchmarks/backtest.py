"""The backtest on the real zoos in ../shared/data: ours beside the point fits, per direction, in one run.

    python benchmarks/backtest.py --only kempner --out benchmarks/results/backtest_kempner.json
    python benchmarks/backtest.py --tables benchmarks/results/backtest_*.json   # pooled tables, Markdown
    python benchmarks/backtest.py --only kempner --likelihood auto --out ...  # the likelihood chosen from the runs

Each zoo goes through :func:`bayes_scaling.backtest` with the default fit (nested leave-out at depths 1
and 2 in compute, size and tokens per parameter) and the per-family Huber, fixed-N-term and
variable-projection fits on the same rows. ``--tables`` pools the stored results per direction (coverage
over points, ARE over tasks) and prints one table per dataset, one pooled, and our pooled coverage with the
datasets resampled (how much it rests on which datasets were run).
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_scaling as bs
from bayes_scaling.data import (load_datablations, load_gemstone, load_kempner, load_misfitting, load_olmo,
                                load_olmo_ladder, load_porian)
from bayes_scaling.data.filters import thin_checkpoints
from bayes_scaling.evaluate.backtest import BacktestResult, BacktestSettings, backtest_markdown
from bayes_scaling.report.format import markdown_table

warnings.simplefilter("ignore", FutureWarning)

#: the zoos with at least three sizes or budgets per family; dense checkpoint logs thinned to 12 per run
ZOOS = {
    "kempner": lambda: load_kempner(),
    "porian": lambda: load_porian(),
    "gemstone": lambda: thin_checkpoints(load_gemstone(), 12),
    "olmo": lambda: thin_checkpoints(load_olmo(), 12),
    "datablations": lambda: thin_checkpoints(load_datablations(), 12),
    "olmo_ladder": lambda: load_olmo_ladder(),
    "misfitting": lambda: load_misfitting(),
}


def run(name: str, depths: tuple[int, ...], draws: int, likelihood: str = "normal",
        compare_tails: bool = False, whole: bool = False, pooling: str = "none",
        compare_pooling: bool = False, compare_scale: bool = False) -> dict:
    data = ZOOS[name]()
    t = time.perf_counter()
    sampler = {"draws": draws, "tune": draws, "chains": 2}
    if whole:
        sampler.update(until_converged=False, whiten=True)
    model = {"likelihood": likelihood, "discrepancy_tails": "choose" if compare_tails else "normal",
             "discrepancy_pooling": pooling}
    result = bs.backtest(data, depths=depths, model=model, sampler=sampler,
                         progress=lambda line: print(f"{name}: {line}", flush=True), compare_tails=compare_tails,
                         compare_pooling=compare_pooling, compare_scale=compare_scale)
    return {"dataset": name, "seconds": time.perf_counter() - t, "families": len(data.families), "rows": len(data),
            **result.to_dict(), "points": result.points.to_dict(orient="records")}


def load_result(record: dict) -> BacktestResult:
    settings = BacktestSettings.from_dict(record["settings"])
    return BacktestResult(pd.DataFrame(record["tasks"]), pd.DataFrame(record["points"]), settings)


def tables(paths: list[str], datasets: set[str] | None = None) -> str:
    """The tables of stored results, per dataset and pooled; ``datasets``: only these."""
    records = [r for p in paths for r in json.loads(Path(p).read_text())
               if datasets is None or r["dataset"] in datasets]
    out = []
    pooled = []
    for r in records:
        res = load_result(r)
        out.append(f"### {r['dataset']} ({r['families']} families, {r['rows']} rows, {r['seconds'] / 60:.0f} min)\n")
        out.append(backtest_markdown(res) + "\n")
        pooled.append(res)
    if len(pooled) > 1:
        both = BacktestResult(pd.concat([p.tasks for p in pooled]), pd.concat([p.points for p in pooled]),
                              pooled[0].settings)
        out.append("### pooled over datasets\n")
        out.append(backtest_markdown(both) + "\n")
        names = [r["dataset"] for r in records]
        if len(set(names)) > 1:
            out.append("### pooled coverage with the datasets resampled\n")
            out.append(resampled_coverage(pooled, names) + "\n")
    return "\n".join(out)


def resampled_coverage(results: list[BacktestResult], names: list[str], n_boot: int = 4000, seed: int = 0) -> str:
    """Our pooled coverage beside its 5%-95% range when the datasets are drawn again with replacement (as many as
    there are): the points of one dataset share its shared extrapolation error and settings, so the datasets,
    not the points, are the independent draws a pooled coverage rests on."""
    # each dataset's points and points covered, from its own summary (the coverage as the tables define it)
    per = pd.concat([r.summary().assign(dataset=n) for r, n in zip(results, names)])
    per = per[per["method"].str.startswith("bayes")].assign(in50=lambda f: f["cover50"] * f["points"],
                                                            in90=lambda f: f["cover90"] * f["points"])
    rng = np.random.default_rng(seed)
    rows = []
    for (direction, method), g in per.groupby(["direction", "method"], sort=False):
        counts = g.groupby("dataset")[["points", "in50", "in90"]].sum().to_numpy(float)
        pick = rng.integers(0, len(counts), (n_boot, len(counts)))
        n = counts[pick, 0].sum(axis=1)
        cells = [direction, method, str(len(counts))]
        for col in (1, 2):
            lo, hi = np.quantile(counts[pick, col].sum(axis=1) / n, [0.05, 0.95])
            cells += [f"{counts[:, col].sum() / counts[:, 0].sum():.0%}", f"{lo:.0%}–{hi:.0%}"]
        rows.append(cells)
    return markdown_table(["direction", "method", "datasets", "50% coverage", "5%–95%", "90% coverage", "5%–95%"],
                          rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help=f"comma-separated among {sorted(ZOOS)} (default: all)")
    ap.add_argument("--depths", default="1,2")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--likelihood", default="normal", choices=["normal", "student_t", "auto"])
    ap.add_argument("--whole", action="store_true",
                    help="sample each fit's draws whole with the fixed whitening instead of until converged")
    ap.add_argument("--compare-tails", action="store_true",
                    help="fit with discrepancy_tails='choose' and also score each fit with normal tails "
                         "(method bayes_normal_tails)")
    ap.add_argument("--pooling", default="none", choices=["none", "directions"],
                    help="the discrepancy's scale: one per direction, or shared by the directions")
    ap.add_argument("--compare-pooling", action="store_true",
                    help="also score each fit with its discrepancy learned again with the other pooling "
                         "(method bayes_pooled or bayes_unpooled)")
    ap.add_argument("--compare-scale", action="store_true",
                    help="also score each fit with its discrepancy learned again as a relative error of the whole "
                         "loss (method bayes_loss_scale)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tables", nargs="*", default=None,
                    help="print the tables of stored results instead (of the datasets --only names, if given)")
    a = ap.parse_args()
    if a.tables is not None:
        print(tables(sorted(p for pat in a.tables for p in glob.glob(pat)), a.only and set(a.only.split(","))))
        return
    depths = tuple(int(k) for k in a.depths.split(","))
    records = []
    for name in (a.only or ",".join(ZOOS)).split(","):
        records.append(run(name, depths, a.draws, a.likelihood, a.compare_tails, a.whole, a.pooling,
                           a.compare_pooling, a.compare_scale))
        if a.out:  # after each dataset, so that a long run keeps what it finished
            a.out.write_text(json.dumps(records, default=float))
    print(tables([str(a.out)]) if a.out else "\n".join(backtest_markdown(load_result(r)) for r in records))


if __name__ == "__main__":
    main()
