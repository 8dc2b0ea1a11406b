"""Backtest a zoo before trusting its forecasts: nested hold-outs in every direction, ours beside point fits.

:func:`backtest` holds out, in each direction users extrapolate and at several depths, the runs at each
family's largest levels (:func:`bayes_scaling.inference.extrapolation.holdout_splits`: the largest 1, 2, ...
compute budgets, model sizes, or tokens-per-parameter multipliers), fits the rest, and scores the
held-out runs' last ``last_fraction`` of training (the Hitchhiker's target points) side by side:

``bayes``
    ours: :func:`bayes_scaling.fit` on the rows kept (its own nested leave-out included), the one-run
    posterior predictive of each held-out point.
``huber``
    per family, all five Chinchilla parameters by Huber loss on log loss from a grid of starts with
    L-BFGS (Hoffmann et al.; the Epoch refit).
``fixed_n_term``
    per family, the guide's fit with Muennighoff's N-term fixed.
``varpro``
    per family, variable projection: a grid over the exponents, E, A, B by non-negative least squares.
``bayes_normal_tails`` (with ``compare_tails=True``)
    ours with the same fits, the discrepancy's tails set to normal: beside a model that chooses them
    (``ModelConfig(discrepancy_tails="choose")``, :func:`bayes_scaling.inference.extrapolation.choose_tails`),
    what the chosen tails change.
``bayes_pooled`` / ``bayes_unpooled`` (with ``compare_pooling=True``)
    ours with the same fits, the discrepancy learned again from the same calibration fits' held-out runs with
    the other pooling (``ModelConfig(discrepancy_pooling=...)``: a scale per direction, or one the directions
    share, :func:`bayes_scaling.inference.extrapolation.relearned`): what sharing the scale changes.
``bayes_loss_scale`` / ``bayes_reducible_scale`` (with ``compare_scale=True``)
    ours with the same fits, the discrepancy learned again from the same calibration fits' held-out runs as a
    relative error of the other quantity (``ModelConfig(discrepancy_scale=...)``: the whole loss, or the
    reducible loss above E): what the scale it is measured on changes.

A point fit gets the interval a hand-fitter would quote: log-normal with the robust sd of its training
residuals. Scores per task (split x family x method): ARE, signed log bias, 50% and 90% coverage, the
90% interval's width relative to the median, and the distance of the targets from the kept data in each
direction; the PIT of every target point (where in its predictive the truth fell) for a calibration plot.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..data import ScalingData
from ..data.extent import DIRECTIONS, distance_columns, distances
from ..errors import SamplingWarning
from ..inference import fit as fit_law
from ..inference.config import SamplerConfig
from ..inference.extrapolation import holdout_splits, relearned
from ..model.config import DEFAULT_DEPTHS, ModelConfig
from ..predict import discrepancy_arrays, sample_count
from .baselines import fixed_n_term_fit, huber_fit, log_residual_scale, predict_natural, variable_projection_fit
from .protocol import TARGET_LAST_FRACTION, draw_bands, last_fraction_mask, lognormal_bands, score

#: the point-fit baselines, each a function of (params, tokens, loss) -> natural Chinchilla parameters
POINT_FITS: dict[str, Callable[..., dict[str, float]]] = {
    "huber": lambda n, d, y: huber_fit(n, d, y, grid_stride=5),
    "fixed_n_term": fixed_n_term_fit,
    "varpro": variable_projection_fit,
}
METHODS = ("bayes", "bayes_normal_tails", "bayes_pooled", "bayes_unpooled", "bayes_loss_scale", "bayes_reducible_scale",
           *POINT_FITS)


@dataclass
class BacktestSettings:
    """What one backtest does; recorded with its results."""

    directions: tuple[str, ...] = DIRECTIONS
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    last_fraction: float = TARGET_LAST_FRACTION
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    #: the Hitchhiker's filters of each fit's training rows (``fit``'s ``min_tokens`` and ``fraction``)
    filters: dict[str, float | None] = field(default_factory=lambda: {"min_tokens": None, "fraction": None})
    #: also score each fit with its discrepancy's tails set to normal (method ``bayes_normal_tails``)
    compare_tails: bool = False
    #: also score each fit with its discrepancy learned again with the other pooling (``bayes_pooled`` or
    #: ``bayes_unpooled``)
    compare_pooling: bool = False
    #: also score each fit with its discrepancy learned again on the other scale (``bayes_loss_scale`` or
    #: ``bayes_reducible_scale``)
    compare_scale: bool = False

    def __post_init__(self) -> None:
        self.model, self.sampler = ModelConfig.coerce(self.model), SamplerConfig.coerce(self.sampler)
        unknown = sorted(set(self.directions) - set(DIRECTIONS))
        if unknown or not self.directions:
            raise ValueError(f"backtest directions must be among {list(DIRECTIONS)}, got {list(self.directions)}")
        if not self.depths or any(int(k) < 1 for k in self.depths):
            raise ValueError(f"backtest depths must be positive integers (1: each family's largest level), "
                             f"got {list(self.depths)}")
        if not 0 < self.last_fraction <= 1:
            raise ValueError(f"last_fraction must be in (0, 1], got {self.last_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return {"directions": list(self.directions), "depths": list(self.depths), "last_fraction": self.last_fraction,
                "model": self.model.to_dict(), "sampler": self.sampler.to_dict(), "filters": dict(self.filters),
                "compare_tails": self.compare_tails, "compare_pooling": self.compare_pooling,
                "compare_scale": self.compare_scale}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> "BacktestSettings":
        """Read :meth:`to_dict` (the settings stored with a result)."""
        return cls(tuple(stored["directions"]), tuple(stored["depths"]), stored["last_fraction"],
                   ModelConfig.from_dict(stored["model"]), SamplerConfig.from_dict(stored["sampler"]),
                   stored["filters"], stored.get("compare_tails", False), stored.get("compare_pooling", False),
                   stored.get("compare_scale", False))


@dataclass
class BacktestResult:
    """The scores of a backtest: ``tasks`` (one row per split x family x method) and ``points`` (one row
    per target point and method, with its PIT)."""

    tasks: pd.DataFrame
    points: pd.DataFrame
    settings: BacktestSettings

    def summary(self) -> pd.DataFrame:
        """Per direction and method: mean ARE over tasks, 50% / 90% coverage over points, median 90% width
        (relative to the median), the largest distance of a target from the kept data, and the counts."""
        if self.tasks.empty:
            return pd.DataFrame()
        pts = self.points.assign(in50=lambda f: (f["pit"] >= 0.25) & (f["pit"] <= 0.75),
                                 in90=lambda f: (f["pit"] >= 0.05) & (f["pit"] <= 0.95))
        cov = pts.groupby(["direction", "method"]).agg(cover50=("in50", "mean"), cover90=("in90", "mean"),
                                                       points=("pit", "size"))
        t = self.tasks.groupby(["direction", "method"]).agg(
            are=("are", "mean"), median_are=("are", "median"), width90=("width90", "median"),
            log_bias=("log_bias", "mean"), tasks=("are", "size"), max_distance=("distance", "max"))
        out = t.join(cov).reset_index()
        order = {m: i for i, m in enumerate(METHODS)}
        return out.sort_values(["direction", "method"], key=lambda s: s.map(order) if s.name == "method" else s)

    @property
    def methods(self) -> list[str]:
        """The methods scored, ours first."""
        present = set(self.tasks["method"]) if not self.tasks.empty else set()
        return [m for m in METHODS if m in present]

    def write_report(self, out_dir: str | os.PathLike, formats: Sequence[str] = ("html",), source: str = "") -> Path:
        """Write the backtest's report (``report.html`` and/or ``report.md``) into ``out_dir``."""
        from ..report.backtest import backtest_document
        from ..report.writer import write_document

        return write_document(backtest_document(self, source), out_dir, formats)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(),
                "summary": self.summary().to_dict(orient="records"), "tasks": self.tasks.to_dict(orient="records")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=float)


