"""Convergence diagnostics, reported loudly: divergences, R-hat, bulk and tail ESS."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import arviz as az
import numpy as np

from ..errors import SamplingWarning

RHAT_MAX = 1.01
ESS_MIN = 400


@dataclass
class Diagnostics:
    divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    chains: int
    draws: int
    sampling_seconds: float
    worst: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return asdict(self)


def diagnose(idata: az.InferenceData, var_names: list[str], sampling_seconds: float = float("nan"),
             rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> Diagnostics:
    """Compute the diagnostics of ``var_names`` (population parameters and noise scales)."""
    post = idata.posterior
    names = [v for v in var_names if v in post]
    one_chain = post.sizes["chain"] < 2
    with warnings.catch_warnings():  # one chain: ArviZ warns that R-hat needs two; said once below instead
        warnings.simplefilter("ignore")
        summ = az.summary(idata, var_names=names, kind="diagnostics")
    # constant entries (a correlation's diagonal) have no R-hat; with one chain no entry has one
    summ = summ.dropna(subset=["ess_bulk"] if one_chain else ["r_hat"])
    div = int(np.asarray(idata.sample_stats["diverging"]).sum()) if "diverging" in idata.sample_stats else 0
    d = Diagnostics(
        divergences=div,
        max_rhat=float(summ["r_hat"].max()),
        min_ess_bulk=float(summ["ess_bulk"].min()),
        min_ess_tail=float(summ["ess_tail"].min()),
        chains=int(post.sizes["chain"]),
        draws=int(post.sizes["draw"]),
        sampling_seconds=float(sampling_seconds),
        worst={"rhat": "n/a" if one_chain else str(summ["r_hat"].idxmax()),
               "ess_bulk": str(summ["ess_bulk"].idxmin()), "ess_tail": str(summ["ess_tail"].idxmin())},
    )
    failed = failed_checks(d, rhat_max, ess_min)
    if one_chain:
        d.problems.append("one chain: R-hat, the check that chains agree, cannot be computed; run chains=2 or more")
    if failed["divergences"]:
        d.problems.append(f"{d.divergences} divergent transitions: the posterior may be biased; "
                          "raise target_accept or check the priors")
    if failed["rhat"] and not one_chain:
        d.problems.append(f"max R-hat {d.max_rhat:.3f} > {rhat_max} (worst: {d.worst['rhat']}): "
                          "chains disagree; run more tuning/draws")
    if failed["ess_bulk"]:
        d.problems.append(f"min bulk ESS {d.min_ess_bulk:.0f} < {ess_min} (worst: {d.worst['ess_bulk']}); "
                          "run more draws")
    if failed["ess_tail"]:
        d.problems.append(f"min tail ESS {d.min_ess_tail:.0f} < {ess_min} (worst: {d.worst['ess_tail']}); "
                          "intervals are unreliable; run more draws")
    return d


def failed_checks(d: Diagnostics, rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN) -> dict[str, bool]:
    """Which checks ``d`` fails, by name (``divergences``, ``rhat``, ``ess_bulk``, ``ess_tail``): the one
    place the thresholds are compared, for :func:`diagnose`'s problems and the ``until_converged`` stop rule."""
    return {"divergences": d.divergences > 0, "rhat": not d.max_rhat <= rhat_max,  # NaN (one chain) fails
            "ess_bulk": d.min_ess_bulk < ess_min, "ess_tail": d.min_ess_tail < ess_min}


def warn_if_problems(d: Diagnostics, what: str = "fit") -> None:
    for p in d.problems:
        warnings.warn(f"{what}: {p}", SamplingWarning, stacklevel=3)
