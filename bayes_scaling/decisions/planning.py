"""Plan the next runs: which small models to train for a target accuracy at the least compute.

:func:`plan` ranks candidate runs (N, D) by the expected narrowing of the target's predictive interval
per FLOP (:mod:`.preposterior`: fantasised outcomes, each refitted) and builds a greedy plan under a
compute budget (greedy by narrowing per FLOP and by narrowing alone, the better plan kept), reporting after each step the expected interval width, the expected ARE of
predicting the one target run, and the step at which the requested accuracy is expected.

The Hitchhiker's rules of thumb are here too, as baselines: :func:`spread_heuristic` (k models spread
evenly in log size up to the budget) and :func:`target_fraction_heuristic` (the target itself trained
to 30% of its tokens).

>>> p = bs.decisions.plan("population.nc", target={"params": 7e9, "tokens": 1.4e11}, budget=1e21)   # doctest: +SKIP
>>> p.steps                                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import MissingColumnError, NonPositiveValueError, PlanningWarning, UnsupportedLawError
from ..laws.flops import training_flops
from ..model.draws import LawDraws
from .preposterior import DEFAULT_INTERVAL, METHODS

#: the guide's floor: about 4% ARE is what seed noise allows
DEFAULT_ACCURACY = 0.04
#: the guide's partial-target heuristic trains the target to this share of its tokens
TARGET_FRACTION = 0.3
#: median effective sample size of the reweighted draws below which the plan warns
MIN_ESS = 30


# ------------------------------------------------------------------ inputs
def family_draws(posterior: Any, family: str | None = None, random_seed: int = 0, *,
                 new_family: bool = False) -> LawDraws:
    """The current uncertainty about the target's family from a fit, a population prior, or a path to either."""
    from ..inference.fitted import ScalingFit
    from ..reader import open as open_file
    from ..model import PopulationPrior

    if isinstance(posterior, (str, os.PathLike)):
        posterior = open_file(posterior)
    if isinstance(posterior, PopulationPrior):
        return posterior.family_draws()
    if isinstance(posterior, ScalingFit):
        from .compute_optimal import _one_family

        return posterior.family_draws(_one_family(posterior, family), new_family=new_family, random_seed=random_seed)
    raise TypeError(f"plan needs a ScalingFit, a PopulationPrior or a path to either, got {type(posterior).__name__}")


def default_candidates(target_params: float, target_tokens: float, *, sizes: int = 10,
                       smallest_fraction: float = 1e-3,
                       token_multipliers: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0)) -> pd.DataFrame:
    """A grid of ``sizes`` model sizes log-spaced from ``smallest_fraction`` of the target's up to the
    target's, each trained to the target's tokens-per-parameter ratio times each multiplier (up to 50 runs).
    Runs of the target's size with at least its tokens are left out (that is training the target)."""
    ratio = target_tokens / target_params
    rows = []
    for n in np.geomspace(target_params * smallest_fraction, target_params, sizes):
        for m in token_multipliers:
            d = n * ratio * m
            if n >= target_params * (1 - 1e-9) and d >= target_tokens * (1 - 1e-9):
                continue
            rows.append({"params": float(n), "tokens": float(d)})
    return pd.DataFrame(rows)


def checkpoint_tokens(tokens: float, checkpoints: int, min_tokens: float | None = None) -> np.ndarray:
    """Where a run to ``tokens`` is evaluated: ``checkpoints`` evenly spaced fractions up to 1 (the last
    always kept), without those before ``min_tokens``."""
    t = tokens * np.arange(1, checkpoints + 1) / checkpoints
    keep = t >= (min_tokens or 0.0)
    keep[-1] = True
    return t[keep]


