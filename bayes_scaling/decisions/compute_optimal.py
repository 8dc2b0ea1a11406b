"""Compute-optimal allocation under uncertainty: the posterior of N*, D*, D*/N* and the loss there.

For each posterior draw of a family's law parameters (or of a new family drawn from the
population), the allocation that minimises the expected loss at budget C
(:mod:`bayes_scaling.laws.solve`: closed form for C = 6 N D and the Chinchilla form, a numeric search for
any other FLOPs function or law). The loss at the optimum carries the fit's extrapolation discrepancy when C lies beyond the
family's largest fitted compute; the discrepancy is a function of C only, so it does not move N*.

>>> opt = bs.decisions.compute_optimal(fit, budget=[1e21, 5.76e23])          # doctest: +SKIP
>>> bs.decisions.summarize(opt)                                     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from ..data.extent import distances
from ..errors import NonPositiveValueError, UnsupportedLawError
from ..laws import solve
from ..laws.flops import training_flops
from ..predict import discrepancy, with_discrepancy

FlopsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _one_family(fit: Any, family: str | None) -> str:
    if family is not None:
        return family
    if len(fit.families) == 1:
        return fit.families[0]
    raise ValueError(f"the fit has several families {fit.families}; name one with family= (or a new family's name "
                     "with family=NAME, new_family=True)")


def require_tokens_law(fit: Any, what: str, *, chinchilla_form: bool = False) -> None:
    """Decisions about N and D need a law of N and D alone (and, with ``chinchilla_form``, one of the form
    E + A N^-alpha + B D^-beta, which they solve in closed form)."""
    law = fit.law
    if not {"params", "tokens"} <= set(law.inputs) or law.further_inputs:
        raise UnsupportedLawError(f"{what} needs a law of parameters and tokens alone; this fit uses the "
                                  f"{law.name!r} law ({law.one_line}), which reads {list(law.inputs)}. Refit with "
                                  "law='chinchilla'.")
    if chinchilla_form and not is_chinchilla_form(law):
        raise UnsupportedLawError(f"{what} is solved for laws of the form E + A N^-alpha + B D^-beta (parameters "
                                  f"named E, A, alpha, B, beta); the {law.name!r} law is {law.one_line}")


def is_chinchilla_form(law: Any) -> bool:
    """Whether ``law`` is E + A N^-alpha + B D^-beta under these names (the closed forms of :mod:`..laws.solve`)."""
    return law.irreducible == "E" and law.terms == (("A", "alpha", "params"), ("B", "beta", "tokens"))


def compute_optimal(fit: Any, budget: float | Sequence[float], family: str | None = None, *,
                    new_family: bool = False, flops: FlopsFn | None = None, random_seed: int = 0) -> xr.Dataset:
    """Posterior draws of the compute-optimal allocation at each ``budget`` (FLOPs).

    ``flops(N, D)``: the training FLOPs of N parameters on D tokens (default ``6 N D``, solved in
    closed form); it must increase with D. ``new_family=True``: ``family`` is a family the fit has not seen,
    drawn from the population. Returns a Dataset over (``budget``, ``sample``) with
    ``params``, ``tokens``, ``tokens_per_param``, ``loss`` (the law at the optimum) and
    ``expected_loss`` (with the extrapolation discrepancy). Summarise with
    :func:`bayes_scaling.decisions.summarize`.
    """
    require_tokens_law(fit, "compute-optimal allocation")
    family = _one_family(fit, family)
    budgets = np.atleast_1d(np.asarray(budget, dtype=float))
    if np.any(~np.isfinite(budgets)) or np.any(budgets <= 0):
        raise NonPositiveValueError(f"budgets must be positive finite FLOPs, got {budgets.tolist()}")
    draws = fit.family_draws(family, new_family=new_family, random_seed=random_seed)
    nat = draws.natural
    if flops is None and is_chinchilla_form(fit.law):
        col = {k: v[None, :] for k, v in nat.items()}
        opt = solve.closed_form_optimum(**col, flops=budgets[:, None])
    else:  # any other FLOPs function or law: a search over N per draw
        flops_fn = flops or training_flops
        law_nat = {k: v[:, None] for k, v in nat.items()}

        def loss_fn(n: np.ndarray, d: np.ndarray) -> np.ndarray:
            return fit.law.natural_loss(law_nat, {"params": n, "tokens": d, "flops": flops_fn(n, d)})

        per = [solve.optimum_search(loss_fn, c, flops_fn) for c in budgets]
        opt = {k: np.stack([p[k] for p in per]) for k in ("params", "tokens", "loss")}
    # the distance of each budget's median optimum from the family's data; one family: one shared draw of z
    cols = {k: np.median(opt[k], axis=1) for k in ("params", "tokens")}
    cols["flops"] = budgets
    dist = distances(fit.spec.extents, [family] * len(budgets), cols)
    disc = draws.discrepancy_arrays()
    log_delta = discrepancy(disc, dist, np.random.default_rng(random_seed + 1), groups=[family] * len(budgets)).T
    log_floor = None if draws.log_floor is None else draws.log_floor[None, :]
    expected = np.exp(with_discrepancy(np.log(opt["loss"]), log_floor, log_delta,
                                       disc["on_loss"][None, :]))  # (budget, sample)
    dims = ("budget", "sample")
    ds = xr.Dataset(
        {"params": (dims, opt["params"]), "tokens": (dims, opt["tokens"]),
         "tokens_per_param": (dims, opt["tokens"] / opt["params"]), "loss": (dims, opt["loss"]),
         "expected_loss": (dims, expected)},
        coords={"budget": budgets, "sample": np.arange(draws.size)})
    ds.attrs.update(family=family, new_family=int(draws.new_family),
                    flops="6 N D" if flops is None else getattr(flops, "__name__", "user function"),
                    description="compute-optimal N*, D* per posterior draw; loss: the law at the optimum; "
                                "expected_loss: with the extrapolation discrepancy beyond the fitted compute")
    return ds
