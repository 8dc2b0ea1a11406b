"""Borrowed priors against point-estimate baselines under the Hitchhiker's protocol.

:func:`evaluate_borrowing` holds out each family of a dataset in turn and, for k = 1, 2, 3 of its
smallest models (:func:`.protocol.split_family`), scores side by side on the same target points:

``bayes_borrowed``
    ours: the hierarchical model fitted on the *other* families, its population prior
    (:class:`~bayes_scaling.PopulationPrior`) borrowed by a fit of the held-out family's k models;
    the one-run posterior predictive (median, 50% and 90% intervals).
``huber``
    all five parameters by Huber loss on log loss from a grid of starts with L-BFGS, on the held-out
    family's k models alone (Hoffmann et al.; Besiroglu et al.).
``fixed_n_term``
    the guide's one-model baseline: log A = 6.2554, alpha = 0.3527 (Muennighoff et al.) fixed.
``donor``
    another family's point estimates (Huber fit on all of its data) with E refitted to the held-out
    family's data; the donor that fits those data best is chosen.
``last_checkpoint``
    the mean loss over the last 30% of training of the largest trained model.

Point baselines get the interval a hand-fitter would quote: log-normal with the robust sd of their
training residuals (for ``last_checkpoint``, of the losses averaged). The results are a tidy
DataFrame (one row per family x k x method); :func:`summary_table` aggregates it per k and method.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data import ScalingData, apply_filters
from ..errors import SamplingWarning
from ..inference import fit as fit_law
from ..inference.borrow_calibration import calibrated_prior
from ..inference.config import SamplerConfig
from ..model import PopulationPrior
from ..model.config import ModelConfig
from ..model.population_prior import DEFAULT_POPULATION
from ..model.spec import checkpoint_noise_for
from .baselines import (donor_fit, fixed_n_term_fit, huber_fit, last_checkpoint_mean, log_residual_scale,
                        predict_natural)
from .protocol import (EVALUATION_SAMPLER, TARGET_LAST_FRACTION, evaluation_configs, Split, draw_bands, last_fraction_mask, lognormal_bands, max_k, score,
                       split_family)

METHODS = ("bayes_borrowed", "huber", "fixed_n_term", "donor", "last_checkpoint")


@dataclass
class HarnessSettings:
    """What one evaluation run does; every field is recorded with the results."""

    ks: tuple[int, ...] = (1, 2, 3)
    fraction: float | None = None
    min_tokens: float | None = None
    max_checkpoints: int | None = 12
    last_fraction: float = TARGET_LAST_FRACTION
    huber_grid_stride: int = 5
    model: ModelConfig = field(default_factory=ModelConfig)
    #: every fit's sampler; its seed is replaced by one per fit derived from ``random_seed``
    sampler: SamplerConfig = EVALUATION_SAMPLER
    random_seed: int = 0
    #: what a new family is like when the population prior is extracted (PopulationPrior.from_fit)
    population: str = DEFAULT_POPULATION
    #: calibrate the population prior's spread and discrepancy on the population's own families, as a borrowed
    #: fit does (:func:`~bayes_scaling.inference.borrow_calibration.calibrated_prior`); False: the prior as
    #: extracted, the fitted population's spread and learned discrepancy
    calibrate: bool = True
    #: borrow a multivariate t over the source families instead of a normal (``PopulationPrior.from_fit(tails=)``)
    tails: bool = False

    def __post_init__(self) -> None:
        self.model, self.sampler = evaluation_configs(self.model, self.sampler)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ks": list(self.ks), "model": self.model.to_dict(), "sampler": self.sampler.to_dict()}


def eligible_families(data: ScalingData, k: int = 1) -> list[str]:
    """Families with more than ``k`` model sizes (a target beyond the trained sizes exists)."""
    return [f for f in data.families if max_k(data, f) >= k]


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return frame["params"].to_numpy(float), frame["tokens"].to_numpy(float), frame["loss"].to_numpy(float)


def _point_row(split: Split, method: str, pred: np.ndarray, log_sd: float) -> dict[str, Any]:
    y = split.target["loss"].to_numpy(float)
    return {"method": method, **score(y, *lognormal_bands(pred, log_sd))}


def point_baselines(split: Split, donors: dict[str, dict[str, float]], grid_stride: int = 5,
                    last_fraction: float = TARGET_LAST_FRACTION) -> list[dict[str, Any]]:
    """Score the four point-estimate baselines on one split."""
    n, d, y = _arrays(split.train.frame)
    tn, td, _ = _arrays(split.target)
    rows = []
    for method, fitter in (("huber", lambda: (huber_fit(n, d, y, grid_stride=grid_stride), "")),
                           ("fixed_n_term", lambda: (fixed_n_term_fit(n, d, y), "")),
                           ("donor", lambda: donor_fit(donors, n, d, y))):  # (params, chosen donor)
        t0 = time.perf_counter()
        p, detail = fitter()
        row = _point_row(split, method, predict_natural(p, tn, td), log_residual_scale(y, predict_natural(p, n, d)))
        row.update(seconds=time.perf_counter() - t0, detail=detail)
        rows.append(row)
    big = split.train.frame[split.train.frame["params"] == max(split.train_sizes)]
    tokens, loss, run = big["tokens"].to_numpy(), big["loss"].to_numpy(), big["run"].to_numpy()
    level = last_checkpoint_mean(tokens, loss, last_fraction, run=run)
    last = loss[last_fraction_mask(tokens, last_fraction, run)]
    sd = float(np.std(np.log(last), ddof=1)) if len(last) > 1 else 0.0
    row = _point_row(split, "last_checkpoint", np.full(len(split.target), level), sd)
    row.update(seconds=0.0, detail="")
    rows.append(row)
    return rows


def bayes_scored(split: Split, prior: PopulationPrior | None, model: ModelConfig, sampler: SamplerConfig,
                 random_seed: int = 0, *, train: ScalingData | None = None,
                 method: str = "bayes_borrowed") -> dict[str, Any]:
    """Fit ``train`` (default: the held-out family's k models) with ``model`` and ``sampler`` (seeded by
    ``random_seed``), with the borrowed ``prior`` when given, and score the held-out family's one-run
    predictive on the split's target points.

    ``train`` may hold other families too (a pooled fit); the prediction is always for ``split.family``.
    The row carries the fit's diagnostics (divergences, R-hat, bulk ESS) and the sampling warnings it raised;
    with a mixture prior also the largest Pareto k-hat of its components' evidence and the three heaviest
    components with their posterior weights.
    """
    train = split.train if train is None else train
    detail = ""
    used = checkpoint_noise_for(model.checkpoint_noise, train)
    if used != model.checkpoint_noise:  # e.g. runs stopped at their first checkpoint
        model = model.replace(checkpoint_noise=used)
        detail = "independent checkpoint noise: no run with two checkpoints (the same model)"
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        fitted = fit_law(train, model, sampler.replace(random_seed=random_seed), borrow=prior)
    seconds = time.perf_counter() - t0
    tn, td, y = _arrays(split.target)
    flops = split.target["flops"].to_numpy(float)
    pred = fitted.predict(split.family, tn, td, flops, keep_draws=True, random_seed=random_seed,
                          )
    d = fitted.diagnostics
    row = {"method": method, **score(y, *draw_bands(np.log(pred["run_loss"].to_numpy()))), "seconds": seconds,
           "detail": detail, "divergences": d.divergences, "max_rhat": d.max_rhat, "min_ess_bulk": d.min_ess_bulk,
           "sampling_warnings": len([w for w in caught if issubclass(w.category, SamplingWarning)])}
    weights = fitted.mixture_weights
    if weights:  # a mixture prior: the components' evidence diagnostics and the three heaviest weights
        row.update(mixture_max_khat=max(c["khat"] for c in fitted.sampler_info["mixture"].values()),
                   mixture_top="; ".join(f"{n} {w:.2f}" for n, w in list(weights.items())[:3]))
    return row


def evaluate_borrowing(data: ScalingData, *, families: list[str] | None = None,
                       settings: HarnessSettings | None = None, dataset: str = "",
                       log: Callable[[str], None] | None = None,
                       on_family: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Run the protocol on every eligible held-out family (or ``families``) of ``data``.

    Per held-out family the population fit on the other families runs once (with the same filters
    and NUTS settings) and is reused for every ``k``. Returns one row per family x k x method with
    columns ``dataset, family, k, method, are, cover50, cover90, width50, width90, n_points, seconds,
    decades, ...``. ``on_family`` receives the rows of the results so far after each held-out family
    (to save them incrementally); ``log`` receives one progress line per fit.
    """
    s = settings or HarnessSettings()
    log = log or (lambda msg: None)
    pool = apply_filters(data, min_tokens=s.min_tokens, max_checkpoints=s.max_checkpoints)
    families = families or eligible_families(data)
    if len(data.families) < 3:
        raise ValueError("the borrowing protocol needs at least 3 families: 2 or more to learn the population "
                         f"from while one is held out; the data has {data.families}")
    donors = {f: huber_fit(*_arrays(pool.frame[pool.frame["family"] == f]), grid_stride=s.huber_grid_stride)
              for f in pool.families}
    rows: list[dict[str, Any]] = []
    for i, fam in enumerate(families):
        others = [f for f in pool.families if f != fam]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)  # stored in pop.diagnostics and reported below
            pop = fit_law(pool.select_families(others), s.model, s.sampler.replace(random_seed=s.random_seed + i))
        pop_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        kw = {"population": s.population, "random_seed": s.random_seed + i, "tails": s.tails}
        prior = calibrated_prior(pop, fit_law, **kw) if s.calibrate else PopulationPrior.from_fit(pop, **kw)
        calibration_seconds = time.perf_counter() - t0
        log(f"[{dataset}] {fam}: population fit on {len(others)} families in {pop_seconds:.0f} s "
            f"(divergences {pop.diagnostics.divergences}, max R-hat {pop.diagnostics.max_rhat:.3f})")
        for k in s.ks:
            if k > max_k(data, fam):
                continue
            split = split_family(data, fam, k, fraction=s.fraction, min_tokens=s.min_tokens,
                                 max_checkpoints=s.max_checkpoints, last_fraction=s.last_fraction)
            task = {"dataset": dataset, "family": fam, "k": k, "decades": split.decades,
                    "train_rows": len(split.train), "target_size": split.target_size,
                    "population_seconds": pop_seconds, "population_divergences": pop.diagnostics.divergences,
                    "population_max_rhat": pop.diagnostics.max_rhat, "calibration_seconds": calibration_seconds,
                    "spread_scale": prior.spread_scale,
                    "borrowed_kappa": float(np.median(prior.borrowed_discrepancy()["kappa"][:, 0])),
                    "borrowed_tails": prior.discrepancy_tails}
            ours = bayes_scored(split, prior, s.model, s.sampler, random_seed=s.random_seed + 100 * i + k)
            others_donors = {f: p for f, p in donors.items() if f != fam}
            for row in [ours, *point_baselines(split, others_donors, s.huber_grid_stride, s.last_fraction)]:
                rows.append({**task, **row})
            log(f"[{dataset}] {fam} k={k}: ARE ours {ours['are']:.2%} (90% covers {ours['cover90']:.0%}, "
                f"{ours['seconds']:.1f} s) | " + ", ".join(
                    f"{r['method']} {r['are']:.2%}" for r in rows[-4:]))
        if on_family is not None:
            on_family(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, k and method: median and mean ARE, mean 50%/90% coverage, tasks."""
    g = results.groupby(["dataset", "k", "method"], sort=False)
    tab = g.agg(tasks=("are", "size"), median_are=("are", "median"), mean_are=("are", "mean"),
                cover50=("cover50", "mean"), cover90=("cover90", "mean"), width90=("width90", "median"))
    return tab.reset_index()


def calibration_table(results: pd.DataFrame, level: float = 0.9, method: str = "bayes_borrowed") -> pd.DataFrame:
    """Interval coverage of one method pooled over datasets, per k and over all k.

    Each task's coverage is the share of its target points inside the central ``level`` interval. With
    a handful of tasks per dataset, 100% coverage is what a calibrated method shows half the time; the
    pooled table says whether the coverage is outside what calibration allows: ``calibrated_range`` is
    the central 90% range of the mean coverage of this many tasks if each task's target fell inside
    with probability ``level`` (binomial, one draw per task). ``median_log_bias`` is the median signed
    log error (> 0: predicted too high).
    """
    from scipy.stats import binom

    col = f"cover{round(level * 100)}"
    rows = results[results["method"] == method]
    out = []
    for k, grp in [*rows.groupby("k"), ("all", rows)]:
        n = len(grp)
        lo, hi = binom.ppf([0.05, 0.95], n, level) / n
        out.append({"k": k, "tasks": n, "datasets": grp["dataset"].nunique(), "coverage": grp[col].mean(),
                    "all_inside": float((grp[col] == 1).mean()), "calibrated_range": (float(lo), float(hi)),
                    "median_are": grp["are"].median(),
                    "median_log_bias": grp["log_bias"].median() if "log_bias" in grp else np.nan})
    return pd.DataFrame(out)


def paired_table(results: pd.DataFrame, method: str = "bayes_borrowed") -> pd.DataFrame:
    """``method`` against each baseline on the same tasks (dataset, held-out family, k), per k and over all k.

    A median ARE over 4-6 tasks per dataset turns on one or two tasks; this pairs the tasks instead. Per
    baseline: ``tasks`` scored by both, ``wins`` (``method``'s ARE lower) and ``losses``, the two-sided
    sign-test p-value of wins against losses (ties left out), the median per-task log ratio of the two
    AREs (< 0: ``method`` closer to the target; a ratio is robust to the baselines' degenerate fits, whose
    ARE can run to 10^18 %), and each one's median ARE over these tasks. Raises ValueError when a task is
    scored twice for one method (two runs of one dataset pooled).
    """
    from scipy.stats import binomtest

    key = ["dataset", "family", "k"]
    twice = results.duplicated(key + ["method"])
    if twice.any():
        first = ", ".join(str(v) for v in results.loc[twice, key + ["method"]].iloc[0])
        raise ValueError(f"{int(twice.sum())} tasks are scored twice for one method (first: {first}); pass one run "
                         "of each dataset")
    ours = results[results["method"] == method].set_index(key)["are"]
    out = []
    for base in [m for m in results["method"].unique() if m != method]:
        theirs = results[results["method"] == base].set_index(key)["are"]
        pair = pd.concat({"ours": ours, "theirs": theirs}, axis=1, join="inner").reset_index()
        for k, grp in [*pair.groupby("k"), ("all", pair)]:
            wins, losses = int((grp["ours"] < grp["theirs"]).sum()), int((grp["ours"] > grp["theirs"]).sum())
            p = binomtest(wins, wins + losses).pvalue if wins + losses else np.nan
            ratio = np.log(grp["ours"] / grp["theirs"])
            out.append({"baseline": base, "k": k, "tasks": len(grp), "wins": wins, "losses": losses,
                        "sign_test_p": float(p), "median_log_ratio": float(np.median(ratio)),
                        "median_are": float(grp["ours"].median()),
                        "baseline_median_are": float(grp["theirs"].median())})
    return pd.DataFrame(out)
