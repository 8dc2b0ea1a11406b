"""A law written by a user: the Kaplan form fitted from scratch, and the Chinchilla law rewritten by hand.

    python benchmarks/user_law.py --out benchmarks/results/user_law.json

Data: the bundled Porian et al. 2024 IsoFLOP runs (MIT), the seven recipes evaluated on validation loss
(family names ending in ``standard-val``), 5M-900M parameters. Each family's largest model size is held out.

1. **Kaplan et al. 2020**, L = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D, declared with
   :class:`bayes_scaling.laws.Law` exactly as docs/howto/your_own_law.md writes it, fitted hierarchically
   beside the built-in Chinchilla law on the same rows; ARE and 90% coverage of the one-run intervals on the
   held-out largest models, and the exponents beside Kaplan's published 0.076 and 0.095 (fitted there on
   WebText2 with another tokenizer, so only their size is comparable).
2. **Chinchilla through the interface**: the same formula and parameters declared by hand, fitted with the
   same seed; the largest difference between its posterior draws and the built-in law's.

Both fits leave the extrapolation discrepancy out (``extrapolation=None``), to compare the laws alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import bayes_scaling as bs
from bayes_scaling.laws import CHINCHILLA, Law, Parameter

#: the how-to's law (docs/howto/your_own_law.md)
KAPLAN = Law(
    name="kaplan",
    formula="((N_c / params)**(alpha_N / alpha_D) + D_c / tokens)**alpha_D",
    parameters=(
        Parameter("N_c", anchor=("params", 1.0), loc=12.0, scale=3.0),  # log(N_c / N0) ~ Normal(12, 3)
        Parameter("alpha_N", loc="log(0.08)", scale=0.5, spread=0.15),
        Parameter("D_c", anchor=("tokens", 1.0), loc=8.0, scale=3.0),   # log(D_c / D0) ~ Normal(8, 3)
        Parameter("alpha_D", loc="log(0.1)", scale=0.5, spread=0.15),
    ),
    description="Kaplan et al. 2020, eq. 1.5",
)
CHINCHILLA_BY_HAND = Law("chinchilla_by_hand", "E + A / params**alpha + B / tokens**beta", CHINCHILLA.parameters)


def held_out_scores(fit, test) -> dict:
    pred = fit.predict(test["family"].to_numpy(), test["params"].to_numpy(), test["tokens"].to_numpy(), interval=0.9)
    y = test["loss"].to_numpy()
    return {"are": float(np.mean(np.abs(pred["run_median"].to_numpy() / y - 1))),
            "coverage90": float(np.mean((y >= pred["run_lower"].to_numpy()) & (y <= pred["run_upper"].to_numpy()))),
            "width90": float(np.median((pred["run_upper"] - pred["run_lower"]).to_numpy() / y))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    data = bs.data.load_bundled("porian")
    data = data.select_families([f for f in data.families if f.endswith("standard-val")])
    df = data.frame
    largest = df["params"] == df.groupby("family")["params"].transform("max")
    train = data.subset(~largest.to_numpy(), name="largest", reason="held out: each family's largest model")
    test = df[largest.to_numpy()]
    res = {"families": data.families, "train_rows": len(train), "test_rows": len(test), "laws": {}}
    sampler = dict(draws=a.draws, tune=a.tune, random_seed=a.seed)
    fits = {}
    for name, law in (("kaplan", KAPLAN), ("chinchilla", "chinchilla"), ("chinchilla_by_hand", CHINCHILLA_BY_HAND)):
        t0 = time.perf_counter()
        fits[name] = fit = bs.fit(train, dict(law=law, extrapolation=None), sampler)
        d = fit.diagnostics
        tab = fit.parameter_table().query("level == 'population'").set_index("parameter")
        res["laws"][name] = {"seconds": time.perf_counter() - t0, **held_out_scores(fit, test),
                             "population": tab[["median", "lower", "upper"]].to_dict("index"),
                             "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
                             "min_ess_tail": d.min_ess_tail}
        print(name, json.dumps({k: v for k, v in res["laws"][name].items() if k != "population"}, default=float),
              flush=True)
    diff = np.abs(fits["chinchilla_by_hand"].idata.posterior["theta"].to_numpy()
                  - fits["chinchilla"].idata.posterior["theta"].to_numpy())
    res["by_hand_max_abs_difference"] = float(diff.max())
    res["kaplan_published"] = {"alpha_N": 0.076, "alpha_D": 0.095}
    print("Chinchilla by hand vs built-in: max |difference| of the posterior draws", res["by_hand_max_abs_difference"])
    print(json.dumps(res["laws"]["kaplan"]["population"], indent=1, default=float))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
