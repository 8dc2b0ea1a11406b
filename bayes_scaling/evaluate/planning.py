"""Backtest of run planning on a real zoo: reveal only the runs a plan asks for, and score the target.

For each held-out family (:func:`backtest_planning`):

* the **target** is its most expensive run (the largest size, its longest training), scored like the
  Hitchhiker's protocol on the checkpoints in its last 30% (final-loss data: its one point);
* the **candidates** are every other run of the family, each costing its compute (6 N D unless the
  data give FLOPs) and evaluated at its own (filtered) checkpoints; for checkpoint data, the target run
  stopped at 30% of its tokens is one more candidate;
* the population prior comes from a fit of the *other* families (nothing of the family is trained);
* per budget (a fraction of the target's compute) three choices of runs are revealed and scored with
  the same borrowed-prior fit: ``plan`` (:func:`~bayes_scaling.decisions.planning.plan`, spending up to
  the budget), ``spread`` (the guide's k <= 5 sizes spread evenly in log size) and, at its own cost,
  ``target_30pct`` (the target trained to 30% of its tokens: its run at 30%, or for final-loss data the
  run of the target's size closest to 30% of its tokens) with ``plan`` at that same budget beside it.

One row per family x budget x method: compute spent, ARE, 50%/90% coverage and the plan's expected ARE.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data import ScalingData, apply_filters
from ..decisions.planning import PlanningWarning, expected_outcomes, plan, spread_heuristic, target_fraction_heuristic
from ..decisions.preposterior import METHODS as PREPOSTERIOR, FamilyDraws
from ..errors import SamplingWarning
from ..inference import fit as fit_law
from ..model import PopulationPrior
from .harness import bayes_scored
from .protocol import TARGET_LAST_FRACTION, Split, last_fraction_mask

METHODS = ("plan", "spread", "target_30pct")


@dataclass
class BacktestSettings:
    """What one backtest does; recorded with the results."""

    budgets: tuple[float, ...] = (0.01, 0.03, 0.1)  # fractions of the target run's compute
    target_fraction: float = 0.3
    max_checkpoints: int | None = 12
    min_tokens: float | None = None
    fantasies: int = 256
    method: str = "laplace"
    fit_kwargs: dict[str, Any] = field(default_factory=lambda: dict(draws=500, tune=500, chains=2))
    random_seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budgets": list(self.budgets)}


@dataclass
class FamilyTask:
    """One held-out family's target and candidate runs."""

    family: str
    target: pd.DataFrame  # the target run's scored rows
    target_params: float
    target_tokens: float
    target_flops: float
    candidates: pd.DataFrame  # run, params, tokens, flops, checkpoint_tokens, label
    rows: pd.DataFrame  # the family's (filtered) rows, to reveal from


def family_task(data: ScalingData, family: str, *, target_fraction: float = 0.3,
                last_fraction: float = TARGET_LAST_FRACTION) -> FamilyTask:
    """The target run and the candidate runs of ``family`` (``data`` already filtered)."""
    df = data.frame[data.frame["family"] == family]
    runs = df.groupby("run").agg(params=("params", "first"), tokens=("tokens", "max"), flops=("flops", "max"),
                                 rows=("loss", "size"))
    big = runs[runs["params"] == runs["params"].max()]
    target_run = big.sort_values(["tokens", "rows"]).index[-1]
    t = df[df["run"] == target_run]
    target = t[last_fraction_mask(t["tokens"].to_numpy(), last_fraction)]
    cands = []
    for run, r in runs.drop(index=target_run).iterrows():
        toks = np.sort(df.loc[df["run"] == run, "tokens"].to_numpy(float))
        cands.append({"run": run, "params": r["params"], "tokens": r["tokens"], "flops": r["flops"],
                      "checkpoint_tokens": toks, "label": f"{run} (N={r['params']:.3g}, D={r['tokens']:.3g})"})
    early = np.sort(t.loc[t["tokens"] <= target_fraction * t["tokens"].max() * (1 + 1e-9), "tokens"].to_numpy(float))
    if len(early) and len(t) > 1:
        frac_flops = float(t.loc[t["tokens"] == early.max(), "flops"].iloc[0])
        cands.append({"run": target_run, "params": float(t["params"].iloc[0]), "tokens": float(early.max()),
                      "flops": frac_flops, "checkpoint_tokens": early,
                      "label": f"{target_run} to {early.max() / t['tokens'].max():.0%} of its tokens"})
    return FamilyTask(family=family, target=target, target_params=float(t["params"].iloc[0]),
                      target_tokens=float(t["tokens"].max()), target_flops=float(t["flops"].max()),
                      candidates=pd.DataFrame(cands), rows=df)


def reveal(data: ScalingData, task: FamilyTask, indices: list[int]) -> ScalingData:
    """The family's rows of the chosen candidate runs (up to each candidate's tokens)."""
    df = data.frame
    keep = np.zeros(len(df), bool)
    fam = df["family"].to_numpy() == task.family
    for i in indices:
        c = task.candidates.iloc[i]
        keep |= fam & (df["run"].to_numpy() == c["run"]) & (df["tokens"].to_numpy(float) <= c["tokens"] * (1 + 1e-9))
    return data.subset(keep, name="planned_runs", reason=f"backtest: the runs of {task.family!r} a method chose",
                       drops_families=True)