def validate_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Check a candidate table (params, tokens; optional flops, checkpoints, checkpoint_tokens, run, label).

    Candidates with the same ``run`` are stopping points of one training run (its checkpoints come for
    free): they must share a size, and a later stop must cost more than an earlier one.
    """
    missing = [c for c in ("params", "tokens") if c not in candidates.columns]
    if missing:
        raise MissingColumnError(f"candidate runs need columns params and tokens; missing {missing} "
                                 f"(have {list(candidates.columns)})")
    if len(candidates) == 0:
        raise ValueError("no candidate runs: pass at least one (params, tokens) row, or none for the default grid")
    c = candidates.reset_index(drop=True).copy()
    for col in ("params", "tokens", "flops"):
        if col in c:
            v = pd.to_numeric(c[col], errors="coerce").to_numpy(float)
            bad = ~np.isfinite(v) | (v <= 0)
            if bad.any():
                raise NonPositiveValueError(f"candidate column {col!r} must be positive and finite; rows "
                                            f"{np.flatnonzero(bad)[:10].tolist()} are not")
            c[col] = v
    if "flops" not in c:
        c["flops"] = training_flops(c["params"], c["tokens"])
    if "run" not in c:  # every candidate its own training run
        c["run"] = np.arange(len(c))
    else:
        _check_nested_runs(c)
    if "label" not in c:
        c["label"] = [f"N={n:.3g}, D={d:.3g}" for n, d in zip(c["params"], c["tokens"])]
    return c


def _check_nested_runs(c: pd.DataFrame) -> None:
    for run, g in c.groupby("run", sort=False):
        if g["params"].nunique() > 1:
            raise ValueError(f"candidates of run {run!r} have different sizes {sorted(g['params'].unique())}; "
                             "the stopping points of one run share its size (give each run its own 'run' value)")
        g = g.sort_values("tokens")
        if (np.diff(g["flops"].to_numpy(float)) <= 0).any() or g["tokens"].duplicated().any():
            raise ValueError(f"candidates of run {run!r}: each later stopping point (more tokens) must cost more "
                             "FLOPs than the one before, and no two may stop at the same tokens")


def set_flops(candidates: pd.DataFrame, indices: Sequence[int]) -> float:
    """The compute of training the candidate runs ``indices``: per training run (the ``run`` column, when
    given), its latest chosen stopping point, since the earlier ones are its checkpoints."""
    if not len(indices):
        return 0.0
    sub = candidates.iloc[list(indices)]
    if "run" not in sub:
        return float(sub["flops"].sum())
    return float(sub.groupby("run", sort=False)["flops"].max().sum())


# ------------------------------------------------------------------ the plan
@dataclass
class Plan:
    """A greedy plan: the runs to train in order, and what the target's predictive is expected to be after each."""

    target: dict[str, float]
    budget: float
    accuracy: float
    interval: float
    steps: pd.DataFrame
    ranking: pd.DataFrame
    source: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> pd.DataFrame:
        """The planned runs in order (step >= 1)."""
        return self.steps[self.steps["step"] > 0]

    @property
    def runs(self) -> list[int]:
        """The candidate rows the plan ends with: a run continued at a later step appears once, at its
        latest stopping point."""
        final: list[int] = []
        for _, r in self.chosen.iterrows():
            if pd.notna(r.get("continues")):
                final.remove(int(r["continues"]))
            final.append(int(r["candidate"]))
        return final

    @property
    def reached_at(self) -> int | None:
        """The first step at which the expected ARE is at most ``accuracy`` (None: not within the budget)."""
        hit = self.steps.loc[self.steps["expected_are"] <= self.accuracy, "step"]
        return int(hit.iloc[0]) if len(hit) else None

    def to_dict(self) -> dict[str, Any]:
        import json

        return {"target": self.target, "budget": self.budget, "accuracy": self.accuracy, "interval": self.interval,
                "source": self.source, "seconds": self.seconds, "reached_at": self.reached_at,
                "settings": self.settings,
                "steps": json.loads(self.steps.to_json(orient="records")),
                "ranking": json.loads(self.ranking.head(20).to_json(orient="records"))}

    def summary(self) -> str:
        s0 = self.steps.iloc[0]
        lines = [f"plan for N={self.target['params']:.3g}, D={self.target['tokens']:.3g} from the {self.source}; "
                 f"budget {self.budget:.3g} FLOPs, accuracy goal {self.accuracy:.1%} ARE",
                 f"now: {self.interval:.0%} interval width {s0['expected_width']:.1%} of the loss, "
                 f"expected ARE {s0['expected_are']:.2%}"]
        for _, r in self.chosen.iterrows():
            verb = "continue to" if pd.notna(r.get("continues")) else "train"
            lines.append(f"  {int(r['step'])}. {verb} {r['label']} ({r['flops']:.3g} FLOPs, total "
                         f"{r['cumulative_flops']:.3g}): width {r['expected_width']:.1%}, ARE {r['expected_are']:.2%}")
        at = self.reached_at
        lines.append("accuracy goal expected " + (f"at step {at}" if at is not None else "not reached within the budget"))
        return "\n".join(lines)


