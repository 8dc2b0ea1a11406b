"""The published zoos the package bundles: MIT and Apache-2.0 scaling data, ready to pool.

A *zoo* is the set of model families one publication trained. The package ships each licence-clean zoo
it knows (its licence and source beside the file, under ``bundled/``), so that the published population
prior (:mod:`bayes_scaling.priors.published`) is rebuilt from the installed package alone:

``colpret``
    OPT 125m-175b, OLMo 1B/7B and the datablations runs on unique data (c4, oscar; 2.8B-8.7B), from
    the data of "A Hitchhiker's Guide to Scaling Law Estimation" (MIT).
``porian``
    Porian et al. 2024's IsoFLOP runs, one family per training recipe (15; MIT).
``gemstone``
    McLeish et al. 2025's width x depth shapes to 100B tokens, one family per width (MIT).
``olmo_ladder``
    The OLMo 2 ladder (Bhagia et al. 2025): 190M-3.2B at 0.5-10x Chinchilla tokens and the 7B and
    13B targets, one family, run ends only (Apache-2.0).

T5-Pile is left out: its loss, read from ColPret's perplexities, is 0.03-0.08 nats, a quantity no
causal language model's loss is. Files whose licence is not stated (Kempner, Epoch's Chinchilla points,
(Mis)Fitting) are not redistributed and are not in any zoo.

:func:`load_zoo` reads one zoo from the package with its families named ``zoo:family``, so zoos pool
into one data set without two families sharing a name. :func:`write_bundled_zoos` writes the bundled
files from the published data (``../shared/data``); it is how they were made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from .container import ScalingData
from .filters import thin_checkpoints
from .loaders import bundled_file, load_bundled, load_datablations, load_gemstone, load_olmo, load_olmo_ladder

#: checkpoints per run kept in a bundled zoo file (evenly spread in log tokens; runs with fewer keep all)
BUNDLED_CHECKPOINTS_PER_RUN = 24
#: the columns of a bundled zoo file (loss in nats)
ZOO_COLUMNS = ("family", "run", "seed", "params", "tokens", "flops", "loss")


@dataclass(frozen=True)
class Zoo:
    """One published zoo: where its bundled file is, what its loss is, and whom to cite."""

    name: str
    title: str
    loss: str
    licence: str
    citation: str
    #: the bundled file under ``bayes_scaling/data/bundled/`` (a folder with the licence beside it)
    folder: str
    file: str
    #: how the bundled file was made from the published data (``root``: the shared data folder)
    make: Callable[[str | os.PathLike | None], ScalingData] | None = None

    @property
    def path(self) -> Path:
        return bundled_file(self.folder, self.file)


def _colpret(root: str | os.PathLike | None) -> ScalingData:
    return ScalingData.concat([load_olmo(root), load_datablations(root, epochs=1)], source="ColPret")


ZOOS: dict[str, Zoo] = {z.name: z for z in (
    Zoo("colpret", "OPT 125m-175b, OLMo 1B/7B, datablations c4 and oscar 2.8B-8.7B on unique data",
        "validation cross-entropy (OPT: log of its perplexity; OLMo: mc4_en; datablations: its validation set)",
        "MIT", "Choshen, Zhang, Andreas 2025, A Hitchhiker's Guide to Scaling Law Estimation (IBM/ColPret @ 16f23bb)",
        "colpret", "zoo_olmo_datablations.csv", _colpret),
    Zoo("porian", "15 training recipes (data set, hyperparameters, warm-up, decay, parameter count, loss)",
        "validation or training loss of each recipe at the end of its run", "MIT",
        "Porian et al. 2024, Resolving Discrepancies in Compute-Optimal Scaling of Language Models "
        "(formll/resolving-scaling-law-discrepancies @ 0dc60d9)", "porian_rsld", "isoflop_points.csv"),
    Zoo("gemstone", "22 width x depth shapes (48M-2B) to 100B tokens, one family per width",
        "training loss (constant learning rate, before cooldown)", "MIT",
        "McLeish et al. 2025, Gemstones: A Model Suite for Multi-Faceted Scaling Laws "
        "(mcleish7/gemstone-scaling-laws @ 5f42047)", "gemstone", "hot_by_width.csv",
        lambda root: load_gemstone(root, which="hot", family_by="width")),
    Zoo("olmo_ladder", "OLMo 2 ladder 190M-3.2B x 0.5-10xC and the 7B and 13B targets, run ends",
        "Paloma C4 validation cross-entropy", "Apache-2.0",
        "Bhagia et al. 2025, Establishing Task Scaling Laws via Compute-Efficient Model Ladders "
        "(allenai/OLMo-ladder @ 67a3f44)", "olmo_ladder", "c4_loss.csv", load_olmo_ladder),
)}


#: between a zoo's name and its family's (or run's) in pooled zoo data
ZOO_SEPARATOR = ":"


def split_zoo_name(name: str) -> tuple[str, str]:
    """``"zoo:family"`` -> ``("zoo", "family")``: the zoo of a family (or run) of pooled zoo data, and its own name."""
    zoo, _, own = str(name).partition(ZOO_SEPARATOR)
    return zoo, own


def load_zoo(name: str) -> ScalingData:
    """One bundled zoo, its families named ``zoo:family`` (and its runs ``zoo:run``)."""
    if name not in ZOOS:
        raise KeyError(f"no bundled zoo {name!r}; choose from {sorted(ZOOS)}")
    zoo = ZOOS[name]
    if name == "porian":
        data = load_bundled("porian")
    else:
        df = pd.read_csv(zoo.path, dtype={"family": str, "run": str, "seed": str}, keep_default_na=False)
        data = ScalingData.from_frame(df, family="family", run="run", seed="seed", params="params",
                                      tokens="tokens", flops="flops", loss="loss", source=zoo.title)
        if name == "colpret":  # OPT is bundled on its own (the demo's second set)
            data = ScalingData.concat([load_bundled("opt"), data], source=zoo.title)
    prefix = name + ZOO_SEPARATOR
    df = data.frame.assign(family=prefix + data.frame["family"], run=prefix + data.frame["run"])
    out = ScalingData.from_frame(df, family="family", run="run", seed="seed", params="params", tokens="tokens",
                                 flops="flops", loss="loss", source=f"{zoo.title} ({zoo.licence}; {zoo.citation})")
    return replace(out, dropped=data.dropped)


def load_zoos(names: tuple[str, ...] | list[str] | None = None) -> ScalingData:
    """Several bundled zoos pooled into one data set (default: every zoo in :data:`ZOOS`)."""
    names = list(ZOOS) if names is None else list(names)
    parts = [load_zoo(n) for n in names]
    return ScalingData.concat(parts, source="bundled zoos: " + ", ".join(names))


def write_bundled_zoos(root: str | os.PathLike | None = None) -> list[Path]:
    """Write the bundled zoo files from the published data in ``root`` (default: the shared data folder),
    each run thinned to :data:`BUNDLED_CHECKPOINTS_PER_RUN` checkpoints. Returns the paths written."""
    written = []
    for zoo in ZOOS.values():
        if zoo.make is None:  # bundled as published
            continue
        data = thin_checkpoints(zoo.make(root), BUNDLED_CHECKPOINTS_PER_RUN)
        zoo.path.parent.mkdir(parents=True, exist_ok=True)
        data.frame[list(ZOO_COLUMNS)].to_csv(zoo.path, index=False, float_format="%.8g")
        written.append(zoo.path)
    return written
