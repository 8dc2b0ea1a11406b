"""Training compute: C = 6 N D unless the data give it (a forward and a backward pass cost about 6 FLOPs per
parameter per token; Kaplan et al. 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: FLOPs per parameter per training token
FLOPS_PER_PARAM_TOKEN = 6.0


def training_flops(params: Any, tokens: Any, flops: Any = None) -> Any:
    """``flops`` where given, else ``6 * params * tokens`` (arrays, pandas columns or numbers alike)."""
    if flops is not None:
        return np.asarray(flops, dtype=float)
    return FLOPS_PER_PARAM_TOKEN * params * tokens
