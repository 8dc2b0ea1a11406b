"""The priors of the hierarchical model: one :class:`~.distribution.Prior` value per variable.

Each entry of :class:`Priors` is the declaration the model builds from (:func:`.hierarchical.build_model`
calls ``prior.create``), the density the extrapolation discrepancy and model averaging evaluate, and the line
that ``describe()``, the report and the docs print. Defaults are weakly informative and scaled by the data in one
place only, the median loss ``Lm`` (like bambi's auto-scaled priors): a law's own parameters declare their
population mean's location (a formula in ``loss``), its scale, their family-to-family spread and the sd of a
treatment's shift (:class:`~bayes_scaling.laws.Parameter`), and :meth:`Priors.default` turns them into values.
``print(Priors.default(law, median_loss))`` lists every prior with what it means.

Override any entry with a value::

    pri = Priors.default(law, median_loss=2.8)
    pri.mu["log_alpha"] = Prior("Normal", mu=math.log(0.3), sigma=0.3)
    pri.sigma_total = Prior("HalfNormal", sigma=0.02)
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Mapping

from ..errors import PriorError
from ..laws import Law
from .distribution import Prior

_REAL = (-math.inf, math.inf)
_POSITIVE = (0.0, math.inf)
_UNIT = (0.0, 1.0)

#: the entries that hold one prior per sampling parameter
PER_PARAMETER = ("mu", "tau", "treatment")


def _treatment_defaults(law: Law) -> dict[str, Prior]:
    """The treatment shift each parameter of ``law`` declares (a parameter declaring 0 is not shifted)."""
    return {p.sampling: Prior("Normal", mu=0.0, sigma=float(p.treatment)) for p in law.parameters if p.treatment > 0}


def _variable(support: tuple[float, float] | None, meaning: str, default: Any = MISSING) -> Any:
    """A field of :class:`Priors`: its default, the interval its variable's values lie in, what it means."""
    return field(default=default, metadata={"support": support, "meaning": meaning})


