"""A downstream fit's report: the targets per task first, then accuracy against compute, the link, the notes."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import figures
from .document import Document, Figure, Items, Section, Table, Text
from .writer import write_document

#: points along each forecast path in the figure
_PATH_POINTS = 24


def _paths(fit: Any, targets: Sequence[dict]) -> list[dict]:
    """Paths drawn in the figure: from the smallest fitted model to each target at the target's tokens per
    parameter; without targets, to 10x the largest model at its tokens per parameter."""
    c = fit.idata.constant_data
    params, tokens = c["params"].to_numpy(), c["tokens"].to_numpy()
    n0 = float(params.min())
    if targets:
        return [{"name": f"{t['family']} to {t['params']:.3g}", "family": t["family"], "new_family": t.get("new_family", False),
                 "params": np.geomspace(n0, t["params"], _PATH_POINTS), "ratio": t["tokens"] / t["params"]}
                for t in targets]
    big = params.argmax()
    return [{"name": f"{f} to {10 * params.max():.3g}", "family": f, "new_family": False,
             "params": np.geomspace(n0, 10 * params.max(), _PATH_POINTS), "ratio": float(tokens[big] / params[big])}
            for f in fit.families]


def _fits_task(fit: Any, family: str, task: str, new_family: bool) -> bool:
    return [family, task] in fit.spec["pairs"] or (new_family and fit.kind == "task_loss")


def downstream_document(fit: Any, targets: Sequence[dict] = (), *, interval: float = 0.9, source: str = "",
                        random_seed: int = 0) -> Document:
    """The report's sections for a :class:`~bayes_scaling.inference.downstream.DownstreamFit`."""
    from .._version import __version__

    targets = list(targets)
    rows, curves, marks = [], [], []
    for t in targets:
        for task in fit.tasks:
            if not _fits_task(fit, t["family"], task, t.get("new_family", False)):
                continue
            p = fit.predict(t["family"], task, t["params"], t["tokens"], interval=interval, random_seed=random_seed,
                            new_family=t.get("new_family", False))
            row = {"family": t["family"], "params": t["params"], "tokens": t["tokens"], "task": task,
                   "chance": p.attrs["chance"], "accuracy": float(p["median"][0]), "lower": float(p["lower"][0]),
                   "upper": float(p["upper"][0])}
            if "task_loss_median" in p:
                row.update(task_loss=float(p["task_loss_median"][0]), task_loss_lower=float(p["task_loss_lower"][0]),
                           task_loss_upper=float(p["task_loss_upper"][0]))
            row["note"] = "held at chance: no rise in the data" if p.attrs["at_chance"] else ""
            rows.append(row)
            marks.append({"task": task, "flops": float(p["flops"][0]), "median": row["accuracy"],
                          "lower": row["lower"], "upper": row["upper"]})
    for path in _paths(fit, targets):
        for task in fit.tasks:
            if not _fits_task(fit, path["family"], task, path["new_family"]):
                continue
            p = fit.predict(path["family"], task, path["params"], path["params"] * path["ratio"], interval=interval,
                            random_seed=random_seed, new_family=path["new_family"])
            curves.append(pd.DataFrame({"task": task, "path": path["name"], "flops": p["flops"].to_numpy(),
                                        "median": p["median"].to_numpy(), "lower": p["lower"].to_numpy(),
                                        "upper": p["upper"].to_numpy(), "chance": p.attrs["chance"]}))
    c = fit.idata.constant_data
    obs = pd.DataFrame({k: c[k].to_numpy() for k in ("run", "task", "tokens", "flops")})
    obs["accuracy"] = fit.idata.observed_data["accuracy"].to_numpy()
    finals = obs.loc[obs.groupby(["run", "task"])["tokens"].idxmax()]
    answer = Section("Answer: the targets", [Text(
        f"Accuracy of one run at each target (median and {interval:.0%} interval, seed and evaluation noise "
        "included), through " + {"task_loss": "the task loss (step 1, its interval beside it) and the link (step 2)",
                                 "latent": "a latent task loss fitted from the accuracies",
                                 "compute": "the direct link from compute"}[fit.kind] + ".")])
    if rows:
        answer.blocks.append(Table(pd.DataFrame(rows).round(4), caption="One row per target and task."))
    else:
        answer.blocks.append(Text("No target given: pass --target family=NAME,params=N,tokens=D.", "warn"))
    if curves:
        answer.blocks.append(Figure(figures.accuracy_curves(pd.concat(curves), finals, pd.DataFrame(marks), interval),
                                    "accuracy_curves",
                                    "Accuracy against compute per task: dots are the runs' final checkpoints, lines "
                                    "and bands the forecast along each path (tokens per parameter of its target), "
                                    "diamonds the targets, dashed the chance accuracy."))
    d = fit.diagnostics
    sampling = Section("Fit and diagnostics", [Text(
        f"Link: {fit.kind}, {len(fit.tasks)} task(s), {len(fit.families)} family(ies), {len(obs)} checkpoints; "
        f"divergences {d['divergences']}, max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
        f"min tail ESS {d['min_ess_tail']:.0f}.")])
    if fit.law_fit is not None:
        ld = fit.law_fit.diagnostics
        sampling.blocks.append(Text(
            f"Task-loss law: {len(fit.law_fit.spec.families)} (family, task) pair(s), {len(fit.law_fit.spec.runs)} "
            f"runs; divergences {ld.divergences}, max R-hat {ld.max_rhat:.3f}, min bulk ESS {ld.min_ess_bulk:.0f}."))
    notes = fit.notes()
    link = Section("The link per task", [Text(
        "acc = chance + (upper - chance) sigmoid(slope (midpoint - task loss)); sigma_acc is one evaluation's noise. "
        "A task whose data show no rise above chance is forecast at chance."),
        Table(fit.link_table(interval).round(4), caption=f"Medians and {interval:.0%} intervals.")])
    sections = [answer, Section("Notes", [Items(tuple(notes), "warn") if notes else Text("None.")]), link, sampling]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Document(title="Downstream accuracy report",
                    subtitle=f"bayes_scaling {__version__}, written {stamp}" + (f", {source}" if source else "")
                    + f". Intervals are {interval:.0%} posterior intervals.", sections=sections)


def write_downstream_report(fit: Any, out_dir: str | os.PathLike, targets: Sequence[dict] = (), *,
                            interval: float = 0.9, source: str = "", formats: Sequence[str] = ("html",),
                            random_seed: int = 0) -> Path:
    """Write the downstream report into ``out_dir``; the path of ``report.html`` (or the first format)."""
    doc = downstream_document(fit, targets, interval=interval, source=source, random_seed=random_seed)
    return write_document(doc, out_dir, formats)
