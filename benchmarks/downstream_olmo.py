"""Downstream accuracy on the OLMo 2 model ladder: fit the paper's 16 ladder runs, forecast 7B-4T and 13B-5T.

    python benchmarks/downstream_olmo.py --out benchmarks/results/downstream_olmo.json
    python benchmarks/downstream_olmo.py --method direct --out benchmarks/results/downstream_olmo_direct.json
    python benchmarks/downstream_olmo.py --method latent --out benchmarks/results/downstream_olmo_latent.json
    python benchmarks/downstream_olmo.py --method latent --link-checkpoints all   # every checkpoint: slow
    python benchmarks/downstream_olmo.py --table benchmarks/results/downstream_olmo*.json   # Markdown tables

Data: ../shared/data/downstream/olmo_ladder/tasks.csv (Bhagia et al. 2024, "Establishing Task Scaling Laws
via Compute-Efficient Model Ladders", Apache-2.0). The fit uses the rows with ``paper_use == "fit"`` (190M-1.3B
x 1, 2, 5, 10xC), the task loss ``task_bpb`` and the 5-shot RC accuracy of the paper's eight tasks. Actual
values as the paper computes them: the 13B-5T target is the mean of its last five ``target_13B-5T`` rows, the
7B-4T target the one anneal row. The paper's own chained predictions (its least-squares two-step fit) are
copied from the data README's table of published numbers.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings
from pathlib import Path

import pandas as pd

import bayes_scaling as bs
from bayes_scaling.data.loaders import data_root

TASKS = ["mmlu_avg/test", "hellaswag/val", "arc_challenge/test", "arc_easy/test", "piqa/val", "csqa/val",
         "socialiqa/val", "openbookqa/test"]
#: the paper's chained (two-step) predictions, from the data README (figures/chained_main.csv, variance.csv)
PAPER = {
    "13B-5T": {"mmlu_avg/test": 0.5127, "hellaswag/val": 0.8530, "arc_challenge/test": 0.5267,
               "arc_easy/test": 0.7724, "piqa/val": 0.8208, "csqa/val": 0.7761, "socialiqa/val": 0.5995,
               "openbookqa/test": 0.4486},
    # 7B: actual x (1 + the paper's relative error)
    "7B-4T": {"mmlu_avg/test": 0.4901 * (1 - 0.013), "hellaswag/val": 0.8135 * 1.014,
              "arc_challenge/test": 0.6195 * (1 - 0.169), "arc_easy/test": 0.8455 * (1 - 0.094),
              "piqa/val": 0.8205 * (1 - 0.010), "csqa/val": 0.7265 * 1.042, "socialiqa/val": 0.5993 * (1 - 0.020),
              "openbookqa/test": 0.4940 * (1 - 0.106)},
}
TARGETS = {"13B-5T": (13_202_396_160, 5_000_088_518_656), "7B-4T": (6_887_575_552, 3_945_065_873_408)}


def load_tasks() -> pd.DataFrame:
    df = pd.read_csv(data_root() / "downstream" / "olmo_ladder" / "tasks.csv")
    df["task_name"] = df["task"] + "/" + df["split"]
    return df[df["task_name"].isin(TASKS)]


def actual_values(df: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and task: the actual accuracy and task bpb, as the paper computes them."""
    out: dict = {"13B-5T": {}, "7B-4T": {}}
    for t in TASKS:
        r13 = df[(df["paper_use"] == "target_13B-5T") & (df["task_name"] == t)].sort_values("step").tail(5)
        r7 = df[(df["paper_use"] == "target_7B-4T") & (df["task_name"] == t)]
        out["13B-5T"][t] = {"accuracy": float(r13["accuracy"].mean()), "task_bpb": float(r13["task_bpb"].mean())}
        out["7B-4T"][t] = {"accuracy": float(r7["accuracy"].iloc[0]), "task_bpb": float(r7["task_bpb"].iloc[0])}
    return out