def _fantasy_run(pre: Any, cand: pd.DataFrame, i: int, checkpoints: int, min_tokens: float | None):
    row = cand.iloc[i]
    if "checkpoint_tokens" in cand and row.get("checkpoint_tokens") is not None:
        tokens = np.asarray(row["checkpoint_tokens"], float)
    else:
        k = int(row["checkpoints"]) if "checkpoints" in cand and pd.notna(row.get("checkpoints")) else checkpoints
        tokens = checkpoint_tokens(float(row["tokens"]), k, min_tokens)
    # a checkpoint's compute is the run's, pro rata to its tokens (6 N D unless the candidate gave FLOPs)
    return pre.run(i, float(row["params"]), tokens, float(row["flops"]) * tokens / float(row["tokens"]))


def expected_outcomes(pre: Any, cand: pd.DataFrame, indices: Sequence[int], *, checkpoints: int = 10,
                      min_tokens: float | None = None) -> dict[str, float]:
    """Expected width, ARE and ESS after training the candidate runs ``indices`` (any set: a heuristic's too)."""
    out = pre.evaluate([_fantasy_run(pre, cand, i, checkpoints, min_tokens) for i in indices])
    out["flops"] = set_flops(cand, indices)
    return out


def plan(posterior: Any, target: Mapping[str, float], budget: float, *, family: str | None = None,
         new_family: bool = False, candidates: pd.DataFrame | None = None, accuracy: float = DEFAULT_ACCURACY,
         interval: float = DEFAULT_INTERVAL, checkpoints: int = 10, min_tokens: float | None = None,
         fantasies: int = 256, method: str = "laplace", stop_at_accuracy: bool = True, max_steps: int = 20,
         random_seed: int = 0) -> Plan:
    """Rank candidate runs by expected interval reduction per FLOP and plan greedily under ``budget``.

    Parameters
    ----------
    posterior:
        A :class:`~bayes_scaling.inference.ScalingFit` (its posterior for ``family``, or with ``new_family=True`` the
        population predictive of a family it has not seen), a :class:`~bayes_scaling.PopulationPrior`
        (nothing trained yet), or the path to either.
    target:
        ``{"params": N, "tokens": D}`` (optionally ``"flops"``): the run whose loss is to be predicted.
    budget:
        FLOPs available for the planned runs (a run costs its ``flops``, 6 N D by default; its
        checkpoints come for free).
    candidates:
        A table of runs (``params``, ``tokens``; optional ``flops``, ``checkpoints``, ``checkpoint_tokens``,
        ``run``, ``label``); default :func:`default_candidates` (10 sizes x 5 token budgets). Rows with the
        same ``run`` are stopping points of one training run: the plan may train it to an early stop and
        later continue it, paying only the extra compute (its checkpoints come for free).
    accuracy:
        The expected ARE wanted (default 4%, the guide's seed-noise floor); with ``stop_at_accuracy`` the
        plan stops at the first step expected to reach it.
    checkpoints, min_tokens:
        How many evenly spaced checkpoints of a run are used (unless the candidate says), and the early
        cut below which checkpoints are not used (the guide drops those before 10^10 tokens).
    fantasies, method:
        Fantasised outcomes per candidate (common across candidate sets), and how each is absorbed:
        ``"laplace"`` (default) refits it by a Gaussian approximation, ``"importance"`` reweights the
        current draws (exact for one run, optimistic when many runs collapse the weights); see
        :mod:`.preposterior`.

    Returns
    -------
    Plan
        The greedy plan. A :class:`PlanningWarning` says when the reweighted draws are few (the
        importance method's estimate is then noisy) or when nothing fits the budget.
    """
    t0 = time.perf_counter()
    if not (math.isfinite(budget) and budget > 0):
        raise NonPositiveValueError(f"budget must be a positive number of FLOPs, got {budget!r}")
    if not 0 < accuracy < 1:
        raise ValueError(f"accuracy is a relative error in (0, 1), e.g. 0.04; got {accuracy!r}")
    missing = {"params", "tokens"} - set(target)
    if missing:
        raise MissingColumnError(f"target needs params and tokens; missing {sorted(missing)}")
    tn, td = float(target["params"]), float(target["tokens"])
    if not (tn > 0 and td > 0 and math.isfinite(tn) and math.isfinite(td)):
        raise NonPositiveValueError(f"target params and tokens must be positive and finite, got {tn!r}, {td!r}")
    draws = family_draws(posterior, family, random_seed, new_family=new_family)
    if draws.law.further_inputs:
        raise UnsupportedLawError(f"planning runs fantasises runs in parameters, tokens and FLOPs; the {draws.law.name!r} "
                                  f"law also reads {list(draws.law.further_inputs)}")
    if not {"params", "tokens"} <= set(draws.law.inputs) and candidates is None:
        raise UnsupportedLawError("the default candidate grid is in N and D; with the compute law pass candidates")
    cand = validate_candidates(candidates if candidates is not None else default_candidates(tn, td))
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    pre = METHODS[method](draws, tn, td, target.get("flops"), fantasies=fantasies, interval=interval,
                          random_seed=random_seed)
    def run(i: int):
        return _fantasy_run(pre, cand, i, checkpoints, min_tokens)  # cached by the preposterior

    cost = cand["flops"].to_numpy(float)
    memo: dict[tuple[int, ...], dict[str, float]] = {}

    def evaluate(indices: list[int]) -> dict[str, float]:
        key = tuple(indices)  # order matters only for the warm start, not the result
        if key not in memo:
            memo[key] = pre.evaluate([run(j) for j in indices])
        return memo[key]

    # budgeted greedy twice, by gain per FLOP and by gain, keeping the better plan (Leskovec et al. 2007:
    # the better of the two is within a constant factor of the best plan when gains diminish)
    plans = {by: _greedy(evaluate, cand, cost, budget, by_ratio=by == "gain per FLOP", accuracy=accuracy,
                         stop_at_accuracy=stop_at_accuracy, max_steps=max_steps)
             for by in ("gain per FLOP", "gain")}

    def merit(item):
        steps_, _ = item[1]
        last = steps_[-1]
        reached = stop_at_accuracy and last["expected_are"] <= accuracy
        return (not reached, last["cumulative_flops"] if reached else last["expected_width"],
                last["cumulative_flops"])

    greedy, (steps, ranking) = min(plans.items(), key=merit)  # both passes rank the same first step
    steps_df = pd.DataFrame(steps)
    for col in ("candidate", "continues"):
        if col not in steps_df:
            steps_df[col] = np.nan
    if not ranking:
        ranking_df = pd.DataFrame(columns=["candidate", "label", "params", "tokens", "flops", "expected_width",
                                           "expected_are", "gain_per_exaflop", "ess"])
    else:
        ranking_df = pd.DataFrame(ranking).sort_values("gain_per_exaflop", ascending=False, ignore_index=True)
    final = steps[-1]
    if len(steps_df) == 1 and not (stop_at_accuracy and final["expected_are"] <= accuracy):
        warnings.warn(f"no candidate run fits the budget of {budget:.3g} FLOPs and narrows the target's interval "
                      f"(the cheapest costs {cost.min():.3g}); raise the budget or add smaller candidates",
                      PlanningWarning, stacklevel=2)
    low = steps_df["ess"].min()
    if low < MIN_ESS:
        warnings.warn(f"the preposterior rests on a median of {low:.0f} effective draws at some step (of "
                      f"{draws.size}); its widths are noisy. Fit with more draws for a steadier plan.",
                      PlanningWarning, stacklevel=2)
    return Plan(target={"params": tn, "tokens": td, "flops": float(training_flops(tn, td, target.get("flops")))},
                budget=float(budget), accuracy=accuracy, interval=interval, steps=steps_df, ranking=ranking_df,
                source=draws.source, seconds=time.perf_counter() - t0,
                settings={"fantasies": fantasies, "checkpoints": checkpoints, "min_tokens": min_tokens,
                          "draws": draws.size, "candidates": len(cand), "random_seed": random_seed,
                          "stop_at_accuracy": stop_at_accuracy, "method": method, "greedy": greedy,
                          "evaluations": len(memo)})