def backtest(data: ScalingData, *, directions: Sequence[str] = DIRECTIONS, depths: Sequence[int] = DEFAULT_DEPTHS,
             last_fraction: float = TARGET_LAST_FRACTION, model: ModelConfig | dict | str | None = None,
             sampler: SamplerConfig | dict | None = None, min_tokens: float | None = None,
             fraction: float | None = None, progress: Callable[[str], None] | None = None,
             compare_tails: bool = False, compare_pooling: bool = False,
             compare_scale: bool = False) -> BacktestResult:
    """Nested hold-outs of ``data`` in each of ``directions`` at each of ``depths`` (see the module docstring).

    ``model`` and ``sampler`` configure every :func:`bayes_scaling.fit`, as they do ``fit`` itself (the
    sampler's ``random_seed`` also seeds the predictive draws), and ``min_tokens`` and ``fraction`` filter
    each fit's training rows as in ``fit``; ``progress`` is called with one line per split; ``compare_tails`` adds
    the method ``bayes_normal_tails`` (the same fits with normal discrepancy tails) and ``compare_pooling`` the
    method ``bayes_pooled`` or ``bayes_unpooled`` (the same fits, the discrepancy learned with the other pooling
    of its scale across directions) and ``compare_scale`` the method ``bayes_loss_scale`` or
    ``bayes_reducible_scale`` (the same fits, the discrepancy learned again as a relative error of the other
    quantity: the whole loss, or the reducible loss). ``data`` may be a
    :class:`ScalingData` or a DataFrame with the canonical columns.
    """
    from ..inference.fit import as_scaling_data

    settings = BacktestSettings(tuple(directions), tuple(int(k) for k in depths), last_fraction, model, sampler,
                                {"min_tokens": min_tokens, "fraction": fraction}, compare_tails, compare_pooling,
                                compare_scale)
    data = as_scaling_data(data)
    splits = holdout_splits(data, settings.depths, settings.directions)
    tasks, points = [], []
    for i, split in enumerate(splits):
        if progress:
            progress(f"[{i + 1}/{len(splits)}] {split.description}")
        t, p = _score_split(data, split, settings)
        tasks += t
        points += p
    return BacktestResult(pd.DataFrame(tasks), pd.DataFrame(points), settings)


