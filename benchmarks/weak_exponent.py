"""Would a warning on weakly supported borrowed exponents flag the borrowed predictions that went wrong?

The rule (:func:`bayes_scaling.model.population_prior.exponent_support`): the new family's sizes span less than
half a decade and fewer than two source families span half a decade or more. A fit that meets it says so
in its notes. Before making it a warning, this script checks whether it separates bad predictions from
good ones. The rule is a function of the model sizes alone (the held-out family's k smallest sizes and the
other families' sizes), so it can be evaluated on the borrowed-prior harness's stored results
(``benchmarks/results/borrowed_priors_*.csv``) without refitting: for every ``bayes_borrowed`` row it
recomputes the flag (met, and the target half a decade or more beyond the trained sizes) and compares the
ARE of flagged and unflagged predictions.

    .venv/bin/python benchmarks/weak_exponent.py            # seconds; prints a markdown table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from borrowed_priors import DATASETS  # noqa: E402

from bayes_scaling.data import apply_filters  # noqa: E402
from bayes_scaling.evaluate.protocol import family_sizes  # noqa: E402
from bayes_scaling.model.population_prior import MIN_EXPONENT_SPAN_DECADES, exponent_support, size_spans  # noqa: E402
from bayes_scaling.report.format import markdown_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: (results file tag, dataset, early-checkpoint cut) of the harness runs whose rows are checked
RUNS = [("colpret_blend_cut10b", "colpret", 1e10), ("colpret_blend_ou_cut10b", "colpret", 1e10),
        ("colpret", "colpret", None), ("colpret_blend_ou", "colpret", None),
        ("gemstone", "gemstone", None), ("gemstone_blend_ou_jax", "gemstone", None),
        ("gemstone_depth", "gemstone_depth", None), ("kempner", "kempner", None), ("porian", "porian", None)]


def flags(tag: str, dataset: str, min_tokens: float | None) -> pd.DataFrame:
    rows = pd.read_csv(RESULTS / f"borrowed_priors_{tag}.csv")
    rows = rows[rows["method"] == "bayes_borrowed"].copy()
    data = DATASETS[dataset]()
    pool = apply_filters(data, min_tokens=min_tokens)
    spans = size_spans(pool)
    out = []
    for _, r in rows.iterrows():
        sizes = family_sizes(data, r["family"])
        new_span = float(np.log10(sizes[int(r["k"]) - 1] / sizes[0]))
        weak = exponent_support({f: s for f, s in spans.items() if f != r["family"]}, new_span)
        beyond = float(np.log10(sizes[-1] / sizes[int(r["k"]) - 1]))
        out.append({"run": tag, "family": r["family"], "k": int(r["k"]), "are": r["are"], "cover90": r["cover90"],
                    "beyond": beyond, "flagged": weak is not None and beyond >= MIN_EXPONENT_SPAN_DECADES})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(t for t, _, _ in RUNS), help="results tags to check")
    args = ap.parse_args()
    wanted = args.runs.split(",")
    tab = pd.concat([flags(t, d, c) for t, d, c in RUNS if t in wanted], ignore_index=True)
    med = lambda x: f"{100 * x['are'].median():.1f}%" if len(x) else "–"  # noqa: E731
    rows = []
    for tag, g in tab.groupby("run", sort=False):
        f, u = g[g["flagged"]], g[~g["flagged"]]
        which = "; ".join(f"{r.family}, {r.k}: {100 * r.are:.1f}%" for r in f.itertuples()) or "–"
        rows.append([tag, len(g), len(f), med(f), med(u), which])
    print(markdown_table(["harness run", "predictions", "flagged", "median ARE flagged", "median ARE not flagged",
                          "flagged (family, k: ARE)"], rows))


if __name__ == "__main__":
    main()