def _greedy(evaluate, cand: pd.DataFrame, cost: np.ndarray, budget: float, *, by_ratio: bool, accuracy: float,
            stop_at_accuracy: bool, max_steps: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One budgeted greedy plan: each step adds the affordable run with the largest narrowing of the
    interval (per FLOP when ``by_ratio``). A candidate of a run already chosen (same ``run``, more tokens)
    continues that run: it costs the difference and replaces the earlier stop. Returns its steps and the
    first step's ranking of every candidate."""
    current = evaluate([])
    steps = [{"step": 0, "label": "(nothing new)", "params": np.nan, "tokens": np.nan, "flops": 0.0,
              "cumulative_flops": 0.0, "expected_width": current["width"], "expected_are": current["are"],
              "gain_per_exaflop": np.nan, "ess": current["ess"],
              "extrapolation_decades": current["extrapolation_decades"]}]
    ranking: list[dict[str, Any]] = []
    chosen: list[int] = []
    runs = cand["run"].to_numpy(object)  # validate_candidates gives every table one
    tokens = cand["tokens"].to_numpy(float)
    spent = 0.0
    steps_taken = 0
    while steps_taken < max_steps:
        if stop_at_accuracy and current["are"] <= accuracy:
            break
        by_run = {runs[j]: j for j in chosen}
        best, best_score, best_eval, best_move = None, 0.0, None, None
        for i in range(len(cand)):
            prev = by_run.get(runs[i])
            if prev is not None and tokens[i] <= tokens[prev]:
                continue  # already trained this far: its checkpoints are in hand
            extra = cost[i] - (cost[prev] if prev is not None else 0.0)  # continuing a run costs the rest
            if spent + extra > budget * (1 + 1e-9):
                continue
            trial = [j for j in chosen if j != prev] + [i]
            e = evaluate(trial)
            gain = current["width"] - e["width"]
            if not chosen:
                ranking.append({"candidate": i, "label": cand["label"].iloc[i], "params": cand["params"].iloc[i],
                                "tokens": cand["tokens"].iloc[i], "flops": cost[i], "expected_width": e["width"],
                                "expected_are": e["are"], "gain_per_exaflop": gain / cost[i] * 1e18, "ess": e["ess"]})
            score = gain / extra if by_ratio else gain
            if score > best_score:
                best, best_score, best_eval, best_move = i, score, e, (prev, extra, trial)
        if best is None:
            break
        prev, extra, chosen = best_move
        steps_taken += 1
        spent += extra
        gain = current["width"] - best_eval["width"]
        current = best_eval
        steps.append({"step": steps_taken, "label": cand["label"].iloc[best], "params": cand["params"].iloc[best],
                      "tokens": cand["tokens"].iloc[best], "flops": extra, "cumulative_flops": spent,
                      "expected_width": current["width"], "expected_are": current["are"],
                      "gain_per_exaflop": gain / extra * 1e18, "ess": current["ess"],
                      "extrapolation_decades": current["extrapolation_decades"], "candidate": best,
                      "continues": np.nan if prev is None else prev})
    return steps, ranking


# ------------------------------------------------------------------ the guide's heuristics
def spread_heuristic(candidates: pd.DataFrame, budget: float, *, k_max: int = 5,
                     tokens_per_param: float | None = None) -> list[int]:
    """The guide's rule of thumb: up to ``k_max`` models spread evenly in log size, as large as the budget allows.

    Per size the run closest (in log) to ``tokens_per_param`` is taken (default: the candidates' median
    ratio). Over every largest size and every k <= ``k_max``, the sizes nearest to ``k`` log-even points
    from the smallest size up to that largest one; the affordable choice spending the most compute wins
    (ties: more models). Returns candidate row positions.
    """
    cand = validate_candidates(candidates)
    ratio = cand["tokens"] / cand["params"]
    target_ratio = tokens_per_param or float(np.median(ratio))
    per_size = (cand.assign(_off=np.abs(np.log(ratio / target_ratio))).reset_index()
                .sort_values(["params", "_off", "flops"]).groupby("params", sort=True).first())
    sizes = per_size.index.to_numpy(float)
    best: tuple[float, int, list[int]] = (-1.0, 0, [])
    for hi in range(len(sizes)):
        for k in range(1, min(k_max, hi + 1) + 1):
            want = np.geomspace(sizes[0], sizes[hi], k) if k > 1 else np.array([sizes[hi]])
            pick: list[int] = []
            for w in want:
                order = np.argsort(np.abs(np.log(sizes[: hi + 1] / w)))
                pick.append(next(int(o) for o in order if int(o) not in pick))
            rows = per_size.iloc[sorted(set(pick))]
            spend = float(rows["flops"].sum())
            if spend <= budget * (1 + 1e-9) and (spend, k) > best[:2]:
                best = (spend, k, rows["index"].astype(int).tolist())
    return best[2]


def target_fraction_heuristic(candidates: pd.DataFrame, target_params: float, target_tokens: float,
                              fraction: float = TARGET_FRACTION) -> int | None:
    """The guide's other rule: the candidate closest to the target's size trained to ``fraction`` of its
    tokens (closest in log tokens among the runs of that size). None when no candidate has the target's size."""
    cand = validate_candidates(candidates)
    same = np.isclose(cand["params"], target_params, rtol=0.02)
    if not same.any():
        return None
    off = np.abs(np.log(cand["tokens"].to_numpy(float) / (fraction * target_tokens)))
    off[~same] = np.inf
    return int(np.argmin(off))