def _score_split(data: ScalingData, split: Any, settings: BacktestSettings) -> tuple[list[dict], list[dict]]:
    train = data.subset(~split.held, name="backtest_train", reason=split.description)
    df = data.frame
    held = df[split.held]
    target = held[last_fraction_mask(held["tokens"], settings.last_fraction, held["run"])]
    target = target[target["family"].isin(train.families)]
    if target.empty:
        return [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        fitted = fit_law(train, settings.model, settings.sampler, **settings.filters)
    fit_seconds = time.perf_counter() - t0
    problems = "; ".join(sorted({str(w.message) for w in caught if issubclass(w.category, SamplingWarning)}))
    tasks, points = [], []
    base = {"direction": split.direction, "depth": split.depth}
    ours = {"bayes": fitted}
    if settings.compare_tails:
        ours["bayes_normal_tails"] = with_normal_tails(fitted)
    if settings.compare_pooling:
        pooled = settings.model.discrepancy_pooling != "directions"
        ours["bayes_pooled" if pooled else "bayes_unpooled"] = relearned_fit(fitted, settings.sampler.random_seed,
                                                                              pooled=pooled)
    if settings.compare_scale:
        on_loss = settings.model.discrepancy_scale != "loss"
        ours["bayes_loss_scale" if on_loss else "bayes_reducible_scale"] = relearned_fit(
            fitted, settings.sampler.random_seed, on_loss=on_loss)
    for fam, tgt in target.groupby("family", sort=False):
        cols = distance_columns(tgt)
        y = tgt["loss"].to_numpy(float)
        dist = distances(fitted.spec.extents, [fam] * len(tgt), cols)
        reach = float(np.abs(dist).max(axis=1).mean())
        d = fitted.diagnostics
        rows = {}
        for method, f in ours.items():
            pred = f.predict(fam, cols["params"], cols["tokens"], cols["flops"], keep_draws=True,
                             inputs={"unique_tokens": cols["unique_tokens"]} if "unique_tokens" in cols else None,
                             random_seed=settings.sampler.random_seed)
            with np.errstate(divide="ignore"):  # a heavy-tailed (Student-t) draw can underflow to 0: log -inf
                log_draws = np.log(pred["run_loss"].to_numpy())
            rows[method] = (draw_bands(log_draws), (log_draws <= np.log(y)[None, :]).mean(axis=0),
                            {"seconds": fit_seconds, "divergences": d.divergences, "max_rhat": d.max_rhat,
                             "problems": problems, "tails": f.extrapolation.get("tails")})
        fam_train = train.frame[train.frame["family"] == fam]
        n, dd, yy = (fam_train[c].to_numpy(float) for c in ("params", "tokens", "loss"))
        for method, fitter in POINT_FITS.items():
            t1 = time.perf_counter()
            nat = fitter(n, dd, yy)
            med = predict_natural(nat, cols["params"], cols["tokens"])
            sd = max(log_residual_scale(yy, predict_natural(nat, n, dd)), 1e-6)
            rows[method] = (lognormal_bands(med, sd), norm.cdf(np.log(y / med) / sd),
                            {"seconds": time.perf_counter() - t1})
        for method, (qq, pp, extra) in rows.items():
            tasks.append({**base, "family": fam, "method": method, "distance": reach, "train_runs":
                          int(fam_train["run"].nunique()), "target_runs": int(tgt["run"].nunique()),
                          **score(y, *qq), **extra})
            for j in range(len(y)):
                points.append({**base, "family": fam, "method": method, "run": tgt["run"].iloc[j], "loss": y[j],
                               "median": qq[0][j], "lower90": qq[3][j], "upper90": qq[4][j], "pit": pp[j],
                               **{f"distance_{k}": dist[j, i] for i, k in enumerate(DIRECTIONS)}})
    return tasks, points


def with_normal_tails(fitted: Any) -> Any:
    """``fitted`` with its extrapolation discrepancy's tails set to normal (the same variance and draws)."""
    post = fitted.idata.posterior
    disc = discrepancy_arrays(post, sample_count(post))
    return fitted.with_discrepancy({**disc, "tails": None}, {**fitted.extrapolation, "tails": None})


def relearned_fit(fitted: Any, random_seed: int | None, *, pooled: bool | None = None,
                  on_loss: bool | None = None) -> Any:
    """``fitted`` with its discrepancy learned again from the same calibration fits, with its scale shared by the
    directions or one per direction (``pooled``), as a relative error of the whole loss or of the reducible loss
    (``on_loss``); None keeps the fit's own choice."""
    ex = fitted.extrapolation
    draws, info = relearned(ex, fitted.spec.priors, sample_count(fitted.idata.posterior),
                            np.random.default_rng(random_seed),
                            pooled=ex.get("pooling") == "directions" if pooled is None else pooled,
                            choose="tails_scores" in ex, on_loss=on_loss)
    return fitted.with_discrepancy(draws, info)


def backtest_markdown(result: BacktestResult) -> str:
    """The summary as a Markdown table (the CLI's plain output)."""
    from ..report.backtest import summary_table
    from ..report.format import markdown_table

    shown = summary_table(result)
    if shown.empty:
        return "nothing could be held out: no family has two levels of compute, size or tokens per parameter"
    return markdown_table(list(shown.columns), shown.to_numpy().tolist())
