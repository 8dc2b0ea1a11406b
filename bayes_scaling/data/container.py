"""The validated container of scaling observations.

A :class:`ScalingData` is built from any pandas DataFrame by naming its columns::

    data = ScalingData.from_frame(df, family="data", params="params",
                                  tokens="tokens", loss="val_loss", run="id")

Each row is one observation of a training run: the loss at ``tokens`` training tokens of a
model with ``params`` parameters. A *run* is one training run (one seed); several rows of a
run are its checkpoints. Without a run column, each (family, params[, seed]) is one run.

Validation is strict and every problem raises a specific exception
(:mod:`bayes_scaling.errors`) that says what to do. Nothing is dropped silently: filters
(:mod:`bayes_scaling.data.filters`) record every removed row in :attr:`ScalingData.dropped`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import (
    DataValidationError,
    DuplicateRowError,
    EmptyFamilyError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositiveValueError,
    PerplexityLikeLossError,
    SeedSpreadWarning,
)

#: canonical column names of the container's frame
COLUMNS = ("family", "run", "seed", "params", "tokens", "flops", "loss")

#: a cross-entropy in nats above this median looks like a perplexity
#: (uniform guessing over a 160k-token vocabulary gives ln(160000) = 12.0 nats)
PERPLEXITY_MEDIAN_THRESHOLD = 12.0


@dataclass(frozen=True)
class DropRecord:
    """Rows removed by one filter: which filter, how many rows and runs, and why."""

    filter: str
    rows: int
    runs_emptied: int
    reason: str

    def to_dict(self) -> dict:
        return {"filter": self.filter, "rows": self.rows, "runs_emptied": self.runs_emptied,
                "reason": self.reason}


@dataclass(frozen=True)
class ScalingData:
    """Validated scaling observations in canonical columns.

    ``frame`` has the columns ``family, run, seed, params, tokens, flops, loss`` (strings for
    the first three, floats for the rest), sorted by family, run and tokens.
    ``dropped`` lists the rows that filters removed, in the order they were applied.
    ``source`` is a free-text provenance note (file, citation).
    """

    frame: pd.DataFrame
    dropped: tuple[DropRecord, ...] = field(default_factory=tuple)
    source: str = ""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        family: str | None = "family",
        params: str = "params",
        tokens: str = "tokens",
        loss: str = "loss",
        run: str | None = None,
        seed: str | None = None,
        flops: str | None = None,
        loss_kind: str = "nats",
        default_family: str = "all",
        source: str = "",
    ) -> "ScalingData":
        """Build and validate the container from ``df`` by naming its columns.

        Parameters
        ----------
        family, params, tokens, loss:
            Column names. ``family=None`` puts every row in one family ``default_family``.
        run:
            Column identifying one training run (optional). Default: one run per
            (family, params) — or per (family, params, seed) when ``seed`` is given.
        seed:
            Column with the random seed of the run (optional, kept as metadata and used
            to tell runs apart when ``run`` is not given).
        flops:
            Column with training FLOPs (optional; default ``6 * params * tokens``).
        loss_kind:
            ``"nats"`` (cross-entropy, the default) or ``"perplexity"`` (converted with log).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"ScalingData.from_frame needs a pandas DataFrame, got {type(df).__name__}")
        named = {"family": family, "params": params, "tokens": tokens, "loss": loss,
                 "run": run, "seed": seed, "flops": flops}
        missing = [f"{role}={col!r}" for role, col in named.items()
                   if col is not None and col not in df.columns]
        if missing:
            raise MissingColumnError(
                f"column(s) not found: {', '.join(missing)}. The frame has columns "
                f"{list(map(str, df.columns))}. Pass the right names, e.g. "
                f"ScalingData.from_frame(df, family=..., params=..., tokens=..., loss=...)."
            )
        if loss_kind not in ("nats", "perplexity"):
            raise ValueError(f"loss_kind must be 'nats' or 'perplexity', got {loss_kind!r}")

        out = pd.DataFrame(index=pd.RangeIndex(len(df)))
        out["family"] = (df[family].astype(str).to_numpy() if family is not None
                         else np.full(len(df), default_family, dtype=object))
        for role, col in (("params", params), ("tokens", tokens), ("loss", loss)):
            out[role] = _numeric(df[col], role, col)
        if flops is not None:
            out["flops"] = _numeric(df[flops], "flops", flops)
        else:
            out["flops"] = 6.0 * out["params"] * out["tokens"]
        out["seed"] = df[seed].astype(str).to_numpy() if seed is not None else ""
        if loss_kind == "perplexity":
            _check_positive(out, ["loss"])
            out["loss"] = np.log(out["loss"])
        if run is not None:
            out["run"] = df[run].astype(str).to_numpy()
        else:
            size = out["params"].map(lambda n: f"{n:.6g}")
            out["run"] = out["family"] + "/N=" + size
            if seed is not None:
                out["run"] = out["run"] + "/seed=" + out["seed"]
        data = cls(frame=out[list(COLUMNS)], source=source)
        return data.validated(loss_kind=loss_kind)

    def validated(self, *, loss_kind: str = "nats") -> "ScalingData":
        """Run every check; return a copy with a sorted, clean frame."""
        df = self.frame
        if len(df) == 0:
            raise EmptyFamilyError("the data has no rows; pass a non-empty DataFrame")
        check_finite_positive(df, ["params", "tokens", "flops", "loss"])
        if loss_kind == "nats":
            med = float(np.median(df["loss"]))
            if med > PERPLEXITY_MEDIAN_THRESHOLD:
                raise PerplexityLikeLossError(
                    f"the loss column has median {med:.3g}, which looks like a perplexity rather than "
                    f"a cross-entropy in nats (a loss above {PERPLEXITY_MEDIAN_THRESHOLD} nats is worse than "
                    "uniform guessing over 160k tokens). If it is a perplexity, pass loss_kind='perplexity' "
                    "(it is converted with log); if it is really nats, convert it to a per-token loss."
                )
        for col in ("family", "run"):
            if (df[col].astype(str).str.len() == 0).any():
                raise DataValidationError(f"column {col!r} has empty names; give every row a non-empty {col}")
        fam_per_run = df.groupby("run")["family"].nunique()
        if (fam_per_run > 1).any():
            run = fam_per_run.index[fam_per_run > 1][0]
            raise DuplicateRowError(
                f"run {run!r} appears in more than one family; a run id must belong to one family. "
                "Make run ids unique (e.g. prefix them with the family)."
            )
        n_per_run = df.groupby("run")["params"].nunique()
        if (n_per_run > 1).any():
            run = n_per_run.index[n_per_run > 1][0]
            raise DuplicateRowError(
                f"run {run!r} has more than one parameter count; a run trains one model. "
                "Pass a run column that tells the runs apart."
            )
        dup = df.duplicated(subset=["run", "tokens"], keep=False)
        if dup.any():
            ex = df.loc[dup, ["family", "run", "tokens"]].head(4).to_dict("records")
            raise DuplicateRowError(
                f"{int(dup.sum())} rows share a (run, tokens) pair, e.g. {ex}. Each checkpoint of a run must "
                "appear once: pass run=/seed= columns that tell repeated runs apart, or average the "
                "duplicated evaluations yourself."
            )
        _warn_on_implausible_seed_spread(df)
        clean = df.sort_values(["family", "run", "tokens"], kind="mergesort").reset_index(drop=True)
        return ScalingData(frame=clean, dropped=self.dropped, source=self.source)

    # ------------------------------------------------------------------ views
    @property
    def families(self) -> list[str]:
        return sorted(self.frame["family"].unique().tolist())

    @property
    def runs(self) -> list[str]:
        """Run ids ordered by family then run id (the order of the model's ``run`` dim)."""
        r = self.frame[["family", "run"]].drop_duplicates().sort_values(["family", "run"])
        return r["run"].tolist()

    @property
    def has_checkpoint_curves(self) -> bool:
        """True when some run has two or more checkpoints (rows); False for final-loss data."""
        return bool(self.frame["run"].duplicated().any())

    def run_table(self) -> pd.DataFrame:
        """One row per run: family, seed, params, first/last tokens, checkpoints, final loss."""
        g = self.frame.groupby("run", sort=False)
        tab = g.agg(family=("family", "first"), seed=("seed", "first"), params=("params", "first"),
                    min_tokens=("tokens", "min"), max_tokens=("tokens", "max"),
                    max_flops=("flops", "max"), checkpoints=("loss", "size"), final_loss=("loss", "last"))
        return tab.loc[self.runs]

    def overview(self) -> pd.DataFrame:
        """One row per family: runs, sizes, token range, rows."""
        g = self.frame.groupby("family")
        return g.agg(runs=("run", "nunique"), sizes=("params", "nunique"), min_params=("params", "min"),
                     max_params=("params", "max"), min_tokens=("tokens", "min"),
                     max_tokens=("tokens", "max"), rows=("loss", "size"))

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: np.ndarray | pd.Series, *, name: str, reason: str,
               drops_families: bool = False) -> "ScalingData":
        """Keep rows where ``mask`` is true; record the rest as dropped by filter ``name``.

        Raises :class:`EmptyFamilyError` if a family loses all of its rows (unless ``drops_families``,
        for a deliberate selection of families).
        """
        mask = np.asarray(mask, dtype=bool)
        df = self.frame
        kept = df.loc[mask]
        emptied = sorted(set(df["family"]) - set(kept["family"]))
        if emptied and not drops_families:
            raise EmptyFamilyError(
                f"filter {name!r} ({reason}) removes every row of famil{'y' if len(emptied) == 1 else 'ies'} "
                f"{emptied}. Loosen the filter, or drop those families explicitly with "
                "data.select_families(...) before filtering."
            )
        runs_emptied = int(df["run"].nunique() - kept["run"].nunique())
        rec = DropRecord(filter=name, rows=int((~mask).sum()), runs_emptied=runs_emptied, reason=reason)
        return ScalingData(frame=kept.reset_index(drop=True), dropped=self.dropped + (rec,),
                           source=self.source)

    @classmethod
    def concat(cls, parts: "list[ScalingData]", source: str = "") -> "ScalingData":
        """Stack datasets whose families are distinct (e.g. OPT, OLMo and T5 into one zoo).

        Raises :class:`DuplicateRowError` when two parts share a family name; drop records are kept.
        """
        from ..errors import DuplicateRowError

        seen: dict[str, int] = {}
        for i, part in enumerate(parts):
            for fam in part.families:
                if fam in seen:
                    raise DuplicateRowError(f"family {fam!r} occurs in parts {seen[fam]} and {i}; rename one "
                                            "(each part must bring its own families)")
                seen[fam] = i
        frame = pd.concat([p.frame for p in parts], ignore_index=True)
        data = cls.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss", run="run",
                              seed="seed", flops="flops", source=source or " + ".join(p.source for p in parts))
        return replace(data, dropped=tuple(r for p in parts for r in p.dropped))

    def select_families(self, families: list[str]) -> "ScalingData":
        """Keep only the named families (recorded as a drop, like any filter)."""
        from ..errors import UnknownFamilyError

        unknown = sorted(set(families) - set(self.families))
        if unknown:
            raise UnknownFamilyError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                                     f"the data has {self.families}")
        keep = self.frame["family"].isin(families).to_numpy()
        return self.subset(keep, name="select_families", reason=f"kept families {sorted(families)}",
                           drops_families=True)


