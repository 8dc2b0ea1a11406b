"""Loaders that turn published scaling data into :class:`ScalingData`.

Two kinds of source:

* **bundled** (MIT-licensed, shipped inside the package with their licence):
  :func:`load_bundled` (``"porian"`` and ``"opt"``).
* **shared** (read from a data folder at run time, never downloaded): Kempner, Epoch's
  Chinchilla points, ColPret (OPT, OLMo, T5-Pile, datablations), Porian, Gemstone. The folder is
  found by :func:`data_root`: the ``root`` argument, else ``$BAYES_SCALING_DATA``, else a
  ``shared/data`` folder in the working directory or one of its parents.

Each loader documents its unit conversions; rows a loader cannot use (a NaN loss in the chosen
column, a step-0 checkpoint) are recorded in ``ScalingData.dropped``, never silently lost.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UnitWarning
from ..laws.flops import FLOPS_PER_PARAM_TOKEN
from .container import DropRecord, ScalingData

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMbBtT]?)\s*$")
_SIZE_MULT = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_size(text: str | float | int) -> float:
    """Parse a human size such as ``"2.8B"``, ``"125m"`` or ``"85B"`` into a float."""
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text)
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"cannot parse size {text!r}; expected a number with an optional k/M/B/T suffix")
    return float(m.group(1)) * _SIZE_MULT[m.group(2).lower()]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Locate the folder holding the shared published data (``kempner_loss_to_loss/``, ...)."""
    candidates: list[Path] = []
    if root is not None:
        candidates.append(Path(root))
    if os.environ.get("BAYES_SCALING_DATA"):
        candidates.append(Path(os.environ["BAYES_SCALING_DATA"]))
    here = Path.cwd().resolve()
    for parent in (here, *here.parents):
        candidates.append(parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "the shared scaling-data folder was not found. Pass root=..., or set BAYES_SCALING_DATA to the "
        "folder that holds kempner_loss_to_loss/, epoch_chinchilla/, colpret/, ... (nothing is downloaded)."
    )


def _with_drop(data: ScalingData, name: str, rows: int, reason: str) -> ScalingData:
    if rows == 0:
        return data
    return replace(data, dropped=data.dropped + (DropRecord(name, int(rows), 0, reason),))


def _drop_rows(df: pd.DataFrame, bad: pd.Series) -> tuple[pd.DataFrame, int]:
    return df.loc[~bad].reset_index(drop=True), int(bad.sum())


# ---------------------------------------------------------------------------- bundled
BUNDLED = {
    "porian": "Porian et al. 2024 IsoFLOP runs, 15 recipes (MIT; formll/resolving-scaling-law-discrepancies)",
    "opt": "OPT 125m-175b loss trajectories (MIT; IBM/ColPret)",
}


def bundled_file(folder: str, file: str) -> Path:
    """Path of a file shipped in the package under ``bayes_scaling/data/bundled/FOLDER/``."""
    return Path(str(resources.files("bayes_scaling.data") / "bundled" / folder / file))


def bundled_path(name: str) -> Path:
    """Path of a bundled file: ``porian`` or ``opt``."""
    files = {"porian": ("porian_rsld", "isoflop_points.csv"), "opt": ("colpret", "opt_trajectories.csv")}
    if name not in files:
        raise KeyError(f"no bundled dataset {name!r}; choose one of {sorted(files)}")
    return bundled_file(*files[name])


def load_bundled(name: str = "porian") -> ScalingData:
    """Load a dataset shipped inside the package (``"porian"``, the demo's default, or ``"opt"``)."""
    path = bundled_path(name)
    data = porian_from_csv(path) if name == "porian" else opt_from_csv(path)
    # name the packaged file relative to the package: a report should not carry this machine's paths
    return replace(data, source=f"{BUNDLED[name]}; bundled file bayes_scaling/data/bundled/{path.parent.name}/{path.name}")


# ---------------------------------------------------------------------------- Porian
PORIAN_RECIPE = ["dataset", "hparams", "warmup", "decay", "param_count", "val"]


def porian_from_csv(path: str | os.PathLike) -> ScalingData:
    """Porian et al. IsoFLOP runs: one row per run; family = recipe (15 combinations)."""
    df = pd.read_csv(path)
    df["recipe"] = df[PORIAN_RECIPE].astype(str).agg("-".join, axis=1)
    df["run_id"] = df["recipe"] + "/" + df.index.astype(str)
    return ScalingData.from_frame(df, family="recipe", params="N", tokens="D", loss="loss", run="run_id",
                                  flops="flops", source=f"Porian et al. 2024 ({path})")


def load_porian(root: str | os.PathLike | None = None) -> ScalingData:
    return porian_from_csv(data_root(root) / "porian_rsld" / "isoflop_points.csv")