@dataclass
class Priors:
    """The model's priors, one :class:`Prior` per variable (``mu``, ``tau`` and ``treatment``: one per
    sampling parameter of the law). Build the defaults with :meth:`default`, then replace any entry."""

    mu: dict[str, Prior] = _variable(_REAL, "population mean of the parameter (the law's sampling scale)")
    tau: dict[str, Prior] = _variable(_POSITIVE, "family-to-family spread of the parameter; zero-avoiding, as "
                                                 "advised for few groups (Chung et al. 2013): no funnel at tau = 0")
    family_correlation: Prior = _variable(
        None, "correlation of the families' deviations: mild shrinkage towards independence", Prior("LKJ", eta=4.0))
    tau_level: Prior = _variable(
        _POSITIVE, "spread of a common loss-level factor: families also differ by log L + c_f at every scale "
                   "(different validation data or tokenizers)", Prior("Gamma", alpha=2.0, beta=10.0))
    sigma_total: Prior = _variable(_POSITIVE, "residual sd of log loss (seed + checkpoint)",
                                   Prior("HalfNormal", sigma=0.05))
    seed_share: Prior = _variable(_UNIT, "share of that variance due to seeds: sigma_seed = sigma_total "
                                         "sqrt(seed_share), sigma_obs = sigma_total sqrt(1 - seed_share)",
                                  Prior("Beta", alpha=2.0, beta=2.0))
    kappa: Prior = _variable(_POSITIVE, "extrapolation discrepancy, each direction (compute, size, tokens per "
                                        "parameter, epochs): sd of the log reducible loss L - E (discrepancy_scale="
                                        "'loss': of the log loss) per decade beyond the data "
                                        "(discrepancy_pooling='directions': of the scale they share)",
                             Prior("HalfNormal", sigma=0.15))
    kappa_spread: Prior = _variable(_POSITIVE, "sd of log kappa across directions about their common scale, "
                                               "where the directions share it (discrepancy_pooling='directions')",
                                    Prior("HalfNormal", sigma=1.0))
    drift: Prior = _variable(_REAL, "extrapolation drift, each direction: systematic bias of the log reducible loss "
                                    "(discrepancy_scale='loss': of the log loss) per decade "
                                    "(discrepancy_pooling='directions': its sd sets the HalfNormal "
                                    "of the directions' common drift scale)", Prior("Normal", mu=0.0, sigma=0.15))
    growth: Prior = _variable(_POSITIVE, "exponent of the discrepancy's growth with distance (1: linear)",
                              Prior("LogNormal", mu=0.0, sigma=0.35))
    shared: Prior = _variable(_UNIT, "share of the discrepancy common to all families of a fit",
                              Prior("Uniform", lower=0.0, upper=1.0))
    nu: Prior = _variable(_POSITIVE, "degrees of freedom of the robust likelihood (student_t only; Juarez & Steel "
                                     "2010)", Prior("Gamma", alpha=2.0, beta=0.1))
    ou_length: Prior = _variable(_POSITIVE, "correlation length of the checkpoint drift along a run, decades of "
                                            "tokens (checkpoint_noise='ou' only)",
                                 Prior("LogNormal", mu=math.log(0.3), sigma=1.0))
    ou_share: Prior = _variable(_UNIT, "share of the checkpoint variance that drifts (checkpoint_noise='ou' only)",
                                Prior("Beta", alpha=2.0, beta=2.0))
    #: None: the law's defaults
    treatment: dict[str, Prior] | None = _variable(
        _REAL, "shift of a treated family (e.g. grown from a smaller model) from its from-scratch twin; a parameter "
               "without one is not shifted", None)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def default(cls, law: Law, median_loss: float) -> "Priors":
        if not (median_loss > 0 and math.isfinite(median_loss)):
            raise PriorError(f"median_loss must be positive and finite, got {median_loss!r}")
        return cls(
            mu={p.sampling: Prior("Normal", mu=p.default_loc(median_loss), sigma=float(p.scale))
                for p in law.parameters},
            tau={p.sampling: Prior("Gamma", alpha=2.0, beta=2.0 / float(p.spread)) for p in law.parameters},
            treatment=_treatment_defaults(law) or None,
            notes=[f"locations scaled by the data's median loss {median_loss:.4g}"],
        )

    def validate(self, law: Law) -> "Priors":
        """Raise :class:`PriorError` for an entry that is not a :class:`Prior`, names an unknown parameter, or has
        values outside what its variable can take; return self."""
        for name, (support, _) in SLOTS.items():
            value = self.treatment_priors(law) if name == "treatment" else getattr(self, name)
            entries = value.items() if name in PER_PARAMETER else [(None, value)]
            if name in ("mu", "tau") and set(value) != set(law.sampling):
                raise PriorError(f"priors.{name} must give exactly the law's sampling parameters {list(law.sampling)}; "
                                 f"got {sorted(value)}")
            if name == "treatment" and set(value) - set(law.sampling):
                raise PriorError(f"priors.treatment names {sorted(set(value) - set(law.sampling))}, which are not "
                                 f"sampling parameters of the {law.name!r} law {list(law.sampling)}")
            for key, prior in entries:
                where = f"priors.{name}" + (f"[{key!r}]" if key is not None else "")
                if not isinstance(prior, Prior):
                    raise PriorError(f"{where} = {prior!r} is not a Prior; write e.g. Prior('Normal', mu=0, sigma=1)")
                if support is None:
                    if prior.dist != "LKJ":
                        raise PriorError(f"{where} = {prior}: the correlation's prior is an LKJ(eta=...)")
                    continue
                if prior.dist == "LKJ":
                    raise PriorError(f"{where} = {prior}: LKJ is a correlation matrix's prior")
                lo, hi = prior.support
                if lo < support[0] or hi > support[1]:
                    raise PriorError(f"{where} = {prior} takes values in ({lo:g}, {hi:g}); the variable lies in "
                                     f"({support[0]:g}, {support[1]:g}): choose a family with that support")
            if name in PER_PARAMETER and len({p.dist for _, p in entries}) > 1:
                raise PriorError(f"priors.{name}: every parameter's prior must be of one family (they are sampled as "
                                 f"one vector); got {sorted({p.dist for _, p in entries})}")
        bad = {k: str(p) for k, p in self.mu.items() if p.dist != "Normal"}
        if bad:
            raise PriorError(f"priors.mu {bad}: the population means are Normal (a borrowed prior replaces them by "
                             "a multivariate normal, and the fit's starting points use their location and scale)")
        if self.treatment is not None and not self.treatment:
            raise PriorError("priors.treatment is empty: a treatment would shift nothing; give the shifted "
                             "parameters' priors, or None for the law's defaults")
        return self

    def treatment_priors(self, law: Law) -> dict[str, Prior]:
        """The shift's prior per shifted sampling parameter (the law's defaults when none were given)."""
        return dict(self.treatment) if self.treatment is not None else _treatment_defaults(law)

    def describe(self) -> list[str]:
        """One line per variable, ``variable ~ Prior(...): what it means`` (the population layer's variables
        one line each, their parameters' priors in turn), then the notes."""
        lines = []
        for name, (_, meaning) in SLOTS.items():
            value = getattr(self, name)
            if name in PER_PARAMETER:
                if value:
                    lines.append(f"{name}[p] ~ " + "; ".join(f"{k}: {p}" for k, p in value.items()) + f": {meaning}")
            else:
                lines.append(f"{name} ~ {value}: {meaning}")
        return lines + self.notes

    def __str__(self) -> str:
        return "\n".join(self.describe())

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in PER_PARAMETER:
                out[f.name] = None if v is None else {k: p.to_dict() for k, p in v.items()}
            elif isinstance(v, Prior):
                out[f.name] = v.to_dict()
            else:
                out[f.name] = list(v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Priors":
        if "mu_loc" in d:
            d = _from_scales(d)
        kw = {}
        for k, v in d.items():
            if k in PER_PARAMETER:
                kw[k] = None if v is None else {p: Prior.from_dict(x) for p, x in v.items()}
            elif k == "notes":
                kw[k] = list(v)
            else:
                kw[k] = Prior.from_dict(v)
        return cls(**kw)


#: each variable's prior: (the interval its values must lie in, what it means), in the order of the fields
SLOTS: dict[str, tuple[tuple[float, float] | None, str]] = {
    f.name: (f.metadata["support"], f.metadata["meaning"]) for f in fields(Priors) if "meaning" in f.metadata}

#: the numbers of a fit stored with the priors written as numbers, where an older file lacks them
_SCALE_DEFAULTS = {"lkj_eta": 4.0, "level_scale": 0.2, "sigma_total_scale": 0.05, "seed_share_a": 2.0,
                   "seed_share_b": 2.0, "kappa_scale": 0.15, "drift_scale": 0.15, "growth_log_sd": 0.35, "nu_alpha": 2.0,
                   "nu_beta": 0.1, "ou_length_median": 0.3, "ou_length_log_sd": 1.0, "ou_share_a": 2.0, "ou_share_b": 2.0}


def _from_scales(d: Mapping) -> dict:
    """The entries of a fit stored with the priors written as numbers (``mu_loc``, ``tau_scale``, ...)."""
    d = {**_SCALE_DEFAULTS, **d}
    treat = {p: {"dist": "Normal", "mu": 0.0, "sigma": s} for p, s in (d.get("treatment_scale") or {}).items() if s > 0}
    return {
        "mu": {p: {"dist": "Normal", "mu": m, "sigma": d["mu_scale"][p]} for p, m in d["mu_loc"].items()},
        "tau": {p: {"dist": "Gamma", "alpha": 2.0, "beta": 2.0 / t} for p, t in d["tau_scale"].items()},
        "family_correlation": {"dist": "LKJ", "eta": d["lkj_eta"]},
        "tau_level": {"dist": "Gamma", "alpha": 2.0, "beta": 2.0 / d["level_scale"]},
        "sigma_total": {"dist": "HalfNormal", "sigma": d["sigma_total_scale"]},
        "seed_share": {"dist": "Beta", "alpha": d["seed_share_a"], "beta": d["seed_share_b"]},
        "kappa": {"dist": "HalfNormal", "sigma": d["kappa_scale"]},
        "drift": {"dist": "Normal", "mu": 0.0, "sigma": d["drift_scale"]},
        "growth": {"dist": "LogNormal", "mu": 0.0, "sigma": d["growth_log_sd"]},
        "nu": {"dist": "Gamma", "alpha": d["nu_alpha"], "beta": d["nu_beta"]},
        "ou_length": {"dist": "LogNormal", "mu": math.log(d["ou_length_median"]), "sigma": d["ou_length_log_sd"]},
        "ou_share": {"dist": "Beta", "alpha": d["ou_share_a"], "beta": d["ou_share_b"]},
        "treatment": treat or None,
        "notes": d.get("notes", []),
    }
