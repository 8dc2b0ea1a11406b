"""Scaling laws: a named set of parameters and one formula, shared by the model (pytensor) and numpy.

A :class:`Law` is a tuple of :class:`Parameter` declarations and a formula of the inputs (``params``,
``tokens``, ``flops``, ``unique_tokens``), written once as text (:mod:`.expression`, parsed without ``eval``)
or as a Python function ``f(p, x, xp)`` of the natural parameters ``p`` and inputs ``x`` with ``xp`` the
array module (``numpy`` or ``pytensor.tensor``). Each parameter says how it is sampled and its default
prior; the hierarchical model, seed and checkpoint noise, the extrapolation discrepancy, borrowed priors,
predictions and the report work from these declarations alone. The built-in laws are instances:

Chinchilla law (Hoffmann et al. 2022)::

    L(N, D) = E + A N^-alpha + B D^-beta
            = exp(log_E) + exp(log_A_ref - alpha * log(N / N0)) + exp(log_B_ref - beta * log(D / D0))

Compute law: ``L(C) = E + A C^-alpha``. Data-constrained law (Muennighoff et al. 2023): the Chinchilla law
at the effective data ``D'`` and parameters ``N'`` of repeated tokens (:data:`DATA_CONSTRAINED`).

**Sampling scale.** A positive parameter (``transform="log"``) is sampled as its log, ``log_<name>``. An
*anchored* one, ``anchor=(input, exponent)``, is sampled as ``log_<name>_ref = log(value) - exponent *
log(x0)``, with ``x0`` the input's reference scale (the geometric mean of the data): ``exp(log_A_ref)`` is
the N-term's size *at the reference size N0*, which the data pin down directly. In the raw
parameterisation, log A and alpha are almost perfectly correlated (changing alpha by 0.01 moves log A by
0.01 * log N ~ 0.2); anchored at N0 they are nearly independent, which is what makes the posterior easy to
sample. A real-valued parameter (``transform="identity"``) is sampled as itself. The population
distribution of the hierarchical model lives on this scale.

**Priors.** Each parameter declares the prior of its population mean on the sampling scale,
``Normal(loc, scale)``, with ``loc`` a number or a formula in ``loss`` (the data's median loss), e.g.
``"log(0.6 * loss)"``: defaults scaled by the data. ``spread`` is the mean of its family-to-family sd;
``level`` marks the parameters that move together when a family's whole loss is higher by a factor
(different validation data or tokenizers, :attr:`Law.level_vector`); ``treatment`` the sd of a treated
family's shift (0: not shifted).

A formula of the form ``level + sum of amplitude * input**-exponent`` with anchored amplitudes (the
Chinchilla and compute laws, or the same written by a user) is recognised (:attr:`Law.terms`) and computed
on the sampling scale as a log-sum-exp by one fused kernel (:mod:`..model.fused_rows`); any other formula
goes through PyTensor's operations.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import LawError
from .expression import FUNCTIONS, Expression

#: the inputs every prediction has (FLOPs default to 6 N D)
BASE_INPUTS = ("params", "tokens", "flops")
#: the data columns a law may read (``unique_tokens``: distinct tokens seen, for repeated data)
INPUTS = (*BASE_INPUTS, "unique_tokens")
TRANSFORMS = ("log", "identity")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a law: how it is sampled, its default prior and its spread across families.

    ``loc`` and ``scale``: the population mean's prior ``Normal(loc, scale)`` on the sampling scale; ``loc``
    may be a formula in ``loss``, the data's median loss. ``spread``: the mean of the family-to-family sd
    (``Gamma(2, 2 / spread)``). ``anchor=(input, exponent)``: sampled as ``log(value) - exponent *
    log(x0)`` (the exponent a parameter's name or a number). ``level``: moves with a family's loss level.
    ``treatment``: the default sd of a treated family's shift (0: a treatment leaves it alone).
    """

    name: str
    loc: float | str = 0.0
    scale: float = 1.0
    spread: float = 0.4
    transform: str = "log"
    anchor: tuple[str, str | float] | None = None
    level: bool = False
    treatment: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier()) or self.name in FUNCTIONS:
            raise LawError(f"parameter name {self.name!r} must be a plain identifier (letters, digits, _), not a "
                           f"function's name ({', '.join(FUNCTIONS)})")
        if self.transform not in TRANSFORMS:
            raise LawError(f"parameter {self.name!r}: transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.anchor is not None:
            object.__setattr__(self, "anchor", tuple(self.anchor))
            if self.transform != "log" or len(self.anchor) != 2 or self.anchor[0] not in INPUTS:
                raise LawError(f"parameter {self.name!r}: anchor=(input, exponent) needs transform='log' and an "
                               f"input among {INPUTS}; got anchor={self.anchor!r}")
        for what in ("scale", "spread"):
            v = getattr(self, what)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise LawError(f"parameter {self.name!r}: {what} must be a positive number, got {v!r}")
        if not (isinstance(self.treatment, (int, float)) and math.isfinite(self.treatment) and self.treatment >= 0):
            raise LawError(f"parameter {self.name!r}: treatment must be >= 0 (0: not shifted), got {self.treatment!r}")
        self.default_loc(1.0)  # a formula location must read only `loss`

    @property
    def sampling(self) -> str:
        """The name of this parameter on the sampling scale."""
        if self.transform == "identity":
            return self.name
        return f"log_{self.name}_ref" if self.anchor else f"log_{self.name}"

    def default_loc(self, median_loss: float) -> float:
        """The prior location on the sampling scale for data whose median loss is ``median_loss``."""
        if not isinstance(self.loc, str):
            return float(self.loc)
        expr = Expression.parse(self.loc)
        if not expr.names <= {"loss"}:
            raise LawError(f"parameter {self.name!r}: loc={self.loc!r} may read only 'loss' (the data's median "
                           f"loss); it reads {sorted(expr.names - {'loss'})}")
        value = float(expr.evaluate({"loss": float(median_loss)}, np))
        if not math.isfinite(value):
            raise LawError(f"parameter {self.name!r}: loc={self.loc!r} is not finite at a median loss of {median_loss:g}")
        return value

    def describe(self) -> str:
        """One line: how the parameter is sampled and its declared prior."""
        how = {"identity": self.name, "log": f"log {self.name}"}[self.transform]
        if self.anchor:
            inp, e = self.anchor
            how = f"log {self.name} - {e} log({inp}0)"
        extra = (", level" if self.level else "") + (f", treatment sd {self.treatment:g}" if self.treatment else "")
        return f"{self.sampling} = {how} ~ Normal({self.loc}, {self.scale:g}); family spread {self.spread:g}{extra}"

    def to_dict(self) -> dict:
        return {"name": self.name, "loc": self.loc, "scale": self.scale, "spread": self.spread,
                "transform": self.transform, "anchor": list(self.anchor) if self.anchor else None,
                "level": self.level, "treatment": self.treatment}


@dataclass(frozen=True)
class Law:
    """A scaling law: its parameters, inputs and formula (see the module docstring).

    ``formula``: the loss as text (parsed without ``eval``); with ``function`` given it only describes it.
    ``function(p, x, xp)``: the loss from natural parameters ``p`` and inputs ``x`` with array module ``xp``;
    a law written this way is saved by name only, so :func:`register` it before loading its fits.
    ``inputs``: the data columns it reads (default: those the formula names). ``irreducible``: the parameter
    that is the loss no scale removes (default: the constant of a power-sum formula); the extrapolation
    discrepancy scales the loss above it.
    """

    name: str
    formula: str
    parameters: tuple[Parameter, ...]
    inputs: tuple[str, ...] = ()
    irreducible: str | None = None
    function: Callable[..., Any] | None = field(default=None, compare=False)
    description: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.strip()):
            raise LawError("a law needs a non-empty name")
        params = tuple(self.parameters)
        object.__setattr__(self, "parameters", params)
        names = [p.name for p in params]
        if not params or len(set(names)) != len(names):
            raise LawError(f"law {self.name!r}: parameters must be given, each name once; got {names}")
        expr = None if self.function is not None else Expression.parse(self.formula)
        inputs = tuple(self.inputs) or tuple(i for i in INPUTS if expr is not None and i in expr.names)
        object.__setattr__(self, "inputs", inputs)
        if not inputs or not set(inputs) <= set(INPUTS):
            raise LawError(f"law {self.name!r}: its inputs must be among {INPUTS}; got {list(inputs)}")
        if expr is not None:
            unknown = sorted(expr.names - set(names) - set(inputs))
            unused = sorted(set(names) - expr.names)
            if unknown or unused:
                raise LawError(f"law {self.name!r}: the formula {self.formula!r} "
                               + (f"reads {unknown}, which are neither declared parameters {names} nor inputs "
                                  f"{list(INPUTS)}" if unknown else f"does not use the parameters {unused}"))
        by_name = {p.name: p for p in params}
        for p in params:
            if p.anchor and isinstance(p.anchor[1], str):
                e = by_name.get(p.anchor[1])
                if e is None or e.anchor:
                    raise LawError(f"law {self.name!r}: parameter {p.name!r} is anchored with exponent "
                                   f"{p.anchor[1]!r}, which must be a declared parameter without an anchor")
            if p.anchor and p.anchor[0] not in inputs:
                raise LawError(f"law {self.name!r}: parameter {p.name!r} is anchored at {p.anchor[0]!r}, which the "
                               f"law does not read (inputs {list(inputs)})")
        terms, level = _power_terms(expr, by_name, inputs)
        irreducible = self.irreducible if self.irreducible is not None else level
        if irreducible is not None and (irreducible not in by_name or by_name[irreducible].transform != "log"
                                        or by_name[irreducible].anchor):
            raise LawError(f"law {self.name!r}: irreducible={irreducible!r} must name a positive (transform='log'), "
                           "unanchored parameter")
        object.__setattr__(self, "irreducible", irreducible)
        object.__setattr__(self, "_sampling_of", {p.name: p.sampling for p in params})
        object.__setattr__(self, "_expression", expr)
        object.__setattr__(self, "_terms", terms)

    # ------------------------------------------------------------------ declarations
    @property
    def natural(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def sampling(self) -> tuple[str, ...]:
        return tuple(p.sampling for p in self.parameters)

    @property
    def one_line(self) -> str:
        """The formula on one line (its definitions separated by "; "), for titles and reports."""
        return "; ".join(line.strip() for line in self.formula.strip().splitlines() if line.strip())

    @property
    def further_inputs(self) -> tuple[str, ...]:
        """The inputs beyond parameters, tokens and FLOPs (each prediction must be given them)."""
        return tuple(i for i in self.inputs if i not in BASE_INPUTS)

    def sampling_name(self, natural: str) -> str:
        return self._sampling_of[natural]  # type: ignore[attr-defined]

    @property
    def terms(self) -> tuple[tuple[str, str, str], ...]:
        """``(amplitude, exponent, input)`` of each power term when the law is ``irreducible + sum of
        anchored power terms`` (computed on the sampling scale and by the fused kernel); else empty."""
        return self._terms  # type: ignore[attr-defined]

    @property
    def level_vector(self) -> np.ndarray:
        """The sampling-scale direction that multiplies the whole loss by a constant.

        For the built-in laws, adding ``c`` to ``log_E`` and to every anchored amplitude adds ``c`` to
        ``log L`` at every (N, D): the direction along which families evaluated on different validation data
        (or tokenizers) differ most. 1 on the parameters declared ``level``, 0 elsewhere.
        """
        return np.array([1.0 if p.level else 0.0 for p in self.parameters])

    def describe(self) -> list[str]:
        """The formula and one line per parameter (its sampling scale and declared prior)."""
        return [f"{self.name}: {self.formula}"] + [p.describe() for p in self.parameters]

    # ------------------------------------------------------------------ evaluation
    def log_loss(self, theta: Mapping[str, Any], z: Mapping[str, Any], xp: Any = np,
                 ref: Mapping[str, float] | None = None) -> Any:
        """log L from sampling-scale ``theta`` (arrays that broadcast) and ``z = log(x / x0)`` per input;
        ``ref`` (the reference scales x0: numbers, or tensors in a model) is needed by laws that are not power
        sums."""
        if self.terms:
            parts = [theta[self.sampling_name(self.irreducible)]]  # type: ignore[arg-type]
            for amp, expo, inp in self.terms:
                parts.append(theta[self.sampling_name(amp)] - xp.exp(theta[self.sampling_name(expo)]) * z[inp])
            return log_sum_exp(parts, xp)
        if ref is None:
            raise ValueError(f"the {self.name!r} law needs the reference scales (ref=) to evaluate")
        x = {inp: ref[inp] * xp.exp(z[inp]) for inp in self.inputs}
        return xp.log(self.natural_loss(self.to_natural(theta, ref, xp), x, xp))

    def loss(self, theta: Mapping[str, Any], z: Mapping[str, Any], xp: Any = np,
             ref: Mapping[str, float] | None = None) -> Any:
        return xp.exp(self.log_loss(theta, z, xp, ref))

    def natural_loss(self, natural: Mapping[str, Any], x: Mapping[str, Any], xp: Any = np) -> Any:
        """L in natural units, e.g. E + A N^-alpha + B D^-beta (for checks and baselines)."""
        if self.function is not None:
            return self.function(natural, x, xp)
        if self.terms:
            total = natural[self.irreducible]
            for amp, expo, inp in self.terms:
                total = total + natural[amp] * x[inp] ** (-natural[expo])
            return total
        return self._expression.evaluate({**natural, **{k: x[k] for k in self.inputs}}, xp)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ natural <-> sampling
    def to_natural(self, theta: Mapping[str, Any], ref: Mapping[str, float], xp: Any = np) -> dict[str, Any]:
        """Sampling-scale parameters -> natural ones (an anchored A = exp(log_A_ref) * N0^alpha)."""
        out: dict[str, Any] = {}
        for p in sorted(self.parameters, key=lambda q: q.anchor is not None):
            s = theta[p.sampling]
            if p.transform == "identity":
                out[p.name] = s
            elif p.anchor:
                out[p.name] = xp.exp(s + _anchor_exponent(p, out) * xp.log(ref[p.anchor[0]]))
            else:
                out[p.name] = xp.exp(s)
        return {k: out[k] for k in self.natural}

    def from_natural(self, natural: Mapping[str, float], ref: Mapping[str, float]) -> dict[str, Any]:
        """Natural parameters -> sampling scale (the inverse of :meth:`to_natural`)."""
        out = {}
        for p in self.parameters:
            v = natural[p.name]
            if p.transform == "identity":
                out[p.sampling] = v
            elif p.anchor:
                out[p.sampling] = np.log(v) - _anchor_exponent(p, natural) * np.log(ref[p.anchor[0]])
            else:
                out[p.sampling] = np.log(v)
        return {k: out[k] for k in self.sampling}

    # ------------------------------------------------------------------ storage
    @property
    def storable(self) -> bool:
        """Whether :meth:`to_dict` rebuilds the law (a formula law; a function is stored by name only)."""
        return self.function is None

    def to_dict(self) -> dict:
        if not self.storable:
            raise LawError(f"the {self.name!r} law is a Python function and cannot be written to a file; "
                           "register it (bayes_scaling.laws.register) wherever its fits are loaded")
        return {"name": self.name, "formula": self.formula, "parameters": [p.to_dict() for p in self.parameters],
                "inputs": list(self.inputs), "irreducible": self.irreducible, "description": self.description}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Law":
        return _law_from_json(json.dumps(dict(d), sort_keys=True))


def _anchor_exponent(p: Parameter, natural: Mapping[str, Any]) -> Any:
    """The exponent of an anchored parameter: a number, or the natural value of the parameter it names."""
    e = p.anchor[1]  # type: ignore[index]
    return natural[e] if isinstance(e, str) else float(e)


@functools.lru_cache(maxsize=64)
def _law_from_json(text: str) -> Law:
    d = json.loads(text)
    params = tuple(Parameter(**{**p, "anchor": tuple(p["anchor"]) if p.get("anchor") else None})
                   for p in d["parameters"])
    return Law(name=d["name"], formula=d["formula"], parameters=params, inputs=tuple(d.get("inputs") or ()),
               irreducible=d.get("irreducible"), description=d.get("description", ""))


def _power_terms(expr: Expression | None, by_name: Mapping[str, Parameter], inputs: tuple[str, ...]
                 ) -> tuple[tuple[tuple[str, str, str], ...], str | None]:
    """The power terms and the constant of a formula ``constant + sum of anchored power terms``; else ((), None)."""
    found = None if expr is None else expr.power_sum()
    if found is None:
        return (), None
    level, terms = found
    ok = level in by_name and by_name[level].transform == "log" and not by_name[level].anchor
    for amp, expo, inp in terms:
        ok = ok and inp in inputs and amp in by_name and expo in by_name
        ok = ok and by_name[amp].anchor == (inp, expo) and by_name[expo].transform == "log"
    return (terms, level) if ok else ((), None)


def log_sum_exp(parts: list[Any], xp: Any) -> Any:
    total = xp.exp(parts[0])
    for p in parts[1:]:
        total = total + xp.exp(p)
    return xp.log(total)


#: the defaults of the built-in laws' priors (see :mod:`bayes_scaling.model.priors` for their reading)
_EXPONENT = dict(loc="log(0.35)", scale=0.5, spread=0.15)
_AMPLITUDE = dict(loc="log(0.2 * loss)", scale=1.0, spread=0.4, level=True)
_FLOOR = Parameter("E", loc="log(0.6 * loss)", scale=0.5, spread=0.4, level=True)

CHINCHILLA = Law(
    name="chinchilla",
    formula="E + A * params**-alpha + B * tokens**-beta",
    parameters=(_FLOOR, Parameter("A", anchor=("params", "alpha"), **_AMPLITUDE), Parameter("alpha", **_EXPONENT),
                Parameter("B", anchor=("tokens", "beta"), treatment=0.4, **_AMPLITUDE),
                Parameter("beta", treatment=0.15, **_EXPONENT)),
    description="Hoffmann et al. 2022: L = E + A N^-alpha + B D^-beta",
)

COMPUTE = Law(
    name="compute",
    formula="E + A * flops**-alpha",
    parameters=(_FLOOR, Parameter("A", anchor=("flops", "alpha"), treatment=0.4, **_AMPLITUDE),
                Parameter("alpha", treatment=0.15, **_EXPONENT)),
    description="L = E + A C^-alpha",
)

DATA_CONSTRAINED = Law(
    name="data_constrained",
    formula=("U_N = minimum(params, (alpha * A / (beta * B))**(1 / alpha) * unique_tokens**(beta / alpha))\n"
             "N_eff = U_N * (1 + R_N * (1 - exp(-(params / U_N - 1) / R_N)))\n"
             "D_eff = unique_tokens * (1 + R_D * (1 - exp(-(tokens / unique_tokens - 1) / R_D)))\n"
             "E + A / N_eff**alpha + B / D_eff**beta"),
    parameters=(_FLOOR, Parameter("A", anchor=("params", "alpha"), **_AMPLITUDE), Parameter("alpha", **_EXPONENT),
                Parameter("B", anchor=("tokens", "beta"), treatment=0.4, **_AMPLITUDE),
                Parameter("beta", treatment=0.15, **_EXPONENT),
                # R*: the epochs (repetitions) after which a repeated token is worth 1/e of a new one; a wide prior
                # over 0.5 ... 200 (95%)
                Parameter("R_D", loc="log(10)", scale=1.5, spread=0.4),
                Parameter("R_N", loc="log(10)", scale=1.5, spread=0.4)),
    irreducible="E",
    description=("Muennighoff et al. 2023: the Chinchilla law at the effective data D' = U_D (1 + R*_D (1 - "
                 "exp(-R_D / R*_D))), R_D = D / U_D - 1 (epochs beyond the first), and the effective parameters N' "
                 "likewise beyond U_N = min(N, the compute-optimal size for U_D)"),
)

LAWS: dict[str, Law] = {law.name: law for law in (CHINCHILLA, COMPUTE, DATA_CONSTRAINED)}
#: the names of the built-in laws (a fit stores a built-in law by name, any other by its declaration)
BUILT_IN_LAWS = frozenset(LAWS)


def register(law: Law) -> Law:
    """Make ``law`` known by its name (``bs.fit(data, "name")``, the CLI's ``--law``, loading its fits)."""
    if not isinstance(law, Law):
        raise LawError(f"register takes a Law, got {type(law).__name__}")
    if law.name in BUILT_IN_LAWS and LAWS[law.name] is not law:
        raise LawError(f"{law.name!r} is a built-in law; give your law another name")
    LAWS[law.name] = law
    return law


def get_law(name: "str | Law") -> Law:
    """Look a law up by name (the built-ins and those :func:`register` made known), or pass a Law through."""
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise LawError(f"unknown law {name!r}; choose one of {sorted(LAWS)}, or pass a bayes_scaling.Law "
                       "(register it to use it by name)") from None


def reference_scales(law: Law, columns: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Reference scale of each input: the geometric mean of its values (inside the data)."""
    return {inp: float(np.exp(np.mean(np.log(np.asarray(columns[inp], dtype=float))))) for inp in law.inputs}


def standardized_inputs(law: Law, columns: Mapping[str, Any], ref: Mapping[str, float]) -> dict[str, np.ndarray]:
    """``log(x / x0)`` of each input of the law."""
    return {inp: np.log(np.asarray(columns[inp], dtype=float)) - np.log(ref[inp]) for inp in law.inputs}


def sampling_moments(law: Law, natural: Mapping[str, np.ndarray], ref: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of natural-unit draws moved to the sampling scale at ``ref`` (finite draws only)."""
    samp = law.from_natural(natural, ref)
    x = np.column_stack([np.asarray(samp[p], dtype=float) for p in law.sampling])
    x = x[np.all(np.isfinite(x), axis=1)]
    return x.mean(axis=0), np.cov(x, rowvar=False) + 1e-10 * np.eye(x.shape[1])