# ---------------------------------------------------------------------------- ColPret OPT
def opt_from_csv(path: str | os.PathLike) -> ScalingData:
    """OPT trajectories: ``num_token`` and ``flops`` are log10; ``ppl`` is converted to nats."""
    df = pd.read_csv(path)
    df["params"] = df["model_size"].map(parse_size)
    df["tokens"] = 10.0 ** df["num_token"]
    df["flops_abs"] = 10.0 ** df["flops"]
    return ScalingData.from_frame(df, family="model_name", params="params", tokens="tokens", loss="ppl",
                                  loss_kind="perplexity", run="model_size", flops="flops_abs",
                                  source=f"OPT via IBM/ColPret ({path})")


def load_opt(root: str | os.PathLike | None = None) -> ScalingData:
    return opt_from_csv(data_root(root) / "colpret" / "opt_trajectories.csv")


# ---------------------------------------------------------------------------- Kempner
def load_kempner(root: str | os.PathLike | None = None, loss: str = "val_loss") -> ScalingData:
    """Kempner loss-to-loss IsoFLOP sweep: family = pretraining corpus (column ``data``)."""
    path = data_root(root) / "kempner_loss_to_loss" / "sweep.csv"
    df = pd.read_csv(path)
    return ScalingData.from_frame(df, family="data", params="params", tokens="tokens", loss=loss, run="id",
                                  source=f"Brandfonbrener et al. 2024 ({path})")


# ---------------------------------------------------------------------------- Epoch / Chinchilla
def load_epoch_chinchilla(root: str | os.PathLike | None = None, drop_highest_losses: int = 0) -> ScalingData:
    """Epoch's 245 Chinchilla points read off the paper's figure; D = C / (6 N).

    ``drop_highest_losses=5`` reproduces Epoch's refit, which drops the five highest losses;
    the dropped rows are recorded in ``dropped``.
    """
    path = data_root(root) / "epoch_chinchilla" / "svg_extracted_data.csv"
    df = pd.read_csv(path)
    df["tokens"] = df["Training FLOP"] / (FLOPS_PER_PARAM_TOKEN * df["Model Size"])
    df["run_id"] = "point" + df.index.astype(str)
    data = ScalingData.from_frame(df, family=None, default_family="chinchilla", params="Model Size",
                                  tokens="tokens", loss="loss", flops="Training FLOP", run="run_id",
                                  source=f"Hoffmann et al. 2022 via Besiroglu et al. 2024 ({path})")
    if drop_highest_losses:
        cut = np.sort(data.frame["loss"].to_numpy())[-drop_highest_losses]
        data = data.subset(data.frame["loss"].to_numpy() < cut, name="drop_highest_losses",
                           reason=f"the {drop_highest_losses} highest losses, as in Epoch's refit")
    return data


# ---------------------------------------------------------------------------- ColPret
def load_olmo(root: str | os.PathLike | None = None, domain: str = "mc4_en",
              tokens_per_step: float = 2048 * 2048) -> ScalingData:
    """OLMo-1B/7B/7B-Twin-2T checkpoints; tokens = Step x 4.19M (2048 sequences of 2048 tokens).

    The three models logged their validation losses under different names; the loss of
    ``domain`` is taken from the first non-empty of ``{domain}-validation``, ``v2-small-{domain}-validation``
    and ``v3-small-{domain}-validation`` (CrossEntropyLoss). Rows with none are recorded as dropped.
    """
    path = data_root(root) / "colpret" / "olmo.csv"
    df = pd.read_csv(path)
    names = [f"{p}{domain}-validation/CrossEntropyLoss" for p in ("", "v2-small-", "v3-small-")]
    names = [c for c in names if c in df.columns]
    if not names:
        raise KeyError(f"no OLMo validation loss for domain {domain!r}")
    df["loss"] = df[names].bfill(axis=1).iloc[:, 0]
    df, n_bad = _drop_rows(df, df["loss"].isna())
    df["params"] = df["num_params"].map(parse_size)
    df["tokens"] = df["Step"] * tokens_per_step
    df["family"] = "OLMo"
    data = ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="loss",
                                  run="model_name", source=f"OLMo via IBM/ColPret ({path})")
    return _with_drop(data, "missing_loss", n_bad, f"rows without a {domain} validation loss")


T5_SIZES = {"base": 248e6, "large": 783e6, "xl": 2.85e9, "xxl": 11.3e9}


