"""Backtest of run planning on a real zoo: reveal only the runs a plan asks for, and score the target.

For each held-out family (:func:`backtest_planning`):

* the **target** is its most expensive run (the largest size, its longest training), scored like the
  Hitchhiker's protocol on the checkpoints in its last 30% (final-loss data: its one point);
* the **candidates** are every other run of the family, each costing its compute (6 N D unless the
  data give FLOPs) and evaluated at its own (filtered) checkpoints. For checkpoint data, a run stopped
  early is a run one could train too: each run (the target's included) stopped at its last checkpoint
  within 3%, 10% and 30% of its tokens (``prefix_fractions``) is one more candidate, costing the
  compute up to that checkpoint and revealing only the checkpoints before it. Final-loss data (one
  row per run) have no such candidates;
* the population prior comes from a fit of the *other* families (nothing of the family is trained);
* per budget (a fraction of the target's compute) three choices of runs are revealed and scored with
  the same borrowed-prior fit: ``plan`` (:func:`~bayes_scaling.decisions.planning.plan`, spending up to
  the budget), ``spread`` (the guide's k <= 5 sizes spread evenly in log size) and, at its own cost,
  ``target_30pct`` (the target trained to 30% of its tokens: its run at 30%, or for final-loss data the
  run of the target's size closest to 30% of its tokens) with ``plan`` and ``spread`` at that same
  budget beside it.

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
from ..decisions.preposterior import METHODS as PREPOSTERIOR
from ..errors import SamplingWarning
from ..inference import fit as fit_law
from ..inference.config import SamplerConfig
from ..model import PopulationPrior
from ..model.config import ModelConfig
from .harness import bayes_scored
from .protocol import EVALUATION_SAMPLER, TARGET_LAST_FRACTION, Split, evaluation_configs, last_fraction_mask

METHODS = ("plan", "spread", "target_30pct")


#: fractions of its tokens at which a run with checkpoints may be stopped early (backtest candidates)
PREFIX_FRACTIONS = (0.03, 0.1, 0.3)


@dataclass
class BacktestSettings:
    """What one backtest does; recorded with the results."""

    budgets: tuple[float, ...] = (0.01, 0.03, 0.1)  # fractions of the target run's compute
    target_fraction: float = 0.3
    #: for checkpoint data, every run stopped at these fractions of its tokens is a candidate too
    prefix_fractions: tuple[float, ...] = PREFIX_FRACTIONS
    max_checkpoints: int | None = 12
    min_tokens: float | None = None
    fantasies: int = 256
    method: str = "laplace"
    model: ModelConfig = field(default_factory=ModelConfig)
    #: every fit's sampler; its seed is replaced by one per fit derived from ``random_seed``
    sampler: SamplerConfig = EVALUATION_SAMPLER
    random_seed: int = 0

    def __post_init__(self) -> None:
        self.model, self.sampler = evaluation_configs(self.model, self.sampler)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budgets": list(self.budgets), "prefix_fractions": list(self.prefix_fractions),
                "model": self.model.to_dict(), "sampler": self.sampler.to_dict()}


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
                last_fraction: float = TARGET_LAST_FRACTION,
                prefix_fractions: tuple[float, ...] = PREFIX_FRACTIONS) -> FamilyTask:
    """The target run and the candidate runs of ``family`` (``data`` already filtered).

    Candidates: every other run in full, and for runs with checkpoints each run (the target's too)
    stopped at its last checkpoint within each of ``prefix_fractions`` of its tokens, and the target's run
    at ``target_fraction`` too; duplicates of one stopping point are listed once.
    """
    df = data.frame[data.frame["family"] == family]
    runs = df.groupby("run").agg(params=("params", "first"), tokens=("tokens", "max"), flops=("flops", "max"),
                                 rows=("loss", "size"))
    big = runs[runs["params"] == runs["params"].max()]
    target_run = big.sort_values(["tokens", "rows"]).index[-1]
    t = df[df["run"] == target_run]
    target = t[last_fraction_mask(t["tokens"].to_numpy(), last_fraction)]
    cands = []
    for run, r in runs.iterrows():
        rr = df[df["run"] == run]
        toks = np.sort(rr["tokens"].to_numpy(float))
        stops = {*prefix_fractions, target_fraction} if run == target_run else {*prefix_fractions, 1.0}
        if len(toks) == 1:  # final-loss runs (one row) cannot be stopped early
            stops &= {1.0}
        seen: set[float] = set()
        for f in sorted(stops, reverse=True):
            shown = toks[toks <= f * toks.max() * (1 + 1e-9)]
            if not len(shown) or shown.max() in seen or (f < 1 and len(shown) == len(toks)):
                continue
            seen.add(shown.max())
            label = (f"{run} (N={r['params']:.3g}, D={r['tokens']:.3g})" if f == 1.0 else
                     f"{run} to {shown.max() / toks.max():.0%} of its tokens")
            cands.append({"run": run, "params": r["params"], "tokens": float(shown.max()),
                          "flops": float(rr.loc[rr["tokens"] == shown.max(), "flops"].max()),
                          "checkpoint_tokens": shown, "label": label})
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
        task = family_task(pool, fam, target_fraction=s.target_fraction, prefix_fractions=s.prefix_fractions)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            pop = fit_law(pool.select_families([f for f in pool.families if f != fam]), s.model,
                          s.sampler.replace(random_seed=s.random_seed + i))
        prior = PopulationPrior.from_fit(pop, random_seed=s.random_seed + i)
        log(f"[{dataset}] {fam}: population fit in {time.perf_counter() - t0:.0f} s; "
            f"{len(task.candidates)} candidate runs; target {task.target_params:.3g} params, "
            f"{task.target_tokens:.3g} tokens")
        pre = PREPOSTERIOR[s.method](prior.family_draws(), task.target_params, task.target_tokens,
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
                scored[key] = bayes_scored(split, prior, s.model, s.sampler, random_seed=s.random_seed + 100 * i)
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
            return p.runs, {"plan_seconds": p.seconds}

        def spread(budget: float) -> list[int]:
            return spread_heuristic(task.candidates, budget, tokens_per_param=task.target_tokens / task.target_params)

        for b in s.budgets:
            budget = b * task.target_flops
            idx, extra = planned(budget)
            score("plan", budget, idx, extra)
            score("spread", budget, spread(budget), {})
        j = target_fraction_heuristic(task.candidates, task.target_params, task.target_tokens, s.target_fraction)
        if j is not None:
            budget = float(task.candidates["flops"].iloc[j])
            score("target_30pct", budget, [j], {})
            idx, extra = planned(budget)
            score("plan", budget, idx, {**extra, "matched": "target_30pct"})
            score("spread", budget, spread(budget), {"matched": "target_30pct"})
        done = [r for r in rows if r["family"] == fam]
        log(f"[{dataset}] {fam}: " + "; ".join(f"{r['method']}@{r['budget_fraction']:.3g} ARE {r['are']:.2%} "
                                               f"({r['runs']} runs)" for r in done))
        if on_family is not None:
            on_family(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def budget_labels(results: pd.DataFrame) -> pd.Series:
    """Each row's budget as a label: ``"0.01 x target"``, or ``"target_30pct budget"`` for the target-at-30%
    run and the methods scored at its compute."""
    own = results.get("matched", pd.Series(index=results.index, dtype=object)).eq("target_30pct")
    own |= results["method"].eq("target_30pct")
    return pd.Series(np.where(own, "target_30pct budget", results["budget_fraction"].map(lambda v: f"{v:.3g} x target")),
                     index=results.index)


def backtest_matches(results: pd.DataFrame, *, slack: float = 0.05) -> pd.DataFrame:
    """Per family and heuristic run set: the least compute at which the plan did at least as well.

    For each row of a heuristic (``spread``, ``target_30pct``) that trained something, the plan rows of
    the same family that spent at most the heuristic's compute (times ``1 + slack``: budgets are met to
    within a run's granularity) are searched for the cheapest one whose ARE is not above the
    heuristic's. ``plan_spent`` is its compute as a fraction of the target's (NaN: no plan within that
    compute matched) and ``ratio`` = plan_spent / the heuristic's; ``same_budget_are`` is the plan's
    ARE at the heuristic's budget. One row per family x heuristic x budget.
    """
    out = []
    r = results.assign(budget_label=budget_labels(results)).dropna(subset=["are"])
    for (dataset, fam), g in r.groupby(["dataset", "family"], sort=False):
        plans = g[g["method"] == "plan"]
        for h in g[g["method"] != "plan"].itertuples():
            within = plans[plans["spent_fraction"] <= h.spent_fraction * (1 + slack)]
            good = within[within["are"] <= h.are].sort_values("spent_fraction")
            same = plans[np.isclose(plans["budget"], h.budget, rtol=1e-9)]
            row = {"dataset": dataset, "family": fam, "heuristic": h.method, "budget": h.budget_label,
                   "budget_fraction": h.budget_fraction,
                   "heuristic_spent": h.spent_fraction, "heuristic_are": h.are,
                   "same_budget_are": float(same["are"].iloc[0]) if len(same) else np.nan,
                   "plan_spent": np.nan, "plan_are": np.nan, "ratio": np.nan}
            if len(good):
                row.update(plan_spent=float(good["spent_fraction"].iloc[0]), plan_are=float(good["are"].iloc[0]),
                           ratio=float(good["spent_fraction"].iloc[0]) / h.spent_fraction)
            out.append(row)
    return pd.DataFrame(out)


def matches_table(matches: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, heuristic and budget: how often the plan matched the heuristic's ARE within its compute,
    the median compute ratio when it did, and how often the plan's ARE was lower at the same budget."""
    m = matches.assign(matched=matches["ratio"].notna(), lower=matches["same_budget_are"] < matches["heuristic_are"])
    g = m.groupby(["dataset", "heuristic", "budget"], sort=False)
    return g.agg(families=("matched", "size"), matched=("matched", "sum"), median_ratio=("ratio", "median"),
                 lower_at_same_budget=("lower", "sum"), heuristic_median_are=("heuristic_are", "median"),
                 plan_median_are=("same_budget_are", "median")).reset_index()
