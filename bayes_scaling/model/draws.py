"""Draws of one family's scaling law: the one type of what a fit or a borrowed prior says about a family.

A :class:`LawDraws` holds ``S`` draws of a family's natural law parameters (E, A, alpha, ...), its seed and
checkpoint noise, and its extrapolation discrepancy, with the law's log loss on them. A fitted family's
posterior (:meth:`ScalingFit.family_draws <bayes_scaling.inference.ScalingFit.family_draws>`), a new family
drawn from a fit's population (``new_family=True``) and a borrowed population prior before any run is trained
(:meth:`PopulationPrior.family_draws <bayes_scaling.model.PopulationPrior.family_draws>`) are all one; the
run planner (:mod:`bayes_scaling.decisions.preposterior`), the compute-optimal allocation and the prior's
conflict check read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..data.container import more_unique_than_tokens
from ..data.extent import per_direction
from ..errors import MissingColumnError, NonPositiveValueError
from ..laws import BASE_INPUTS, INPUTS, Law
from ..laws.flops import training_flops
from .checkpoint_noise import run_covariance


def law_log_loss(law: Law, natural: Mapping[str, np.ndarray], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """log L of each draw's law (``natural``: draws per parameter) at each point (``columns``: the law's inputs
    per point): (draw, point); inf or NaN where a draw's law is not finite."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.log(law.natural_loss({k: np.asarray(v, float)[:, None] for k, v in natural.items()},
                                       {k: np.asarray(v, float)[None, :] for k, v in columns.items()}))


def query_columns(params: Any, tokens: Any, flops: Any | None = None, inputs: Mapping[str, Any] | None = None,
                  law: Law | None = None) -> dict[str, np.ndarray]:
    """Broadcast query inputs to 1-D arrays; FLOPs default to 6 N D. ``inputs``: the law's further inputs by
    name (e.g. ``unique_tokens``); with ``law`` given, each input it reads must be there."""
    extra = dict(inputs or {})
    further = [i for i in INPUTS if i not in BASE_INPUTS]
    unknown = sorted(set(extra) - set(further))
    if unknown:
        raise ValueError(f"inputs= takes a law's further inputs {further}; got {unknown} (params, tokens and flops "
                         "are arguments of their own)")
    arrays = np.broadcast_arrays(np.atleast_1d(np.asarray(params, dtype=float)),
                                 np.atleast_1d(np.asarray(tokens, dtype=float)),
                                 *(np.atleast_1d(np.asarray(v, dtype=float)) for v in extra.values()))
    n, d = arrays[0].ravel(), arrays[1].ravel()
    more = {k: a.ravel().copy() for k, a in zip(extra, arrays[2:])}
    for name, v in {"params": n, "tokens": d, **more}.items():
        if np.any(~np.isfinite(v)) or np.any(v <= 0):
            raise NonPositiveValueError(f"{name} of a prediction must be positive and finite")
    if "unique_tokens" in more and more_unique_than_tokens(more["unique_tokens"], d).any():
        raise ValueError("unique_tokens of a prediction cannot exceed its tokens (a run sees each unique token at "
                         "least once)")
    c = np.broadcast_to(training_flops(n, d, flops), n.shape).copy()
    missing = [] if law is None else [i for i in law.further_inputs if i not in more]
    if missing:
        raise MissingColumnError(f"the {law.name!r} law reads {missing}: pass them with inputs={{{missing[0]!r}: ...}} "
                                 f"(CLI: --{missing[0].replace('_', '-')} VALUE)")
    return {"params": n, "tokens": d, "flops": c, **more}