def load_t5_pile(root: str | os.PathLike | None = None, tokens_per_step: float = 2048 * 512) -> ScalingData:
    """Pile-T5 (encoder-decoder) checkpoints; tokens = steps x 2048 x 512.

    The per-token loss columns of this export are corrupted (negative values); as in ColPret, the
    loss is taken from ``val_perplexity`` (converted to nats). Step-0 rows are dropped and recorded.
    """
    path = data_root(root) / "colpret" / "t5_pile.csv"
    df = pd.read_csv(path)
    df, n_bad = _drop_rows(df, df["steps"] <= 0)
    df["params"] = df["model_name"].map(T5_SIZES)
    df["tokens"] = df["steps"] * tokens_per_step
    df["family"] = "T5-Pile"
    with warnings.catch_warnings():  # perplexities of 1.03-1.08 are what this export holds (ColPret reads them so)
        warnings.simplefilter("ignore", UnitWarning)
        data = ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss="val_perplexity",
                                      loss_kind="perplexity", run="model_name",
                                      source=f"Pile-T5 via IBM/ColPret ({path})")
    return _with_drop(data, "step_zero", n_bad, "step-0 checkpoints (no tokens seen)")


def load_datablations(root: str | os.PathLike | None = None, family_by: str = "data",
                      epochs: int | None = None) -> ScalingData:
    """Datablations (Muennighoff et al.) checkpoints: 2.8B/4.2B/8.7B on c4 and oscar.

    ``family_by="data"`` (c4, oscar) or ``"data_epochs"`` (one family per data set and epoch count).
    A run is one (data, size, epochs, tokens-per-epoch) setting. ``epochs=1`` keeps only the runs on
    unique data (the Chinchilla law has no term for repetition); the other runs are recorded as dropped.
    With repeated runs kept, ``unique_tokens`` holds the distinct tokens each checkpoint has seen,
    ``min(tokens, tokens per epoch)``, for the data-constrained law.
    """
    path = data_root(root) / "colpret" / "datablations_losses.csv"
    df = pd.read_csv(path)
    n_repeat = 0
    if epochs is not None:
        df, n_repeat = _drop_rows(df, df["epochs"] != epochs)
    df["params"] = df["num_params"].map(parse_size)
    if family_by == "data":
        df["family"] = df["data"]
    elif family_by == "data_epochs":
        df["family"] = df["data"] + "-" + df["epochs"].astype(str) + "ep"
    else:
        raise ValueError(f"family_by must be 'data' or 'data_epochs', got {family_by!r}")
    df["run_id"] = (df["data"] + "/" + df["num_params"] + "/ep" + df["epochs"].astype(str) + "/tpe"
                    + df["tokens_per_epoch"].astype(str))
    repeated = epochs != 1
    df["unique_tokens"] = np.minimum(df["token_num"], df["tokens_per_epoch"])
    data = ScalingData.from_frame(df, family="family", params="params", tokens="token_num", loss="loss",
                                  run="run_id", unique_tokens="unique_tokens" if repeated else None,
                                  source=f"datablations via IBM/ColPret ({path})")
    return _with_drop(data, "epochs", n_repeat, f"runs with an epoch count other than {epochs}")


def load_datablations_code(root: str | os.PathLike | None = None) -> ScalingData:
    """Datablations 4.2B runs on c4 mixed with code (column ``epochs`` is the code percentage).

    Family = code share; the column ``Seed`` keys the runs (two per setting).
    """
    path = data_root(root) / "colpret" / "datablations_code_losses.csv"
    df = pd.read_csv(path)
    df["params"] = df["num_params"].map(parse_size)
    df["family"] = df["data"] + "-" + df["epochs"].astype(str) + "%code"
    df["run_id"] = df["family"] + "/seed" + df["Seed"].astype(str)
    return ScalingData.from_frame(df, family="family", params="params", tokens="token_num", loss="loss",
                                  run="run_id", seed="Seed", source=f"datablations code via IBM/ColPret ({path})")


# ---------------------------------------------------------------------------- Gemstone
GEMSTONE_FILES = {
    "hot": "wandb_df_for_fitting_hot_477.jsonl",
    "hot_100b+": "wandb_df_for_fitting_hot_100b+_477.jsonl",
    "lr_ablation": "wandb_df_for_fitting_lr_ablation_hot_477.jsonl",
    "cool_end": "wandb_df_for_fitting_cool_end.jsonl",
}


def load_gemstone(root: str | os.PathLike | None = None, which: str = "hot", family_by: str = "width") -> ScalingData:
    """Gemstone training-loss checkpoints of width x depth shapes.

    family = ``width`` or ``depth`` (one family per value), or ``learning_rate``: every run of the
    file in one family, ``lr=half`` for the half-learning-rate ablation and ``lr=base`` otherwise
    (concatenate ``which="hot"`` and ``which="lr_ablation"`` to compare the two recipes).
    """
    if which not in GEMSTONE_FILES:
        raise ValueError(f"which must be one of {sorted(GEMSTONE_FILES)}, got {which!r}")
    if family_by not in ("width", "depth", "learning_rate"):
        raise ValueError(f"family_by must be 'width', 'depth' or 'learning_rate', got {family_by!r}")
    path = data_root(root) / "gemstone" / GEMSTONE_FILES[which]
    df = pd.read_json(path, lines=True)
    if family_by == "learning_rate":
        df["family"] = "lr=half" if which == "lr_ablation" else "lr=base"
    else:
        df["family"] = family_by + "=" + df[family_by].astype(str)
    return ScalingData.from_frame(df, family="family", params="params_active_precise", tokens="tokens",
                                  loss="final_loss", run="run_name", source=f"Gemstone ({path})")