def _numeric(series: pd.Series, role: str, col: str) -> np.ndarray:
    try:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise NonFiniteValueError(
            f"column {col!r} (used as {role}) is not numeric: {exc}. Convert it first, e.g. "
            "'1.3B' -> 1.3e9 with bayes_scaling.data.parse_size."
        ) from None


def check_finite_positive(df: pd.DataFrame, cols: list[str]) -> None:
    """Raise on a NaN, infinite, zero or negative value in any of ``cols`` (nothing is dropped silently)."""
    for col in cols:
        bad = ~np.isfinite(df[col].to_numpy(dtype=float))
        if bad.any():
            rows = df.index[bad][:5].tolist()
            raise NonFiniteValueError(
                f"column {col!r} has {int(bad.sum())} NaN or infinite value(s) (rows {rows}...). "
                "Drop or repair those rows first; nothing is dropped silently."
            )
    _check_positive(df, cols)


def _check_positive(df: pd.DataFrame, cols: list[str]) -> None:
    for col in cols:
        bad = df[col].to_numpy(dtype=float) <= 0
        if bad.any():
            rows = df.index[bad][:5].tolist()
            raise NonPositiveValueError(
                f"column {col!r} has {int(bad.sum())} zero or negative value(s) (rows {rows}...). "
                f"Scaling laws need positive {col}; remove or fix those rows (e.g. step-0 checkpoints)."
            )


