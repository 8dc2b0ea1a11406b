"""Borrowed priors vs baselines under the Hitchhiker's protocol, on the real datasets.

    python benchmarks/borrowed_priors.py                      # all four datasets, k = 1, 2, 3
    python benchmarks/borrowed_priors.py --only kempner --fraction 0.3 --tag _p30

For each dataset and held-out family: the population is fitted on the other families, its prior is
borrowed by a fit of the held-out family's k smallest models, and the family's largest model is
predicted (:mod:`bayes_scaling.evaluate.harness`). Writes one CSV of per-task rows per dataset and a
JSON summary (median ARE, mean coverage per k and method) to ``benchmarks/results/``, saved after
every held-out family so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import pandas as pd

from bayes_scaling.data import ScalingData, loaders
from bayes_scaling.evaluate import HarnessSettings, calibration_table, evaluate_borrowing, paired_table, summary_table
from bayes_scaling.model.population_prior import DEFAULT_POPULATION, POPULATIONS
from bayes_scaling.model.spec import CHECKPOINT_NOISES
from bayes_scaling.report.format import markdown_table

DATASETS = {
    "kempner": lambda: loaders.load_kempner(),
    "porian": lambda: loaders.load_porian(),
    # T5-Pile is left out of the zoo: its "loss" (log of ColPret's val_perplexity) is 0.03-0.08 nats, 30x
    # below every causal LM here, so no population of these families describes it; a borrowed fit flags it
    # (PriorDataConflictWarning) and --only colpret_t5 runs the zoo with it to show what that costs
    "colpret": lambda: ScalingData.concat([loaders.load_opt(), loaders.load_olmo(),
                                           loaders.load_datablations(epochs=1)], source="ColPret"),
    "colpret_t5": lambda: ScalingData.concat([loaders.load_opt(), loaders.load_olmo(), loaders.load_t5_pile(),
                                              loaders.load_datablations(epochs=1)], source="ColPret with T5-Pile"),
    "gemstone": lambda: loaders.load_gemstone(which="hot", family_by="width"),
    # the same runs with one family per depth: within a family the sizes then differ by width only
    "gemstone_depth": lambda: loaders.load_gemstone(which="hot", family_by="depth"),
}


def _or_dash(v: float, fmt: str) -> str:
    return "—" if pd.isna(v) else format(v, fmt)


def markdown(summary: pd.DataFrame) -> str:
    return markdown_table(
        ["k", "method", "tasks", "median ARE", "mean ARE", "50% covers", "90% covers", "90% width"],
        ([r.k, r.method, r.tasks, f"{r.median_are:.2%}", f"{r.mean_are:.2%}", _or_dash(r.cover50, ".0%"),
          _or_dash(r.cover90, ".0%"), _or_dash(r.width90, ".1%")] for r in summary.itertuples()))


def calibration_markdown(tab: pd.DataFrame) -> str:
    return markdown_table(
        ["k", "tasks", "datasets", "mean 90% coverage", "tasks fully inside", "calibrated range (90%)", "median ARE",
         "median log bias"],
        ([r.k, r.tasks, r.datasets, f"{r.coverage:.0%}", f"{r.all_inside:.0%}",
          f"{r.calibrated_range[0]:.0%}–{r.calibrated_range[1]:.0%}", f"{r.median_are:.2%}",
          _or_dash(r.median_log_bias, "+.3f")] for r in tab.itertuples()))


def paired_markdown(tab: pd.DataFrame) -> str:
    return markdown_table(
        ["baseline", "k", "tasks", "ours better", "baseline better", "sign test p",
         "median log(ARE ours / ARE baseline)", "median ARE, ours / baseline"],
        ([r.baseline, r.k, r.tasks, r.wins, r.losses, f"{r.sign_test_p:.2g}", f"{r.median_log_ratio:+.2f}",
          f"{r.median_are:.2%} / {r.baseline_median_are:.2%}"] for r in tab.itertuples()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(DATASETS), help="comma-separated datasets")
    ap.add_argument("--ks", default="1,2,3")
    ap.add_argument("--fraction", type=float, default=None, help="train on the first fraction of each run")
    ap.add_argument("--min-tokens", type=float, default=None, help="drop checkpoints before this many tokens")
    ap.add_argument("--max-checkpoints", type=int, default=12)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--families", default=None, help="comma-separated held-out families (default: all eligible)")
    ap.add_argument("--population", default=DEFAULT_POPULATION, choices=POPULATIONS,
                    help="what a new family is like (PopulationPrior.from_fit)")
    ap.add_argument("--checkpoint-noise", default="independent", choices=CHECKPOINT_NOISES,
                    help="checkpoint noise of every Bayesian fit (population and borrowed)")
    ap.add_argument("--tails", action="store_true", help="borrow a multivariate t over the source families "
                    "(PopulationPrior.from_fit(tails=True)) instead of a normal")
    ap.add_argument("--no-calibrate", action="store_true", help="borrow the population prior as extracted (the "
                    "fitted population's spread), not calibrated on the population's own families")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    ap.add_argument("--out-dir", default="benchmarks/results")
    ap.add_argument("--tables", action="store_true", help="only print the markdown tables of saved results "
                    "(--only may then name DATASET:TAG, that dataset's rows of the run tagged TAG)")
    ap.add_argument("--versus", default=None, metavar="TAG", help="with --tables: add ours from the run tagged TAG "
                    "('' for the untagged run) as one more method, bayes_borrowed[TAG] (bayes_borrowed[untagged]), to "
                    "compare two runs of ours")
    a = ap.parse_args()
    if a.tables:
        pooled = []
        for item in a.only.split(","):  # DATASET or DATASET:TAG (that dataset's rows of another run)
            name, _, tag = item.partition(":")
            csv = Path(a.out_dir) / f"borrowed_priors_{name}{tag or a.tag}.csv"
            if csv.exists():
                rows = pd.read_csv(csv)
                other = Path(a.out_dir) / f"borrowed_priors_{name}{a.versus}.csv"
                if a.versus is not None and other.exists():
                    theirs = pd.read_csv(other)
                    label = f"bayes_borrowed[{a.versus or 'untagged'}]"
                    theirs = theirs[theirs["method"] == "bayes_borrowed"].assign(method=label)
                    rows = pd.concat([rows, theirs], ignore_index=True)
                pooled.append(rows)
                fams = rows["family"].nunique()
                secs = rows.loc[rows.method == "bayes_borrowed", "seconds"]
                print(f"\n### {name} ({fams} held-out families; borrowed fit median {secs.median():.1f} s, "
                      f"max {secs.max():.1f} s)\n\n{markdown(summary_table(rows))}")
        if pooled:
            rows, names = pd.concat(pooled), ", ".join(a.only.split(","))
            print(f"\n### Pooled calibration of bayes_borrowed ({names})\n\n"
                  f"{calibration_markdown(calibration_table(rows))}")
            print(f"\n### Paired with each baseline, task by task ({names})\n\n{paired_markdown(paired_table(rows))}")
        return
    warnings.simplefilter("ignore", FutureWarning)
    settings = HarnessSettings(ks=tuple(int(k) for k in a.ks.split(",")), fraction=a.fraction,
                               min_tokens=a.min_tokens, max_checkpoints=a.max_checkpoints,
                               model=dict(checkpoint_noise=a.checkpoint_noise),
                               sampler=dict(draws=a.draws, tune=a.tune, chains=a.chains),
                               population=a.population, calibrate=not a.no_calibrate, tails=a.tails)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / f"borrowed_priors{a.tag}.json"
    report = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in a.only.split(","):
        data = DATASETS[name]()
        t0 = time.perf_counter()
        csv = out / f"borrowed_priors_{name}{a.tag}.csv"

        def save(rows: pd.DataFrame, final: bool = False) -> None:
            rows.to_csv(csv, index=False)
            report[name] = {"cores": os.cpu_count(), "settings": settings.as_dict(), "complete": final,
                            "wall_seconds": time.perf_counter() - t0, "rows_csv": str(csv),
                            "families_done": sorted(rows["family"].unique().tolist()),
                            "borrowed_fit_seconds": rows.loc[rows.method == "bayes_borrowed", "seconds"]
                            .describe()[["50%", "max"]].rename({"50%": "median"}).to_dict(),
                            "summary": summary_table(rows).to_dict(orient="records")}
            summary_path.write_text(json.dumps(report, indent=1, default=float))

        families = a.families.split(",") if a.families else None
        rows = evaluate_borrowing(data, families=families, settings=settings, dataset=name,
                                  log=lambda m: print(m, flush=True), on_family=save)
        save(rows, final=True)
        print(f"\n## {name} ({time.perf_counter() - t0:.0f} s)\n\n{markdown(summary_table(rows))}\n", flush=True)


if __name__ == "__main__":
    main()
