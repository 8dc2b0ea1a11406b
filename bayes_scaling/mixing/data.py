"""Data-mixing observations: per-domain validation losses of runs trained on different mixtures.

``MixingData.frame`` has one row per (mixture, domain, step) with the columns
``mixture, domain, step, share, loss`` (``share``: the domain's proportion in that mixture's
training data). Loaders read the BiMix release (Ge et al. 2024, Apache-2.0) from ``../shared/data``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.container import _numeric, check_finite_positive
from ..data.loaders import data_root
from ..errors import (
    DuplicateRowError,
    MissingColumnError,
    NonPositiveValueError,
    UnknownFamilyError,
)

MIXING_COLUMNS = ("mixture", "domain", "step", "share", "loss")
#: mixture proportions must sum to one within this tolerance
SHARE_TOLERANCE = 1e-3
BIMIX_DATASETS = {"pile": "Pile", "slimpajama": "SlimPajama"}
BIMIX_CONFIG_PREFIX = {"pile": "pile", "slimpajama": "sp"}


@dataclass(frozen=True)
class MixingData:
    frame: pd.DataFrame
    source: str = ""

    @classmethod
    def from_frames(cls, losses: pd.DataFrame, proportions: pd.DataFrame, *, mixture: str = "mixture",
                    domain: str = "domain", step: str = "step", loss: str = "val_loss",
                    share: str = "proportion", source: str = "") -> "MixingData":
        """Join per-domain losses (mixture, domain, step, loss) with mixture proportions (mixture, domain, share).

        Raises a specific error on a missing column, a NaN or non-positive value, a mixture whose
        shares do not sum to one, a duplicated (mixture, domain, step) row, or a loss row whose
        (mixture, domain) has no proportion.
        """
        for frame, cols, what in ((losses, (mixture, domain, step, loss), "losses"),
                                  (proportions, (mixture, domain, share), "proportions")):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise MissingColumnError(f"the {what} frame lacks column(s) {missing}; it has "
                                         f"{list(map(str, frame.columns))}. Name them with mixture=, domain=, ...")
        props = pd.DataFrame({"mixture": proportions[mixture].astype(str), "domain": proportions[domain].astype(str),
                              "share": _numeric(proportions[share], "share", share)})
        check_finite_positive(props, ["share"])
        if props.duplicated(["mixture", "domain"]).any():
            raise DuplicateRowError("a (mixture, domain) pair has two proportions; give one per pair")
        sums = props.groupby("mixture")["share"].sum()
        off = sums[(sums - 1).abs() > SHARE_TOLERANCE]
        if len(off):
            raise NonPositiveValueError(f"mixture proportions must sum to 1; {off.round(4).to_dict()} do not. "
                                        "Normalise them (divide by their sum) or add the missing domains.")
        obs = pd.DataFrame({"mixture": losses[mixture].astype(str), "domain": losses[domain].astype(str),
                            "step": _numeric(losses[step], "step", step), "loss": _numeric(losses[loss], "loss", loss)})
        check_finite_positive(obs, ["step", "loss"])
        dup = obs.duplicated(["mixture", "domain", "step"], keep=False)
        if dup.any():
            ex = obs.loc[dup].head(3).to_dict("records")
            raise DuplicateRowError(f"{int(dup.sum())} rows share a (mixture, domain, step), e.g. {ex}; "
                                    "average repeated evaluations first")
        frame = obs.merge(props, on=["mixture", "domain"], how="left")
        if frame["share"].isna().any():
            ex = frame.loc[frame["share"].isna(), ["mixture", "domain"]].drop_duplicates().head(3).to_dict("records")
            raise UnknownFamilyError(f"losses for (mixture, domain) pairs without a proportion, e.g. {ex}; add "
                                     "their proportions")
        frame = frame.sort_values(["mixture", "domain", "step"]).reset_index(drop=True)
        return cls(frame=frame[list(MIXING_COLUMNS)], source=source)

    @property
    def domains(self) -> list[str]:
        return sorted(self.frame["domain"].unique())

    @property
    def mixtures(self) -> list[str]:
        return list(dict.fromkeys(self.frame["mixture"]))

    def proportions(self) -> pd.DataFrame:
        """Shares as a table: one row per mixture, one column per domain."""
        tab = self.frame.drop_duplicates(["mixture", "domain"]).pivot(index="mixture", columns="domain",
                                                                     values="share")
        return tab.loc[self.mixtures, self.domains]

    def select(self, mixtures: list[str]) -> "MixingData":
        """Keep the named mixtures (an unknown name raises)."""
        unknown = sorted(set(mixtures) - set(self.mixtures))
        if unknown:
            raise UnknownFamilyError(f"unknown mixture(s) {unknown}; the data has {self.mixtures}")
        keep = self.frame[self.frame["mixture"].isin(mixtures)].reset_index(drop=True)
        return MixingData(frame=keep, source=self.source)

    def __len__(self) -> int:
        return len(self.frame)


def _bimix_dir(name: str, root: str | os.PathLike | None) -> tuple[Path, str]:
    key = name.lower()
    if key not in BIMIX_DATASETS:
        raise KeyError(f"no BiMix dataset {name!r}; choose one of {sorted(BIMIX_DATASETS)}")
    return data_root(root) / "bimix", key


def load_bimix(name: str = "pile", root: str | os.PathLike | None = None) -> MixingData:
    """The BiMix release: ``"pile"`` (22 domains) or ``"slimpajama"`` (7), six mixtures x 20 steps."""
    base, key = _bimix_dir(name, root)
    folder = base / BIMIX_DATASETS[key]
    return MixingData.from_frames(pd.read_csv(folder / "domain_losses.csv"),
                                  pd.read_csv(folder / "mixture_proportions.csv"),
                                  source=f"BiMix (Ge et al. 2024, Apache-2.0) {BIMIX_DATASETS[key]} via IBM/ColPret")


def load_bimix_config(name: str, mixture: str, root: str | os.PathLike | None = None) -> pd.Series:
    """A mixture from the release's ``configs/`` (e.g. ``mixture="opt"``: the BiMix-optimised one) as shares."""
    base, key = _bimix_dir(name, root)
    path = base / "configs" / f"{BIMIX_CONFIG_PREFIX[key]}_{mixture.lower()}.json"
    if not path.exists():
        raise FileNotFoundError(f"no BiMix config {path.name} in {path.parent}")
    weights = json.loads(path.read_text())["train_domain_weights"]
    domains = pd.read_csv(base / BIMIX_DATASETS[key] / "mixture_proportions.csv")["domain"].unique()
    # the configs name SlimPajama's domains "RedPajamaArXiv" where the losses say "ArXiv"
    named = {}
    for k, v in weights.items():
        match = [d for d in domains if k == d or k.endswith(d)]
        if len(match) != 1:
            raise UnknownFamilyError(f"config domain {k!r} matches {match} of the data's domains {list(domains)}")
        named[match[0]] = float(v)
    s = pd.Series(named, dtype=float).sort_index()
    return s / s.sum()


def shares_from(mapping: dict | pd.Series, domains: list[str]) -> np.ndarray:
    """Shares in the order of ``domains``; a missing or unknown domain raises."""
    s = pd.Series(mapping, dtype=float)
    missing, extra = sorted(set(domains) - set(s.index)), sorted(set(s.index) - set(domains))
    if missing or extra:
        raise UnknownFamilyError(f"mixture domains do not match the fit: missing {missing}, unknown {extra}")
    v = s.loc[domains].to_numpy()
    if np.any(~np.isfinite(v)) or np.any(v <= 0) or abs(v.sum() - 1) > SHARE_TOLERANCE:
        raise NonPositiveValueError(f"shares must be positive and sum to 1 (sum {v.sum():.4f})")
    return v