# ---------------------------------------------------------------------------- OLMo 2 ladder
#: the OLMo 2 target runs whose last checkpoint is a finished run (the 7B after its anneal, the 13B's last)
OLMO_LADDER_TARGETS = ("OLMo2-7B-anneal", "OLMo2-13B-stage1")


def load_olmo_ladder(root: str | os.PathLike | None = None, loss: str = "loss_c4_en") -> ScalingData:
    """The OLMo 2 ladder's validation loss (Bhagia et al. 2025): one family, 190M-3.2B x 0.5-10xC and the
    7B and 13B targets, the final checkpoint of each run.

    Each ladder run has its own cosine schedule, so only its last checkpoint is the loss of a finished
    run of that length (the paper fits run ends too); the intermediate checkpoints and the 7B's
    un-annealed runs are recorded as dropped. ``params`` is the paper's non-embedding N; the repeat of each
    1xC run is seed 1. ``loss`` names a validation cross-entropy column of ``checkpoints.csv``.
    """
    path = data_root(root) / "downstream" / "olmo_ladder" / "checkpoints.csv"
    df = pd.read_csv(path)
    if loss not in df.columns or not loss.startswith("loss_"):
        raise KeyError(f"no validation loss {loss!r} in {path}; choose one of "
                       f"{[c for c in df.columns if c.startswith('loss_')]}")
    finished = (df["is_final"] == 1) & ((df["role"] == "ladder") | df["run"].isin(OLMO_LADDER_TARGETS))
    df, n_bad = _drop_rows(df, ~finished)
    data = ScalingData.from_frame(df, family="family", params="params", tokens="tokens", loss=loss, run="run",
                                  seed="replicate", source=f"OLMo 2 ladder, Bhagia et al. 2025 ({path})")
    return _with_drop(data, "unfinished", n_bad, "checkpoints before the end of their run's schedule")



# ---------------------------------------------------------------------------- (Mis)Fitting sweeps
def load_misfitting(root: str | os.PathLike | None = None) -> ScalingData:
    """The (Mis)Fitting survey's sweeps (Li et al. 2025): 11 sizes, 12M-1B, trained at 5 peak learning rates;
    the end of each run.

    family = peak learning rate (``lr=0.002``); a run is one model of one sweep at one learning rate and one
    schedule length (``total_steps``). Its learning rate decays over that length, so only its last
    checkpoint is the loss of a finished run of that many tokens (the intermediate ones are recorded as
    dropped; some of their logs also restart with token counts that do not match their step). A run end
    logged twice with the same loss is kept once; with different losses, the copies are repeats (seeds
    0, 1, ...). ``params`` is N with embeddings (the survey's ``N``); ``loss`` the C4 evaluation loss.
    """
    path = data_root(root) / "misfitting" / "scaling_results.csv"
    df = pd.read_csv(path)
    df["family"] = "lr=" + df["peak_lr"].map(lambda v: f"{v:g}")
    df["run_id"] = df["model"] + "/" + df["sweep"] + "/" + df["family"] + "/steps=" + df["total_steps"].astype(str)
    df, n_bad = _drop_rows(df, df["current_steps"] < df["total_steps"])
    df, n_copies = _drop_rows(df, df.duplicated(["run_id", "D", "C4 Eval Loss"]))
    df["repeat"] = df.groupby("run_id").cumcount()
    df["run_id"] = df["run_id"] + "/seed=" + df["repeat"].astype(str)
    data = ScalingData.from_frame(df, family="family", params="N", tokens="D", loss="C4 Eval Loss", run="run_id",
                                  seed="repeat", source=f"(Mis)Fitting sweeps, Li et al. 2025 ({path})")
    data = _with_drop(data, "unfinished", n_bad, "checkpoints before the end of their run's schedule")
    return _with_drop(data, "logged_twice", n_copies, "run ends logged twice with the same loss")

#: every shared-data loader by name (used by the CLI's --dataset and by tests)
LOADERS = {
    "kempner": load_kempner,
    "epoch_chinchilla": load_epoch_chinchilla,
    "opt": load_opt,
    "olmo": load_olmo,
    "t5_pile": load_t5_pile,
    "datablations": load_datablations,
    "datablations_code": load_datablations_code,
    "porian": load_porian,
    "gemstone": load_gemstone,
    "olmo_ladder": load_olmo_ladder,
    "misfitting": load_misfitting,
}