def backtest_planning(data: ScalingData, *, families: list[str] | None = None,
                      settings: BacktestSettings | None = None, dataset: str = "",
                      log: Callable[[str], None] | None = None,
                      on_family: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Run the planning backtest on each held-out family (see the module docstring)."""
    s = settings or BacktestSettings()
    log = log or (lambda msg: None)
    pool = apply_filters(data, min_tokens=s.min_tokens, max_checkpoints=s.max_checkpoints)
    families = families or [f for f in pool.families
                            if pool.frame.loc[pool.frame["family"] == f, "params"].nunique() >= 3]
    if len(pool.families) < 3:
        raise ValueError(f"the backtest needs at least 3 families (2 to learn the population from); got {pool.families}")
    rows: list[dict[str, Any]] = []
    for i, fam in enumerate(families):
        task = family_task(pool, fam, target_fraction=s.target_fraction)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            pop = fit_law(pool.select_families([f for f in pool.families if f != fam]),
                          random_seed=s.random_seed + i, **s.fit_kwargs)
        prior = PopulationPrior.from_fit(pop, random_seed=s.random_seed + i)
        log(f"[{dataset}] {fam}: population fit in {time.perf_counter() - t0:.0f} s; "
            f"{len(task.candidates)} candidate runs; target {task.target_params:.3g} params, "
            f"{task.target_tokens:.3g} tokens")
        pre = PREPOSTERIOR[s.method](FamilyDraws.from_prior(prior), task.target_params, task.target_tokens,
                                     task.target_flops, fantasies=s.fantasies, random_seed=s.random_seed + i)
        scored: dict[frozenset, dict[str, Any]] = {}

        def score(method: str, budget: float, indices: list[int], extra: dict[str, Any]) -> None:
            key = frozenset(indices)
            if not indices:
                rows.append({"dataset": dataset, "family": fam, "method": method, "budget": budget,
                             "budget_fraction": budget / task.target_flops, "runs": 0, "flops": 0.0,
                             "spent_fraction": 0.0, "are": np.nan, **extra})
                return
            if key not in scored:
                train = reveal(pool, task, indices)
                split = Split(family=fam, k=len(indices), train=train, target=task.target,
                              train_sizes=tuple(sorted(set(train.frame["params"].astype(float)))),
                              target_size=task.target_params)
                scored[key] = bayes_scored(split, prior, s.fit_kwargs, random_seed=s.random_seed + 100 * i)
            exp = expected_outcomes(pre, task.candidates, indices)
            r = scored[key]
            rows.append({"dataset": dataset, "family": fam, "method": method, "budget": budget,
                         "budget_fraction": budget / task.target_flops, "runs": len(indices), "flops": exp["flops"],
                         "spent_fraction": exp["flops"] / task.target_flops,
                         "sizes": len(set(task.candidates["params"].iloc[indices])),
                         **{k: r[k] for k in ("are", "cover50", "cover90", "width90", "n_points", "seconds",
                                              "divergences", "max_rhat")},
                         "expected_are": exp["are"], "expected_width": exp["width"],
                         "chosen": "; ".join(task.candidates["label"].iloc[indices]), **extra})

        def planned(budget: float) -> tuple[list[int], dict[str, Any]]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PlanningWarning)
                p = plan(prior, {"params": task.target_params, "tokens": task.target_tokens,
                                 "flops": task.target_flops}, budget, candidates=task.candidates,
                         stop_at_accuracy=False, fantasies=s.fantasies, method=s.method,
                         random_seed=s.random_seed + i)
            return [int(c) for c in p.chosen["candidate"]], {"plan_seconds": p.seconds}

        for b in s.budgets:
            budget = b * task.target_flops
            idx, extra = planned(budget)
            score("plan", budget, idx, extra)
            score("spread", budget, spread_heuristic(task.candidates, budget,
                                                     tokens_per_param=task.target_tokens / task.target_params), {})
        j = target_fraction_heuristic(task.candidates, task.target_params, task.target_tokens, s.target_fraction)
        if j is not None:
            budget = float(task.candidates["flops"].iloc[j])
            score("target_30pct", budget, [j], {})
            idx, extra = planned(budget)
            score("plan", budget, idx, {**extra, "matched": "target_30pct"})
        done = [r for r in rows if r["family"] == fam]
        log(f"[{dataset}] {fam}: " + "; ".join(f"{r['method']}@{r['budget_fraction']:.3g} ARE {r['are']:.2%} "
                                               f"({r['runs']} runs)" for r in done))
        if on_family is not None:
            on_family(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def backtest_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, budget and method: families, median compute spent, median and mean ARE, 90% coverage."""
    r = results.copy()
    r["budget_label"] = np.where(r.get("matched", pd.Series(index=r.index, dtype=object)).eq("target_30pct")
                                 | r["method"].eq("target_30pct"), "target_30pct budget",
                                 r["budget_fraction"].map(lambda v: f"{v:.3g} x target"))
    g = r.groupby(["dataset", "budget_label", "method"], sort=False)
    return g.agg(families=("are", "size"), spent_fraction=("spent_fraction", "median"), runs=("runs", "median"),
                 median_are=("are", "median"), mean_are=("are", "mean"), cover90=("cover90", "mean"),
                 expected_are=("expected_are", "median")).reset_index()
