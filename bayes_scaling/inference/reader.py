"""``bs.open(path)``: any file bayes_scaling writes, read back as what it is (:func:`..storage.file_kind` decides)."""

from __future__ import annotations

import os
from typing import Any

from ..model.population_prior import PopulationPrior
from ..storage import file_kind
from .downstream import DownstreamFit
from .fitted import ScalingFit
from .mixing import MixingFit

#: what each kind of file is read as
READERS = {"prior": PopulationPrior.load, "fit": ScalingFit.load, "mixing fit": MixingFit.load,
           "downstream fit": DownstreamFit.load}


def open(path: str | os.PathLike) -> Any:  # noqa: A001 - bs.open, the counterpart of every save
    """Read any file bayes_scaling writes: a :class:`ScalingFit`, a :class:`PopulationPrior`, a
    :class:`MixingFit` or a :class:`DownstreamFit`, by what the file holds."""
    return READERS[file_kind(path)](path)
