"""``bs.open(path)``: any file bayes_scaling writes, read back as what it is (:func:`.storage.file_kind` decides)."""

from __future__ import annotations

import os
from typing import Any

from .inference.downstream import DownstreamFit
from .inference.fitted import ScalingFit
from .mixing.fit import MixingFit
from .model.population_prior import PopulationPrior
from .errors import FitFileError
from .storage import file_kind

#: what writes each kind of file, for the error when another kind is passed
WRITERS = {"prior": "bayes-scaling prior (PopulationPrior.save)", "fit": "bayes-scaling fit (ScalingFit.save)",
           "mixing fit": "bayes-scaling mixing (MixingFit.save)",
           "downstream fit": "bayes-scaling downstream fit (DownstreamFit.save)"}
#: what each kind of file is read as
READERS = {"prior": PopulationPrior.load, "fit": ScalingFit.load, "mixing fit": MixingFit.load,
           "downstream fit": DownstreamFit.load}


def open(path: str | os.PathLike, kind: str | None = None) -> Any:  # noqa: A001 - bs.open, the counterpart of every save
    """Read any file bayes_scaling writes: a :class:`ScalingFit`, a :class:`PopulationPrior`, a
    :class:`MixingFit` or a :class:`DownstreamFit`, by what the file holds.

    ``kind``: the kind the caller needs (``"fit"``, ``"prior"``, ``"mixing fit"`` or ``"downstream fit"``); a
    file of another kind raises :class:`~bayes_scaling.errors.FitFileError` naming what it holds.
    """
    if kind is not None and kind not in READERS:
        raise ValueError(f"kind must be one of {list(READERS)} or None, got {kind!r}")
    held = file_kind(path)
    if kind is not None and held != kind:
        raise FitFileError(f"{path} holds a {held}, not a {kind}: pass the file that {WRITERS[kind]} wrote")
    return READERS[held](path)
