"""One prior as a value: a PyMC distribution's name and its parameters.

``Prior("Normal", mu=0, sigma=1)`` is what the model builds (:meth:`Prior.create`), what the extrapolation
discrepancy and model averaging evaluate with numpy (:meth:`Prior.logpdf`, :meth:`Prior.sample`), what a fit
file stores (:meth:`Prior.to_dict`) and what the report prints: its printed form is its description, so the
declaration, the construction and the documentation cannot drift apart.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

import numpy as np
from scipy import stats

from ..errors import PriorError

_INF = math.inf


def _uniform(lower: float, upper: float):
    return stats.uniform(lower, upper - lower)


#: family -> (its parameters in PyMC's names and order, its support (low, high) or a function of the parameters
#: giving it, the scipy distribution with the same density)
FAMILIES: dict[str, tuple[tuple[str, ...], Any, Callable | None]] = {
    "Normal": (("mu", "sigma"), (-_INF, _INF), lambda mu, sigma: stats.norm(mu, sigma)),
    "StudentT": (("nu", "mu", "sigma"), (-_INF, _INF), lambda nu, mu, sigma: stats.t(nu, mu, sigma)),
    "HalfNormal": (("sigma",), (0.0, _INF), lambda sigma: stats.halfnorm(scale=sigma)),
    "HalfCauchy": (("beta",), (0.0, _INF), lambda beta: stats.halfcauchy(scale=beta)),
    "Exponential": (("lam",), (0.0, _INF), lambda lam: stats.expon(scale=1.0 / lam)),
    "Gamma": (("alpha", "beta"), (0.0, _INF), lambda alpha, beta: stats.gamma(alpha, scale=1.0 / beta)),
    "InverseGamma": (("alpha", "beta"), (0.0, _INF), lambda alpha, beta: stats.invgamma(alpha, scale=beta)),
    "LogNormal": (("mu", "sigma"), (0.0, _INF), lambda mu, sigma: stats.lognorm(sigma, scale=math.exp(mu))),
    "Beta": (("alpha", "beta"), (0.0, 1.0), lambda alpha, beta: stats.beta(alpha, beta)),
    "Uniform": (("lower", "upper"), lambda lower, upper: (lower, upper), _uniform),
    "LKJ": (("eta",), None, None),  # a correlation matrix's prior (the family layer's correlation only)
}
#: parameters that may take any finite value; every other one must be positive
_UNBOUNDED = ("mu", "lower", "upper")


@functools.lru_cache(maxsize=512)
def _frozen(prior: "Prior"):
    """The scipy distribution of ``prior``, built once: freezing one writes its docstring, about 1 ms, which
    the discrepancy's ensemble sampler would otherwise pay for each prior at each of its thousands of steps."""
    return FAMILIES[prior.dist][2](**prior.params)


