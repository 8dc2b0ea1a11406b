"""Priors of the hierarchical model and their defaults.

All location/scale numbers live on the sampling scale of the law (see :mod:`bayes_scaling.laws`).
Defaults are weakly informative and scaled by the data in one place only, the median loss
``Lm`` (like bambi's auto-scaled priors). The rows of a law's own parameters (``mu``, ``tau`` and the
treatment shift) are the law's declarations (:class:`~bayes_scaling.laws.Parameter`, printed by
``Law.describe()``); for the built-in laws they read:

=====================  ==============================  =============================================
parameter              prior                           reading
=====================  ==============================  =============================================
mu[log_E]              Normal(log(0.6 Lm), 0.5)        irreducible loss ~60% of a typical loss, x/÷ 2.7
mu[log_A_ref]          Normal(log(0.2 Lm), 1.0)        N-term at the reference size ~20% of the loss
mu[log_alpha]          Normal(log(0.35), 0.5)          exponent 0.13 ... 0.93 (95%)
mu[log_B_ref]          Normal(log(0.2 Lm), 1.0)        D-term at the reference tokens ~20% of the loss
mu[log_beta]           Normal(log(0.35), 0.5)          exponent 0.13 ... 0.93 (95%)
tau[p]                 Gamma(2, 2 / t), t = 0.4/0.15   family-to-family spread, mean t (0.15 for the
                                                       exponents); zero-avoiding, as advised for few
                                                       groups (Chung et al. 2013): no funnel at tau = 0
family correlation     LKJ(eta=4)                      mild shrinkage towards independence
tau_level              Gamma(2, 2 / 0.2)               spread of a common loss-level factor: families
                                                       also differ by log L + c_f at every scale
                                                       (different validation data or tokenizers)
sigma_total            HalfNormal(0.05)                residual sd of log loss (seed + checkpoint)
seed_share             Beta(2, 2)                      share of that variance due to seeds:
                                                       sigma_seed = sigma_total sqrt(seed_share),
                                                       sigma_obs = sigma_total sqrt(1 - seed_share)
kappa (extrapolation)  HalfNormal(0.15) per direction  sd of the log reducible loss L - E per decade
                                                       beyond the data (compute, size, tokens/param);
                                                       at a reducible third of the loss, 0.05 of log L
drift (extrapolation)  Normal(0, 0.15) per direction   systematic bias of the log reducible loss per decade
discrepancy growth     LogNormal(0, 0.35)              exponent of the distance (1: linear growth)
discrepancy shared     Uniform(0, 1)                   share of the discrepancy common to all families
treatment_shift        Normal(0, 0.4) on log_B_ref,    a treated family (e.g. grown from a smaller model)
                       Normal(0, 0.15) on log_beta;    differs from its from-scratch twin in the data term
                       other parameters not shifted    only, unless treatment_scale says otherwise
nu (student_t only)    Gamma(2, 0.1)                   degrees of freedom of the robust likelihood
                                                       (Juarez & Steel 2010): mean 20, 5% below 3.6
ou_length (OU only)    LogNormal(log 0.3, 1.0)         correlation length of the checkpoint drift along
                                                       a run, in decades of tokens: 0.06 ... 1.5 (90%)
ou_share (OU only)     Beta(2, 2)                      share of the checkpoint variance that drifts
                                                       (the rest is each evaluation's own jitter)
=====================  ==============================  =============================================

The compute law uses the same rows for ``log_E``, ``log_A_ref`` and ``log_alpha``; a treatment shifts its
only term (``log_A_ref`` by Normal(0, 0.4), ``log_alpha`` by Normal(0, 0.15)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

from ..errors import PriorError
from ..laws import Law


def _default_treatment_scale(law: Law) -> dict[str, float]:
    """The treatment-shift sd each parameter of ``law`` declares (0: not shifted)."""
    return {p.sampling: float(p.treatment) for p in law.parameters}


@dataclass
class Priors:
    """Prior specification (all on the law's sampling scale).

    Build the defaults with :meth:`default`, then override any entry::

        pri = Priors.default(law, median_loss=2.8)
        pri.mu_loc["log_alpha"] = math.log(0.3)
        pri.sigma_total_scale = 0.02
    """

    mu_loc: dict[str, float]
    mu_scale: dict[str, float]
    tau_scale: dict[str, float]
    lkj_eta: float = 4.0
    level_scale: float = 0.2
    sigma_total_scale: float = 0.05
    seed_share_a: float = 2.0
    seed_share_b: float = 2.0
    kappa_scale: float = 0.15
    drift_scale: float = 0.15
    growth_log_sd: float = 0.35
    nu_alpha: float = 2.0
    nu_beta: float = 0.1
    #: median and log-scale sd of the OU checkpoint noise's correlation length (decades of tokens)
    ou_length_median: float = 0.3
    ou_length_log_sd: float = 1.0
    ou_share_a: float = 2.0
    ou_share_b: float = 2.0
    #: sd of a treated family's shift from its twin per parameter; 0 = the parameter is not shifted
    treatment_scale: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def default(cls, law: Law, median_loss: float) -> "Priors":
        if not (median_loss > 0 and math.isfinite(median_loss)):
            raise PriorError(f"median_loss must be positive and finite, got {median_loss!r}")
        treatment = _default_treatment_scale(law)
        return cls(
            mu_loc={p.sampling: p.default_loc(median_loss) for p in law.parameters},
            mu_scale={p.sampling: float(p.scale) for p in law.parameters},
            tau_scale={p.sampling: float(p.spread) for p in law.parameters},
            treatment_scale=treatment if any(v > 0 for v in treatment.values()) else {},
            notes=[f"locations scaled by the data's median loss {median_loss:.4g}"],
        )

    def validate(self, law: Law) -> "Priors":
        """Raise :class:`PriorError` if any entry is impossible or names an unknown parameter."""
        for name in ("mu_loc", "mu_scale", "tau_scale"):
            table = getattr(self, name)
            if set(table) != set(law.sampling):
                raise PriorError(
                    f"priors.{name} must give exactly the law's sampling parameters {list(law.sampling)}; "
                    f"got {sorted(table)}"
                )
            for k, v in table.items():
                if not math.isfinite(float(v)):
                    raise PriorError(f"priors.{name}[{k!r}] = {v!r} is not finite")
                if name != "mu_loc" and float(v) <= 0:
                    raise PriorError(f"priors.{name}[{k!r}] = {v!r}: a scale must be positive")
        if self.treatment_scale:
            if set(self.treatment_scale) != set(law.sampling):
                raise PriorError(f"priors.treatment_scale must give exactly the law's sampling parameters "
                                 f"{list(law.sampling)}; got {sorted(self.treatment_scale)}")
            bad = {k: v for k, v in self.treatment_scale.items() if not (math.isfinite(float(v)) and float(v) >= 0)}
            if bad:
                raise PriorError(f"priors.treatment_scale {bad}: each must be >= 0 (0: not shifted)")
            if not any(float(v) > 0 for v in self.treatment_scale.values()):
                raise PriorError("priors.treatment_scale is 0 everywhere: a treatment would shift nothing")
        for name in ("lkj_eta", "level_scale", "sigma_total_scale", "seed_share_a", "seed_share_b", "kappa_scale", "drift_scale", "growth_log_sd",
                     "nu_alpha", "nu_beta",
                     "ou_length_median", "ou_length_log_sd", "ou_share_a", "ou_share_b"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise PriorError(f"priors.{name} = {v!r}: must be a positive finite number")
        return self

    def treatment_scales(self, law: Law) -> dict[str, float]:
        """The treatment-shift sd per sampling parameter (the defaults when none were given)."""
        return dict(self.treatment_scale) or _default_treatment_scale(law)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Priors":
        return cls(**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()})

    def describe(self) -> list[str]:
        """Human-readable lines, one per prior."""
        lines = [f"mu[{p}] ~ Normal({self.mu_loc[p]:.3f}, {self.mu_scale[p]:.3g})" for p in self.mu_loc]
        lines += [f"tau[{p}] ~ Gamma(2, 2 / {self.tau_scale[p]:.3g})" for p in self.tau_scale]
        lines += [f"family correlation ~ LKJ(eta={self.lkj_eta:g})",
                  f"tau_level (common loss-level factor of a family) ~ Gamma(2, 2 / {self.level_scale:g})",
                  f"sigma_total ~ HalfNormal({self.sigma_total_scale:g})",
                  f"seed_share ~ Beta({self.seed_share_a:g}, {self.seed_share_b:g})",
                  f"kappa (extrapolation, log reducible loss per decade beyond the data, each direction) ~ "
                  f"HalfNormal({self.kappa_scale:g})",
                  f"drift (extrapolation, same units) ~ Normal(0, {self.drift_scale:g})",
                  f"discrepancy growth with distance ~ LogNormal(0, {self.growth_log_sd:g}); its share common to all "
                  "families ~ Uniform(0, 1)",
                  f"nu (robust likelihood only) ~ Gamma({self.nu_alpha:g}, {self.nu_beta:g})",
                  f"ou_length (OU checkpoint noise only, decades of tokens) ~ "
                  f"LogNormal(log {self.ou_length_median:g}, {self.ou_length_log_sd:g})",
                  f"ou_share (OU checkpoint noise only) ~ Beta({self.ou_share_a:g}, {self.ou_share_b:g})"]
        lines += [f"treatment_shift[{p}] ~ Normal(0, {v:g}) (treated families only)"
                  for p, v in self.treatment_scale.items() if v > 0]
        return lines + self.notes
