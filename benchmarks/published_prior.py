"""Leave-one-zoo-out: the published prior without zoo Z, one small model of each family of Z, its largest predicted.

    python benchmarks/published_prior.py                       # every bundled zoo
    python benchmarks/published_prior.py --only colpret,olmo_ladder --no-within

For each bundled zoo Z (:mod:`bayes_scaling.data.zoos`), prepared as the published prior prepares it (the
first 10% of each run dropped, 12 checkpoints per run):

1. the published prior is rebuilt without Z (:func:`build_published_prior`, ``exclude=(Z,)``);
2. each family of Z with two sizes or more is fitted on its smallest model alone, borrowing that prior
   (``published``), and its largest model is predicted: the guide's ARE over the last 30% of its training
   (its final points, for final-loss data), the share of those points inside the 50% and 90% one-run
   intervals, and the interval widths relative to the loss (:mod:`bayes_scaling.evaluate.protocol`);
3. side by side on the same points: a Huber fit of the same small model, the guide's fixed N-term fit, the best
   donor among every other bundled family (Z's own and the other zoos'; its E refitted), and (``--within``, default) borrowing from a fit of Z's other families
   (``within_zoo``; not possible for a zoo of one family).

Writes ``benchmarks/results/published_prior.csv`` (one row per family and method) and
``published_prior.json`` (per zoo and method: median ARE, coverage, median 90% width; rebuild and update
times), saved after every zoo.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import pandas as pd

from bayes_scaling import ModelConfig, SamplerConfig, fit
from bayes_scaling.data.zoos import ZOOS
from bayes_scaling.errors import PriorDataConflictWarning, SamplingWarning
from bayes_scaling.evaluate.baselines import huber_fit
from bayes_scaling.evaluate.harness import bayes_scored, eligible_families, point_baselines
from bayes_scaling.evaluate.protocol import split_family
from bayes_scaling.priors.published import build_published_prior, prepared_zoo
from bayes_scaling.model import PopulationPrior
from bayes_scaling.report.format import markdown_table

RESULTS = Path(__file__).parent / "results"
FIT_SAMPLER = SamplerConfig(draws=1000, tune=1000, chains=4)
HUBER_GRID_STRIDE = 5  # the harness's: every fifth start of the Huber fit's grid
GOALS = "median ARE <= 3%; 90% coverage 82-96%; 50% coverage 40-60%; median 90% width <= 20% of the loss"


def _arrays(frame: pd.DataFrame):
    return frame["params"].to_numpy(float), frame["tokens"].to_numpy(float), frame["loss"].to_numpy(float)


def all_donors() -> dict[str, dict[str, float]]:
    """Huber fits of every bundled family (the donor baseline's candidates), as the harness makes them."""
    return {f: huber_fit(*_arrays(d.frame[d.frame["family"] == f]), grid_stride=HUBER_GRID_STRIDE)
            for d in (prepared_zoo(z) for z in ZOOS) for f in d.families}


def run_zoo(zoo: str, within: bool, seed: int, donors: dict, log) -> tuple[list[dict], dict]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        prior = build_published_prior(exclude=(zoo,), random_seed=seed)
    rebuild = time.perf_counter() - t0
    prior.save(RESULTS / f"published_prior_without_{zoo}.nc")
    log(f"[{zoo}] published prior without {zoo}: {rebuild:.0f} s ({prior.source}; spread x{prior.spread_scale:g}, "
        f"discrepancy {prior.kappa[0, 0]:g} per decade)")
    data = prepared_zoo(zoo)
    rows = []
    for i, fam in enumerate(eligible_families(data)):
        split = split_family(data, fam, 1)
        task = {"zoo": zoo, "family": fam, "train_rows": len(split.train), "train_size": split.train_sizes[0],
                "target_size": split.target_size, "decades": split.decades, "target_points": len(split.target)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PriorDataConflictWarning)
            ours = bayes_scored(split, prior, ModelConfig(), FIT_SAMPLER, random_seed=seed + i, method="published")
        ours["conflict"] = any(issubclass(w.category, PriorDataConflictWarning) for w in caught)
        found = [ours, *point_baselines(split, {f: p for f, p in donors.items() if f != fam}, HUBER_GRID_STRIDE)]
        others = [f for f in data.families if f != fam]
        if within and len(others) >= 2:
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                pop = fit(data.select_families(others), sampler=FIT_SAMPLER.replace(random_seed=seed + i))
            own = bayes_scored(split, PopulationPrior.from_fit(pop, random_seed=seed + i), ModelConfig(), FIT_SAMPLER,
                               random_seed=seed + i, method="within_zoo")
            own["population_seconds"] = time.perf_counter() - t1
            found.append(own)
        rows += [{**task, **r} for r in found]
        log(f"[{zoo}] {fam}: " + ", ".join(f"{r['method']} ARE {r['are']:.2%} (90% covers {r['cover90']:.0%})"
                                           for r in found) + f"; published update {ours['seconds']:.1f} s")
    return rows, {"rebuild_seconds": rebuild, "source": prior.source}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    g = rows.groupby(["zoo", "method"], sort=False)
    return g.agg(families=("family", "size"), median_are=("are", "median"), mean_are=("are", "mean"),
                 cover50=("cover50", "mean"), cover90=("cover90", "mean"), width90=("width90", "median"),
                 seconds=("seconds", "median")).reset_index()


def markdown(tab: pd.DataFrame) -> str:
    dash = lambda v, f: "—" if pd.isna(v) else format(v, f)
    return markdown_table(["zoo", "method", "families", "median ARE", "mean ARE", "50% covers", "90% covers",
                           "median 90% width", "median fit s"],
                          ([r.zoo, r.method, r.families, f"{r.median_are:.2%}", f"{r.mean_are:.2%}",
                            dash(r.cover50, ".0%"), dash(r.cover90, ".0%"), dash(r.width90, ".1%"),
                            dash(r.seconds, ".1f")] for r in tab.itertuples()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(ZOOS), help="comma-separated zoos")
    ap.add_argument("--no-within", dest="within", action="store_false",
                    help="skip borrowing from the zoo's other families (one population fit per family)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    RESULTS.mkdir(exist_ok=True)
    log = lambda msg: print(msg, flush=True)
    rows, meta = [], {"machine": {"cores": os.cpu_count(), "command": "published_prior.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}, "goals": GOALS, "zoos": {}}
    donors = all_donors()
    for zoo in args.only.split(","):
        found, info = run_zoo(zoo, args.within, args.seed, donors, log)
        rows += found
        meta["zoos"][zoo] = info
        frame = pd.DataFrame(rows)
        frame.to_csv(RESULTS / f"published_prior{args.tag}.csv", index=False)
        tab = summary(frame)
        meta["summary"] = tab.to_dict(orient="records")
        pub = frame[frame["method"] == "published"]
        meta["update_seconds"] = {"median": float(pub["seconds"].median()), "max": float(pub["seconds"].max())}
        meta["all_zoos"] = summary(frame.assign(zoo="all")).to_dict(orient="records")
        (RESULTS / f"published_prior{args.tag}.json").write_text(json.dumps(meta, indent=1, default=float))
    print(markdown(summary(pd.DataFrame(rows))))
    print(markdown(summary(pd.DataFrame(rows).assign(zoo="all"))))


if __name__ == "__main__":
    main()