class Prior:
    """A prior distribution as a value: ``Prior("Gamma", alpha=2, beta=5)``.

    ``dist`` is a PyMC distribution's name (:data:`FAMILIES`); the keyword arguments are its parameters, by
    PyMC's names. Printed as ``Gamma(alpha=2, beta=5)``. Immutable and comparable; impossible parameters raise
    :class:`~bayes_scaling.errors.PriorError`.
    """

    __slots__ = ("dist", "params")

    def __init__(self, dist: str, **params: float) -> None:
        if dist not in FAMILIES:
            raise PriorError(f"unknown prior family {dist!r}; use one of {', '.join(FAMILIES)}")
        names = FAMILIES[dist][0]
        if set(params) != set(names):
            raise PriorError(f"{dist} takes the parameters {', '.join(names)}; got {', '.join(params) or 'none'}")
        values = {}
        for k in names:
            try:
                v = float(params[k])
            except (TypeError, ValueError):
                raise PriorError(f"{dist}({k}={params[k]!r}): a parameter must be a number") from None
            if not math.isfinite(v) or (k not in _UNBOUNDED and v <= 0):
                raise PriorError(f"{dist}({k}={params[k]!r}): must be a "
                                 f"{'finite' if k in _UNBOUNDED else 'positive finite'} number")
            values[k] = v
        if dist == "Uniform" and not values["lower"] < values["upper"]:
            raise PriorError(f"Uniform(lower={values['lower']:g}, upper={values['upper']:g}): lower must be below upper")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Prior is a value; build a new one, e.g. Prior('Normal', mu=0, sigma=2)")

    def __repr__(self) -> str:
        return f"{self.dist}({', '.join(f'{k}={v:.4g}' for k, v in self.params.items())})"

    __str__ = __repr__

    def __reduce__(self):  # copies and pickles rebuild through the constructor
        return (Prior.from_dict, (self.to_dict(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prior) and (self.dist, self.params) == (other.dist, other.params)

    def __hash__(self) -> int:
        return hash((self.dist, tuple(self.params.items())))

    def __getitem__(self, name: str) -> float:
        return self.params[name]

    @property
    def support(self) -> tuple[float, float]:
        """The interval the values lie in (a correlation matrix's prior has none)."""
        sup = FAMILIES[self.dist][1]
        if sup is None:
            raise PriorError(f"{self} is a correlation matrix's prior; it has no interval of values")
        return sup(**self.params) if callable(sup) else sup

    def inside(self, value: float) -> float:
        """``value`` where it lies inside the support, else the prior's median (a starting point the prior allows)."""
        lo, hi = self.support
        return float(value) if lo < value < hi else float(self._scipy().median())

    def _scipy(self):
        if FAMILIES[self.dist][2] is None:
            raise PriorError(f"{self} has no density of a number")
        return _frozen(self)

    @property
    def scale(self) -> float:
        """The prior's scale: its ``sigma`` where the family has one, otherwise its mean."""
        return self.params["sigma"] if "sigma" in self.params else float(self._scipy().mean())

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """The log density at ``x`` (-inf outside the support)."""
        return self._scipy().logpdf(x)

    def logpdf_unconstrained(self, x: np.ndarray) -> np.ndarray:
        """The log density of PyMC's unconstrained value of ``x`` (log for a positive support, log-odds for an
        interval): :meth:`logpdf` plus the log Jacobian of the transform."""
        lo, hi = self.support
        out = self.logpdf(x)
        if math.isfinite(lo):
            out = out + np.log(x - lo)
        if math.isfinite(hi):
            out = out + np.log(hi - x) - (np.log(hi - lo) if math.isfinite(lo) else 0.0)
        return out

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Draws from the prior with ``rng``."""
        p = self.params
        if self.dist == "Normal":
            return rng.normal(p["mu"], p["sigma"], size)
        if self.dist == "HalfNormal":
            return np.abs(rng.normal(0.0, p["sigma"], size))
        if self.dist == "LogNormal":
            return np.exp(p["mu"] + p["sigma"] * rng.standard_normal(size))
        if self.dist == "Uniform":
            return p["lower"] + (p["upper"] - p["lower"]) * rng.random(size)
        return self._scipy().rvs(size=size, random_state=rng)

    def create(self, name: str, **kwargs: Any):
        """The PyMC random variable ``name`` with this prior (inside a model context)."""
        import pymc as pm

        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def to_dict(self) -> dict:
        return {"dist": self.dist, **self.params}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Prior":
        d = dict(d)
        return cls(d.pop("dist"), **d)


def _stacked(priors: list[Prior]) -> tuple[Any, dict[str, np.ndarray]]:
    """The PyMC class of ``priors`` (all of one family) and their parameters stacked into vectors."""
    import pymc as pm

    (dist,) = {p.dist for p in priors}
    return getattr(pm, dist), {k: np.array([p.params[k] for p in priors]) for k in FAMILIES[dist][0]}


def vector_distribution(priors: list[Prior], shape: int):
    """One PyMC distribution (unnamed, ``.dist``) of a vector whose entries have ``priors``, all of one family."""
    cls, params = _stacked(priors)
    return cls.dist(**params, shape=shape)


def vector_variable(name: str, priors: list[Prior], **kwargs: Any):
    """The PyMC random variable ``name``, a vector whose entries have ``priors``, all of one family."""
    cls, params = _stacked(priors)
    return cls(name, **params, **kwargs)