@dataclass
class LawDraws:
    """``S`` draws of one family's law, noise and extrapolation discrepancy (draw ``s`` of every array belongs
    together)."""

    law: Law
    #: natural parameter -> (S,) draws, in the law's natural order
    natural: dict[str, np.ndarray]
    sigma_seed: np.ndarray
    sigma_obs: np.ndarray
    #: the discrepancy per direction of :data:`bayes_scaling.data.extent.DIRECTIONS`: (S, direction)
    kappa: np.ndarray
    drift: np.ndarray
    #: the discrepancy's growth with distance, its share common to a fit's families, the gamma shape of its
    #: tails and whether it is a relative error of the whole loss (1) or of the reducible loss (0) (S,); None: 1,
    #: 0, infinite (normal) and 0
    growth: np.ndarray | None = None
    shared: np.ndarray | None = None
    tails: np.ndarray | None = None
    on_loss: np.ndarray | None = None
    #: the OU checkpoint noise's correlation length and drift share (S,); None: independent checkpoint noise
    ou_length: np.ndarray | None = None
    ou_share: np.ndarray | None = None
    #: log10 of the family's largest trained compute (None: nothing trained yet)
    observed_log10_flops: float | None = None
    #: log10 of the largest compute of the families the draws come from (where a new family's discrepancy starts)
    population_log10_flops: float | None = None
    source: str = ""
    #: True: a family the draws' fit has not seen, drawn from its population (or from a borrowed prior)
    new_family: bool = False

    def __post_init__(self) -> None:
        self.natural = {k: np.asarray(self.natural[k], float) for k in self.law.natural}
        self.sigma_seed, self.sigma_obs = np.asarray(self.sigma_seed, float), np.asarray(self.sigma_obs, float)
        self.kappa, self.drift = per_direction(self.kappa), per_direction(self.drift)
        n = self.size
        self.growth = np.ones(n) if self.growth is None else np.asarray(self.growth, float)
        self.shared = np.zeros(n) if self.shared is None else np.asarray(self.shared, float)
        self.tails = np.full(n, np.inf) if self.tails is None else np.asarray(self.tails, float)
        self.on_loss = np.zeros(n) if self.on_loss is None else np.asarray(self.on_loss, float)
        if (self.ou_length is None) != (self.ou_share is None):
            raise ValueError("draws carry both ou_length and ou_share, or neither")

    @property
    def size(self) -> int:
        return len(self.sigma_seed)

    @property
    def log_floor(self) -> np.ndarray | None:
        """log E per draw: the irreducible loss the discrepancy leaves alone (None: the law has none)."""
        return np.log(self.natural[self.law.irreducible]) if self.law.irreducible else None

    def log_loss(self, params, tokens, flops=None, inputs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """log L of every draw at every point: (sample, point); ``flops`` default 6 N D."""
        return law_log_loss(self.law, self.natural, query_columns(params, tokens, flops, inputs, self.law))

    def noise_covariance(self, picks: np.ndarray, log10_tokens: np.ndarray, seed: bool = True) -> np.ndarray:
        """(len(picks), K, K): the covariance of one run's checkpoints at ``log10_tokens`` under each picked
        draw's noise (without the seed deviation when ``seed`` is False)."""
        ou = {} if self.ou_length is None else {"ou_share": self.ou_share[picks], "ou_length": self.ou_length[picks]}
        return run_covariance(log10_tokens, self.sigma_seed[picks] if seed else 0.0, self.sigma_obs[picks], **ou)

    def discrepancy_arrays(self) -> dict[str, np.ndarray]:
        """``kappa``, ``drift``, ``growth``, ``shared``, ``tails`` and ``on_loss`` by name
        (:func:`bayes_scaling.predict.discrepancy`, :func:`bayes_scaling.predict.with_discrepancy`)."""
        return {"kappa": self.kappa, "drift": self.drift, "growth": self.growth, "shared": self.shared,
                "tails": self.tails, "on_loss": self.on_loss}

    def to_dataset(self) -> xr.Dataset:
        """The natural parameters over ``sample`` (attributes ``new_family`` and ``source``)."""
        ds = xr.Dataset({k: ("sample", v) for k, v in self.natural.items()}, coords={"sample": np.arange(self.size)})
        ds.attrs.update(new_family=int(self.new_family), source=self.source)
        return ds