#: repeated runs whose losses differ by more than this in log loss (~22%) are not seed noise
SEED_SPREAD_LIMIT = 0.2


def _warn_on_implausible_seed_spread(df: pd.DataFrame) -> None:
    """Warn when runs of the same (family, N) at the same tokens differ by far more than seed noise.

    Seed-to-seed differences of language-model loss are a few percent (the Hitchhiker's guide: ~4% at
    most). Repeated runs a factor apart are almost always different evaluations (another validation
    set, a train vs a val loss) keyed as seeds; the fit would read the gap as seed noise.
    """
    same = df.groupby(["family", "params", "tokens"])
    n_runs = same["run"].transform("nunique")
    rep = df[n_runs > 1]
    if rep.empty:
        return
    logl = np.log(rep["loss"].astype(float)).groupby([rep["family"], rep["params"], rep["tokens"]])
    spread = logl.max() - logl.min()
    med = float(spread.median())
    if med > SEED_SPREAD_LIMIT:
        fam, n, d = spread.idxmax()
        warnings.warn(
            f"repeated runs of one configuration differ by a median factor {np.exp(med):.2f} in loss at the same "
            f"token count (largest in family {fam!r}, N={n:.3g}, D={d:.3g}); seed noise moves loss by a few "
            "percent. Check that these runs report the same evaluation; the fit will read the gap as seed noise.",
            SeedSpreadWarning, stacklevel=3)
