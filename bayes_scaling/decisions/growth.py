"""Model growth (G_stack, "Stacking Your Transformers", Du et al. 2024): the posterior of the speedup.

A grown family (models grown from a smaller one by stacking its layers) is fitted as a **treatment**
of its from-scratch twin (``bs.fit(data, {"treatments": {"grown": "scratch"}})``): its law parameters are
the twin's plus a shift, so the two curves are compared draw by draw. At size N and a target loss L::

    D_x(L)   = tokens family x needs to reach L at size N      (laws.solve.tokens_to_loss)
    speedup  = D_scratch(L) / D_grown(L) - 1                  (54.6% = 300B / 194B - 1 in the paper)
    saving   = 1 - D_grown(L) / D_scratch(L)                  (35% fewer tokens)

The target is either a loss, or the loss the scratch model reaches after ``tokens`` tokens (the
paper's framing: "the loss of a 7B model trained on 300B tokens from scratch").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..laws import solve
from .compare import _known
from .compute_optimal import require_tokens_law


def growth_speedup(fit: Any, grown: str, scratch: str, params: float, *, tokens: float | None = None,
                   loss: float | None = None) -> xr.Dataset:
    """Posterior draws (``sample``) of the target loss, both token counts, the speedup and the saving.

    Give exactly one of ``tokens`` (the scratch model's tokens that define the target loss) or
    ``loss``. A draw where the grown model never reaches the loss has ``speedup = -1``; where only the
    scratch model never does, ``inf`` (see ``share_infinite`` in :func:`summarize`).
    """
    require_tokens_law(fit, "a growth speedup", chinchilla_form=True)
    _known(fit, [grown, scratch])
    if (tokens is None) == (loss is None):
        raise ValueError("give exactly one of tokens= (scratch tokens that define the target loss) or loss=")
    if not (np.isfinite(params) and params > 0):
        raise ValueError(f"params must be positive, got {params!r}")
    g, s = fit.family_draws(grown), fit.family_draws(scratch)
    sp, gp = list(s.natural.values()), list(g.natural.values())
    if tokens is not None:
        if not (np.isfinite(tokens) and tokens > 0):
            raise ValueError(f"tokens must be positive, got {tokens!r}")
        target = solve.chinchilla_loss(*sp, params, tokens)
        d_scratch = np.full_like(target, float(tokens))
    else:
        target = np.full(len(sp[0]), float(loss))
        d_scratch = solve.tokens_to_loss(*sp, params, target)
    d_grown = solve.tokens_to_loss(*gp, params, target)
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(np.isinf(d_grown), -1.0, solve.speedup(d_scratch, d_grown))
        saving = np.where(np.isinf(d_grown), -np.inf, solve.token_saving(d_scratch, d_grown))
    ds = xr.Dataset({"target_loss": ("sample", target), "tokens_scratch": ("sample", d_scratch),
                     "tokens_grown": ("sample", d_grown), "speedup": ("sample", speed),
                     "token_saving": ("sample", saving)}, coords={"sample": np.arange(s.size)})
    ds.attrs.update(grown=grown, scratch=scratch, params=float(params),
                    tokens=float(tokens) if tokens is not None else np.nan,
                    loss=float(loss) if loss is not None else np.nan,
                    description="speedup = D_scratch(L) / D_grown(L) - 1 at size params; token_saving = "
                                "1 - D_grown / D_scratch")
    return ds
