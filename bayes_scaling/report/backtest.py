"""A backtest's report: the summary per direction and method, the calibration plot, every task."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import figures
from .document import Document, Figure, Section, Table, Text


def summary_table(result: Any) -> pd.DataFrame:
    """The summary formatted for people: percentages, distances in decades (the CLI's table and the report's)."""
    s = result.summary()
    if s.empty:
        return s
    return pd.DataFrame({
        "direction": s["direction"], "method": s["method"], "tasks": s["tasks"], "points": s["points"],
        "max distance (decades)": s["max_distance"].map(lambda v: f"{v:.2f}"),
        "mean ARE": s["are"].map(lambda v: f"{100 * v:.2f}%"),
        "50% coverage": s["cover50"].map(lambda v: f"{100 * v:.0f}%"),
        "90% coverage": s["cover90"].map(lambda v: f"{100 * v:.0f}%"),
        "median 90% width": s["width90"].map(lambda v: f"{100 * v:.1f}%"),
        "mean log bias": s["log_bias"].map(lambda v: f"{v:+.4f}")}).reset_index(drop=True)


def backtest_document(result: Any, source: str = "") -> Document:
    """The sections of a :class:`~bayes_scaling.evaluate.backtest.BacktestResult`."""
    from .._version import __version__

    s = summary_table(result)
    subtitle = f"bayes_scaling {__version__}" + (f", {source}" if source else "")
    intro = Text(
        "Each split holds out, in every family, the runs at its largest levels of one direction (compute budgets, "
        "model sizes or tokens per parameter; depth k: the k largest), fits the rest, and scores the last "
        f"{result.settings.last_fraction:.0%} of each held-out run. ARE: mean absolute relative error of the median; "
        "coverage: share of held-out points inside the central 50% and 90% one-run intervals (calibrated: about "
        "50% and 90%); width: the 90% interval relative to the median; distance: how far (decades, the largest "
        "direction) the targets lie from the data kept. Point fits quote a log-normal interval with the robust sd "
        "of their training residuals.")
    head = Section("Backtest: how this zoo's forecasts held up", [intro])
    if s.empty:
        head.blocks.append(Text("Nothing could be held out: no family has two levels of compute, size or tokens "
                                "per parameter.", "warn"))
        return Document(title="Backtest report", subtitle=subtitle, sections=[head])
    head.blocks.append(Table(s, caption="Summary per direction and method."))
    directions = [d for d in result.settings.directions if d in set(result.points["direction"])]
    head.blocks.append(Figure(figures.pit_curves(result.points, result.methods, directions), "backtest_pit",
                              "Calibration: the share of held-out points below each quantile of their predictive. "
                              "On the diagonal: calibrated; flatter than it in the middle: intervals too narrow; "
                              "steeper: too wide; above or below it throughout: biased."))
    tasks = result.tasks.drop(columns=[c for c in ("problems",) if c in result.tasks]).round(4)
    return Document(title="Backtest report", subtitle=subtitle, sections=[
        head, Section("Every task", [Table(pd.DataFrame(tasks), caption="One row per split x family x method.")])])
