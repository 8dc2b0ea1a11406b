"""The validated container of downstream evaluations: task accuracy (and task loss) per checkpoint.

A :class:`TaskData` is built from a long DataFrame with one row per checkpoint and task::

    tasks = TaskData.from_frame(df, family="family", run="run", params="params", tokens="tokens",
                                task="task", accuracy="accuracy", chance="chance", task_loss="task_bpb")

``chance`` is the accuracy of random guessing on the task (0.25 for four answer choices); it is the floor
the accuracy link is bounded by, so it must be one value per task. ``task_loss`` (optional) is the task's
own loss (bits per byte of the correct answer, or the cross-entropy over the answer choices): with it the
forecast goes through two steps, (N, D) -> task loss -> accuracy; without it the first step is a latent
law fitted from the accuracies alone.

Every problem raises a specific exception naming the column as the caller gave it; nothing is dropped
silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataValidationError, DuplicateRowError, EmptyFamilyError, MissingColumnError
from ..laws.flops import training_flops
from .container import _numeric, check_finite_positive, key_column
from .filters import share_of_run, thinned

#: canonical columns of the container's frame (``task_loss`` may be all NaN: not given)
TASK_COLUMNS = ("family", "run", "task", "params", "tokens", "flops", "accuracy", "chance", "task_loss")


@dataclass(frozen=True)
class TaskData:
    """Validated downstream evaluations; ``frame`` has :data:`TASK_COLUMNS`, sorted by family, task, run, tokens.

    ``columns`` maps each role to the caller's column name (for messages and the fit file).
    """

    frame: pd.DataFrame
    columns: dict
    source: str = ""

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, family: str | None, run: str, params: str, tokens: str, task: str,
                   accuracy: str, chance: str, task_loss: str | None = None, default_family: str = "all",
                   source: str = "") -> "TaskData":
        """Build and validate the container from ``df`` by naming its columns (``family=None``: one family)."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"TaskData.from_frame needs a pandas DataFrame, got {type(df).__name__}")
        named = {"family": family, "run": run, "params": params, "tokens": tokens, "task": task,
                 "accuracy": accuracy, "chance": chance, "task_loss": task_loss}
        missing = [f"{role}={col!r}" for role, col in named.items() if col is not None and col not in df.columns]
        if missing:
            raise MissingColumnError(
                f"column(s) not found: {', '.join(missing)}. The frame has columns {list(map(str, df.columns))}. "
                "Pass the right names, e.g. fit_downstream(df, family=..., run=..., params=..., tokens=..., "
                "task=..., accuracy=..., chance=...).")
        if len(df) == 0:
            raise EmptyFamilyError("the data has no rows; pass a non-empty DataFrame")
        out = pd.DataFrame(index=pd.RangeIndex(len(df)))
        out["family"] = (key_column(df[family], "family", family) if family is not None
                         else np.full(len(df), default_family, dtype=object))
        out["run"] = key_column(df[run], "run", run)
        out["task"] = key_column(df[task], "task", task)
        for role in ("params", "tokens", "accuracy", "chance"):
            out[role] = _numeric(df[named[role]], role, named[role])
        out["flops"] = training_flops(out["params"], out["tokens"])
        out["task_loss"] = _numeric(df[task_loss], "task_loss", task_loss) if task_loss is not None else np.nan
        cols = {role: col for role, col in named.items() if col is not None}
        data = cls(frame=out[list(TASK_COLUMNS)], columns=cols, source=source)
        return data.validated()

    def validated(self) -> "TaskData":
        """Run every check; return a copy with a sorted, clean frame."""
        df, col = self.frame, self.columns
        renamed = df.rename(columns={r: c for r, c in col.items() if r in df.columns})
        check_finite_positive(renamed, [col["params"], col["tokens"]])
        finite = ["accuracy", "chance"] + (["task_loss"] if self.has_task_loss else [])
        for role in finite:
            v = df[role].to_numpy(dtype=float)
            bad = ~np.isfinite(v)
            if bad.any():
                raise DataValidationError(
                    f"column {col[role]!r} ({role}) has {int(bad.sum())} blank, NaN or infinite value(s), rows "
                    f"{np.flatnonzero(bad)[:5].tolist()}. Drop or repair those rows first; nothing is dropped "
                    "silently.")
        for role, lo, hi, what in (("accuracy", 0.0, 1.0, "a share of questions answered right, in [0, 1]"),
                                   ("chance", 0.0, 1.0, "the accuracy of random guessing, in [0, 1)")):
            v = df[role].to_numpy(dtype=float)
            bad = (v < lo) | (v > hi) | ((v == hi) if role == "chance" else False)
            if bad.any():
                raise DataValidationError(
                    f"column {col[role]!r} ({role}) has {int(bad.sum())} value(s) outside its range, e.g. "
                    f"{float(v[bad][0]):g} (rows {np.flatnonzero(bad)[:5].tolist()}): it must be {what}. "
                    "Percentages must be divided by 100 first.")
        if self.has_task_loss and (df["task_loss"] <= 0).any():
            rows = np.flatnonzero(df["task_loss"].to_numpy() <= 0)[:5].tolist()
            raise DataValidationError(
                f"column {col['task_loss']!r} (task loss) has zero or negative values, rows {rows}: a task loss is "
                "a positive cross-entropy (bits per byte, or nats over the answer choices).")
        per_task = df.groupby("task")["chance"].agg(["min", "max"])
        varies = per_task[per_task["max"] - per_task["min"] > 1e-9]
        if len(varies):
            t = varies.index[0]
            raise DataValidationError(
                f"column {col['chance']!r} (chance accuracy) differs within task {t!r} "
                f"({varies.loc[t, 'min']:g} to {varies.loc[t, 'max']:g}): a task has one chance accuracy. If these "
                f"are different tasks, give them different names in column {col['task']!r}.")
        fam = df.groupby("run")["family"].nunique()
        if (fam > 1).any():
            raise DuplicateRowError(f"run {fam.index[fam > 1][0]!r} appears in more than one family; a run id must "
                                    "belong to one family (prefix run ids with the family).")
        size = df.groupby("run")["params"].nunique()
        if (size > 1).any():
            raise DuplicateRowError(f"run {size.index[size > 1][0]!r} has more than one parameter count; a run trains "
                                    f"one model. Pass a column in {col['run']!r} that tells the runs apart.")
        dup = df.duplicated(subset=["run", "task", "tokens"], keep=False)
        if dup.any():
            ex = df.loc[dup, ["run", "task", "tokens"]].head(3).to_dict("records")
            raise DuplicateRowError(
                f"{int(dup.sum())} rows share a (run, task, tokens) triple, e.g. {ex}. Each task is evaluated once "
                "per checkpoint: split tasks evaluated on several splits into separate task names (e.g. "
                "'arc_easy/test'), or average repeated evaluations first.")
        clean = df.sort_values(["family", "task", "run", "tokens"], kind="mergesort").reset_index(drop=True)
        return TaskData(frame=clean, columns=dict(col), source=self.source)

    # ------------------------------------------------------------------ views
    @property
    def has_task_loss(self) -> bool:
        return "task_loss" in self.columns

    @property
    def tasks(self) -> list[str]:
        return sorted(self.frame["task"].unique().tolist())

    @property
    def families(self) -> list[str]:
        return sorted(self.frame["family"].unique().tolist())

    @property
    def chance(self) -> dict[str, float]:
        return {t: float(c) for t, c in self.frame.groupby("task")["chance"].first().items()}

    def _share_of_run(self) -> np.ndarray:
        """Each row's tokens as a share of its run's final tokens (per task)."""
        return share_of_run(self.frame, by=("run", "task"))

    def link_rows(self, burn: float, max_checkpoints: int | None = None) -> pd.DataFrame:
        """Rows the accuracy link is fitted on: every checkpoint past the first ``burn`` share of its run's
        tokens (early checkpoints, mid warm-up, are not the law's regime); with ``max_checkpoints``, at most
        that many of each run and task, evenly spread in log tokens (:func:`~.filters.thin_checkpoints`)."""
        rows = self.frame[self._share_of_run() >= burn].reset_index(drop=True)
        if max_checkpoints is None:
            return rows
        return rows[thinned(rows, max_checkpoints, ("run", "task"))].reset_index(drop=True)

    def law_rows(self, tail: float) -> pd.DataFrame:
        """Rows the task-loss law is fitted on: each run's checkpoints within its last ``tail`` share of
        tokens. A run trained with a decaying learning rate has finished only at its end; its mid-run
        checkpoints are not the loss of a shorter finished run, so only the tail stands for the run."""
        return self.frame[self._share_of_run() >= 1.0 - tail].reset_index(drop=True)

    def describe(self) -> pd.DataFrame:
        """One row per family and task: runs, sizes, token range, rows, accuracy range."""
        g = self.frame.groupby(["family", "task"])
        return g.agg(runs=("run", "nunique"), sizes=("params", "nunique"), max_params=("params", "max"),
                     max_tokens=("tokens", "max"), rows=("accuracy", "size"), chance=("chance", "first"),
                     min_accuracy=("accuracy", "min"), max_accuracy=("accuracy", "max")).reset_index()
