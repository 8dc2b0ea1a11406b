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
from typing import Any

import numpy as np
import pandas as pd

from .extent import levels
from ..errors import (
    DataValidationError,
    DuplicateRowError,
    EmptyFamilyError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositiveValueError,
    PerplexityLikeLossError,
    DataAssumptionWarning,
    SeedSpreadWarning,
    UnitWarning,
)
from ..laws.flops import training_flops

#: canonical column names of the container's frame
COLUMNS = ("family", "run", "seed", "params", "tokens", "flops", "loss")
#: columns a frame has when the data gave them (distinct tokens seen, for repeated data)
OPTIONAL_COLUMNS = ("unique_tokens",)

#: a cross-entropy in nats above this median looks like a perplexity
#: (uniform guessing over a 160k-token vocabulary gives ln(160000) = 12.0 nats)
PERPLEXITY_MEDIAN_THRESHOLD = 12.0

#: no cross-entropy of a language model in nats reaches this: uniform guessing over a million-token
#: vocabulary is 13.8 nats, and an early checkpoint is not e^6 times worse than uniform guessing
MAX_NATS = 20.0

#: scales below which a column is almost surely in other units: no scaling zoo trains a whole ladder of
#: models under 10k parameters or to under a million tokens, and a median of under 0.01 or over 100,000
#: tokens per parameter means tokens and parameters are in different units
MIN_LARGEST_PARAMS = 1e4
MIN_LARGEST_TOKENS = 1e6
TOKENS_PER_PARAM_RANGE = (1e-2, 1e5)


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
    ``source`` is a free-text provenance note (file, citation); ``assumptions`` says what was assumed
    where the input did not say.
    """

    frame: pd.DataFrame
    dropped: tuple[DropRecord, ...] = field(default_factory=tuple)
    source: str = ""
    #: what was assumed about the input where it did not say (e.g. which rows make one run)
    assumptions: tuple[str, ...] = field(default_factory=tuple)

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
        unique_tokens: str | None = None,
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
        unique_tokens:
            Column with the distinct tokens a checkpoint has seen (optional; for repeated data, read by the
            data-constrained law): at most ``tokens``, and ``tokens / unique_tokens`` is its epochs.
        loss_kind:
            ``"nats"`` (cross-entropy, the default) or ``"perplexity"`` (converted with log).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"ScalingData.from_frame needs a pandas DataFrame, got {type(df).__name__}")
        named = {"family": family, "params": params, "tokens": tokens, "loss": loss,
                 "run": run, "seed": seed, "flops": flops, "unique_tokens": unique_tokens}
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
        out["family"] = (key_column(df[family], "family", family) if family is not None
                         else np.full(len(df), default_family, dtype=object))
        for role, col in (("params", params), ("tokens", tokens), ("loss", loss)):
            out[role] = _numeric(df[col], role, col)
        if flops is not None:
            out["flops"] = _numeric(df[flops], "flops", flops)
        else:
            out["flops"] = training_flops(out["params"], out["tokens"])
        if unique_tokens is not None:
            out["unique_tokens"] = _numeric(df[unique_tokens], "unique_tokens", unique_tokens)
            _check_unique_tokens(out, unique_tokens)
        out["seed"] = key_column(df[seed], "seed", seed) if seed is not None else ""
        if loss_kind == "perplexity":
            check_finite_positive(out, ["loss"])
            _check_perplexity(out["loss"].to_numpy(dtype=float), loss)
            out["loss"] = np.log(out["loss"])
        assumptions: tuple[str, ...] = ()
        if run is not None:
            out["run"] = key_column(df[run], "run", run)
        else:
            out["run"] = default_run_keys(out, with_seed=seed is not None)
            assumptions = _assumed_runs(out, seed is not None)
        data = cls(frame=out[list(COLUMNS) + (["unique_tokens"] if unique_tokens is not None else [])],
                   source=source, assumptions=assumptions)
        return data.validated(loss_kind=loss_kind)

    def validated(self, *, loss_kind: str = "nats") -> "ScalingData":
        """Run every check; return a copy with a sorted, clean frame."""
        df = self.frame
        if len(df) == 0:
            raise EmptyFamilyError("the data has no rows; pass a non-empty DataFrame")
        check_finite_positive(df, ["params", "tokens", "flops", "loss"]
                              + (["unique_tokens"] if "unique_tokens" in df else []))
        if loss_kind == "nats":
            med, top = float(np.median(df["loss"])), float(df["loss"].max())
            if med > PERPLEXITY_MEDIAN_THRESHOLD or top > MAX_NATS:
                what = (f"median {med:.3g}" if med > PERPLEXITY_MEDIAN_THRESHOLD
                        else f"values up to {top:.4g} (median {med:.3g})")
                raise PerplexityLikeLossError(
                    f"the loss column has {what}, impossible for a cross-entropy in nats (uniform guessing over "
                    f"a million-token vocabulary is 13.8 nats; no loss reaches {MAX_NATS:g}). It looks like a "
                    "perplexity: pass loss_kind='perplexity' (it is converted with log); if it is a loss summed "
                    "over a sequence, divide it by the number of tokens first."
                )
        _warn_on_implausible_units(df)
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
        return replace(self, frame=clean)

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
        return replace(self, frame=kept.reset_index(drop=True), dropped=self.dropped + (rec,))

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
        has_unique = [("unique_tokens" in p.frame) for p in parts]
        if any(has_unique) and not all(has_unique):
            raise DataValidationError("some parts have a unique_tokens column and some do not; give it to every part "
                                      "(unique_tokens = tokens for data seen once)")
        data = cls.from_frame(frame, family="family", params="params", tokens="tokens", loss="loss", run="run",
                              seed="seed", flops="flops", unique_tokens="unique_tokens" if all(has_unique) else None,
                              source=source or " + ".join(p.source for p in parts))
        return replace(data, dropped=tuple(r for p in parts for r in p.dropped),
                       assumptions=tuple(a for p in parts for a in p.assumptions))

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


def key_column(series: pd.Series, role: str, col: str) -> np.ndarray:
    """Names of families, runs or seeds as strings, one per row; a blank cell, or two values that would become
    one name (the number 1 and the text "1"), is an error. Whole numbers stored as floats (1.0, as a
    spreadsheet writes them) are the same name as the integer. A blank seed is a run whose seed was not
    recorded (the empty name)."""
    values = series.to_numpy(dtype=object)
    blank = pd.isna(series).to_numpy() | np.array([isinstance(v, str) and not v.strip() for v in values])
    if role == "seed":
        values = np.where(blank, "", values)
    elif blank.any():
        rows = np.flatnonzero(blank)[:5].tolist()
        raise DataValidationError(
            f"column {col!r} (the {role} names) has {int(blank.sum())} blank cell(s), rows {rows}. Every row needs "
            f"a {role}: fill those cells, or drop the rows first (nothing is dropped silently).")

    def name(v):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v).strip() if isinstance(v, str) else str(v)

    names = np.array([name(v) for v in values], dtype=object)
    kinds: dict[str, set] = {}
    for v, n in zip(values, names):
        kinds.setdefault(n, set()).add("text" if isinstance(v, str) else "number")
    mixed = sorted(n for n, k in kinds.items() if len(k) > 1)
    if mixed:
        raise DataValidationError(
            f"column {col!r} (the {role} names) holds {mixed[0]!r} both as a number and as text; they would "
            f"become one {role}. Make the column one type, e.g. df[{col!r}] = df[{col!r}].astype(str), after "
            "checking that they are meant to be the same.")
    return names


def default_run_keys(frame: pd.DataFrame, with_seed: bool) -> np.ndarray:
    """One run per family and exact model size (and seed): ``family/N=1.01796312e+09``. The size is written
    with every digit it has, so models whose sizes differ in any digit are different runs."""
    size = [np.format_float_scientific(float(n), unique=True, trim="-") for n in frame["params"]]
    keys = frame["family"].astype(str) + "/N=" + pd.Series(size, index=frame.index)
    if with_seed:
        keys = keys + "/seed=" + frame["seed"].astype(str)
    return keys.to_numpy(dtype=object)


def _assumed_runs(frame: pd.DataFrame, with_seed: bool) -> tuple[str, ...]:
    """Say which rows were taken as one run when no run column was given; warn when the rows look like one
    row per run: most rows share their compute budget (:func:`.extent.levels`) with two or more other model
    sizes, each size about once, as in IsoFLOP sweeps (a full grid of sizes x token counts looks the same, and a run
    column settles it either way)."""
    n_runs, n_rows = frame["run"].nunique(), len(frame)
    if n_runs == n_rows:
        return (f"no run column: each of the {n_rows} rows is its own run (one per family and model size"
                f"{' and seed' if with_seed else ''})",)
    note = (f"no run column: rows of the same family and model size{' and seed' if with_seed else ''} were taken "
            f"as checkpoints of one run ({n_rows} rows became {n_runs} runs)")
    level = np.empty(len(frame), dtype=int)
    for _, rows in frame.groupby("family").indices.items():
        level[rows] = levels(np.log10(frame["flops"].to_numpy(dtype=float)[rows]))
    by_level = frame.assign(level=level).groupby(["family", "level"])["params"]
    sizes_at_level, rows_at_level = by_level.transform("nunique"), by_level.transform("size")
    # a sweep: three or more sizes at one budget, each about once (budgets read off a figure merge into levels
    # where a size can appear twice); dense checkpoint curves chain into levels that hold many rows of each size
    if float(((sizes_at_level >= 3) & (rows_at_level <= 2 * sizes_at_level)).mean()) > 0.5:
        warnings.warn(
            note + "; but several model sizes share one compute budget, as in an IsoFLOP sweep where every row "
            "is a separate run. If so, name a column that is unique per run (run=..., or add one: "
            "df['run'] = range(len(df))).", DataAssumptionWarning, stacklevel=4)
    return (note,)


def more_unique_than_tokens(unique_tokens: Any, tokens: Any) -> np.ndarray:
    """Where more distinct tokens than tokens were seen (impossible: each is seen at least once); a relative
    tolerance of 1e-9 for values written with rounding."""
    return np.asarray(unique_tokens, dtype=float) > np.asarray(tokens, dtype=float) * (1 + 1e-9)


def _check_unique_tokens(out: pd.DataFrame, col: str) -> None:
    """Raise when a checkpoint has seen more distinct tokens than tokens."""
    check_finite_positive(out, ["tokens", "unique_tokens"])
    bad = more_unique_than_tokens(out["unique_tokens"], out["tokens"])
    if bad.any():
        ex = out.loc[bad, ["params", "tokens", "unique_tokens"]].head(3).to_dict("records")
        raise DataValidationError(
            f"{int(bad.sum())} rows have more unique tokens ({col!r}) than tokens, e.g. {ex}. A checkpoint sees each "
            "distinct token at least once: pass the distinct tokens seen so far (min(tokens, tokens per epoch)), not "
            "the size of the corpus")


def _check_perplexity(values: np.ndarray, col: str) -> None:
    """Perplexities are at least 1; a column whose values all sit where losses in nats do is probably nats."""
    if (values < 1).any():
        raise PerplexityLikeLossError(
            f"column {col!r} is read as perplexity but has values below 1 (smallest {values.min():.3g}); a "
            "perplexity is at least 1. If it holds a cross-entropy in nats, read it as nats (loss_kind='nats').")
    if float(np.median(values)) < np.e ** 2 and values.max() < PERPLEXITY_MEDIAN_THRESHOLD:
        warnings.warn(
            f"column {col!r} is read as perplexity, but its values ({values.min():.3g} to {values.max():.3g}) are "
            "where cross-entropies in nats lie; perplexities of language models are rarely all below 12. If they "
            "are nats, read them as nats (loss_kind='nats').", UnitWarning, stacklevel=4)


def _warn_on_implausible_units(df: pd.DataFrame) -> None:
    """Warn, naming the likely unit, when model sizes or token counts sit at scales no scaling zoo has."""
    n_max, d_max = float(df["params"].max()), float(df["tokens"].max())
    ratio = float(np.median(df["tokens"] / df["params"]))
    lo, hi = TOKENS_PER_PARAM_RANGE
    found = []
    if n_max < MIN_LARGEST_PARAMS:
        found.append(f"the largest model has {n_max:.4g} parameters: are sizes in millions or billions "
                     f"({n_max:.4g} -> {n_max * 1e6:.3g} or {n_max * 1e9:.3g})?")
    if d_max < MIN_LARGEST_TOKENS:
        found.append(f"the longest run saw {d_max:.4g} tokens: are tokens in millions or billions "
                     f"({d_max:.4g} -> {d_max * 1e6:.3g} or {d_max * 1e9:.3g})?")
    if not found and not lo <= ratio <= hi:
        found.append(f"the median run sees {ratio:.3g} tokens per parameter (compute-optimal is about 20): are "
                     "parameters and tokens in the same unit (counts, not millions or billions)?")
    if found:
        warnings.warn("implausible units: " + " ".join(found) + " The law needs plain counts; convert the column "
                      "(e.g. df['params'] * 1e6) and fit again.", UnitWarning, stacklevel=4)


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