def run(method: str, seed: int, link_checkpoints: int | str = "auto") -> dict:
    df = load_tasks()
    fit_rows = df[df["paper_use"] == "fit"]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = bs.fit_downstream(fit_rows, family="family", run="run", params="params", tokens="tokens",
                              task="task_name", accuracy="accuracy", chance="chance",
                              task_loss="task_bpb" if method != "latent" else None,
                              method="direct" if method == "direct" else "two_step", link_checkpoints=link_checkpoints,
                              sampler={"random_seed": seed})
    seconds = time.perf_counter() - t0
    actual = actual_values(df)
    rows = []
    for target, (n, d) in TARGETS.items():
        for t in TASKS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p50 = f.predict("olmo2", t, n, d, interval=0.5)
                p90 = f.predict("olmo2", t, n, d, interval=0.9)
            a = actual[target][t]["accuracy"]
            row = {"target": target, "task": t, "actual": a, "median": float(p90["median"][0]),
                   "lower90": float(p90["lower"][0]), "upper90": float(p90["upper"][0]),
                   "lower50": float(p50["lower"][0]), "upper50": float(p50["upper"][0]),
                   "paper": PAPER[target][t], "at_chance": bool(p90.attrs["at_chance"]),
                   "actual_task_bpb": actual[target][t]["task_bpb"]}
            if f.kind == "task_loss":  # step 2 alone, at the actual task loss
                row["step2_at_actual_bpb"] = float(f.accuracy_at(t, actual[target][t]["task_bpb"])["median"][0])
            if "task_loss_median" in p90:
                row.update(task_bpb_median=float(p90["task_loss_median"][0]),
                           task_bpb_lower90=float(p90["task_loss_lower"][0]),
                           task_bpb_upper90=float(p90["task_loss_upper"][0]))
            rows.append(row)
    tab = pd.DataFrame(rows)
    tab["error"] = 100 * (tab["median"] - tab["actual"])
    tab["paper_error"] = 100 * (tab["paper"] - tab["actual"])
    tab["in90"] = (tab["lower90"] <= tab["actual"]) & (tab["actual"] <= tab["upper90"])
    tab["in50"] = (tab["lower50"] <= tab["actual"]) & (tab["actual"] <= tab["upper50"])
    tab["width90"] = 100 * (tab["upper90"] - tab["lower90"])
    return {"method": method, "seed": seed, "seconds": seconds, "cores": len(__import__("os").sched_getaffinity(0)),
            "link_extrapolation": f.spec.get("link_extrapolation"), "notes": f.notes(), "warnings": sorted({str(w.message)[:300] for w in caught}),
            "link": f.link_table().to_dict("records"), "points": tab.to_dict("records")}


HARD = ["arc_challenge/test", "arc_easy/test", "csqa/val", "openbookqa/test"]


def table(paths: list[str]) -> str:
    out = []
    for path in paths:
        r = json.loads(Path(path).read_text())
        tab = pd.DataFrame(r["points"])
        out.append(f"### {r['method']} ({Path(path).name}, {r['seconds']:.0f} s on {r['cores']} cores)\n")
        out.append("| target | task | actual | ours: median [90%] | ours error (points) | paper error (points) |")
        out.append("|---|---|---|---|---|---|")
        for x in tab.itertuples():
            flag = "" if x.in90 else " (outside)"
            out.append(f"| {x.target} | {x.task} | {x.actual:.3f} | {x.median:.3f} [{x.lower90:.3f}, {x.upper90:.3f}]"
                       f"{flag} | {x.error:+.1f} | {x.paper_error:+.1f} |")
        hard, easy = tab[tab["task"].isin(HARD)], tab[~tab["task"].isin(HARD)]
        out.append("")
        out.append(f"- mean absolute error, ARC-C/ARC-E/CSQA/OBQA: ours {hard['error'].abs().mean():.1f} points, paper "
                   f"{hard['paper_error'].abs().mean():.1f}; MMLU/HellaSwag/PIQA/SIQA: ours "
                   f"{easy['error'].abs().mean():.1f}, paper {easy['paper_error'].abs().mean():.1f}; all 16: ours "
                   f"{tab['error'].abs().mean():.1f}, paper {tab['paper_error'].abs().mean():.1f}")
        out.append(f"- 90% intervals cover {int(tab['in90'].sum())} of {len(tab)} "
                   f"({100 * tab['in90'].mean():.0f}%), 50% intervals {int(tab['in50'].sum())} of {len(tab)}; median "
                   f"90% width {tab['width90'].median():.1f} points")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="two_step", choices=["two_step", "direct", "latent"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--link-checkpoints", default="auto", type=lambda v: v if v in ("auto", "all") else int(v),
                    help="checkpoints per run and task of the accuracy link: N, 'all' or 'auto' (the default)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", nargs="*")
    a = ap.parse_args()
    if a.table:
        print(table(sorted(set(p for pat in a.table for p in glob.glob(pat)))))
        return
    res = run(a.method, a.seed, a.link_checkpoints)
    text = json.dumps(res, indent=1, default=float)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    print(text[:2000])


if __name__ == "__main__":
    main()
