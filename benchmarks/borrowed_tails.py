"""How a borrowed fit mixes with the normal prior and with the multivariate t (``PopulationPrior.from_fit(tails=True)``).

    python benchmarks/borrowed_tails.py --out benchmarks/results/borrowed_tails.json

The population is fitted on Kempner's first five corpora; the sixth (starcoder) borrows its prior from its
smallest model. Each prior is borrowed at spread scales x0.5 and x1: first with 2 chains x 500 draws after
500 tuning steps (the calibration's and the harness's setting), then with ``bs.fit``'s default sampler
(until converged). Printed and written: divergences, max R-hat, the smallest bulk and tail ESS, draws per
chain and seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import bayes_scaling as bs
from bayes_scaling.data import loaders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/borrowed_tails.json")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    data = loaders.load_kempner()
    population = bs.fit(data.select_families(data.families[:5]),
                        sampler=dict(draws=300, tune=300, chains=2, random_seed=0))
    new = data.select_families([data.families[5]])
    one = new.subset(new.frame["params"] == new.frame["params"].min(), name="smallest", reason="one small model")
    rows = []
    for tails in (False, True):
        prior = bs.PopulationPrior.from_fit(population, tails=tails)
        for sampler, label in ((dict(draws=500, tune=500, chains=2, random_seed=0, until_converged=False),
                                "2 x 500 draws"), (dict(random_seed=0), "default (until converged)")):
            for spread in (0.5, 1.0):
                t0 = time.perf_counter()
                fit = bs.fit(one, sampler=sampler, borrow=dataclasses.replace(prior, spread_scale=spread))
                d = fit.diagnostics
                rows.append({"prior": f"t, {prior.tail_df:g} df" if tails else "normal", "sampler": label,
                             "spread_scale": spread, "seconds": round(time.perf_counter() - t0, 1),
                             "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                             "min_ess_tail": d.min_ess_tail, "draws_per_chain": d.draws})
                print(rows[-1], flush=True)
    Path(a.out).write_text(json.dumps({"family": data.families[5], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
