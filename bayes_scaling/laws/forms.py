"""Scaling-law functional forms as pure functions, usable with numpy and pytensor.

Every law is written on the *sampling scale*, anchored at reference scales inside the data:

Chinchilla law (Hoffmann et al. 2022)::

    L(N, D) = E + A N^-alpha + B D^-beta
            = exp(log_E) + exp(log_A_ref - alpha * log(N / N0)) + exp(log_B_ref - beta * log(D / D0))

with ``alpha = exp(log_alpha)``, ``beta = exp(log_beta)``, ``A = exp(log_A_ref) * N0^alpha`` and
``B = exp(log_B_ref) * D0^beta``. ``exp(log_A_ref)`` is the size of the N-term *at the reference size
N0* (the geometric mean of the data's sizes), which the data pin down directly. In the raw
parameterisation, log A and alpha are almost perfectly correlated (changing alpha by 0.01 moves log A
by 0.01 * log N ~ 0.2); anchored at N0 they are nearly independent, which is what makes the posterior
easy to sample. The same holds for (log B, beta) with D0.

Compute law::

    L(C) = E + A C^-alpha = exp(log_E) + exp(log_A_ref - alpha * log(C / C0))

All sampling-scale parameters are unconstrained reals; the population distribution of the
hierarchical model lives on this scale.

Each function takes ``xp``, a module with ``exp`` and ``log`` (``numpy`` or ``pytensor.tensor``),
so that the model (pytensor) and the prediction (numpy) share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Law:
    """A scaling law: its parameters (natural and sampling scale), inputs and formulas.

    ``inputs`` name the data columns the law uses (``params``, ``tokens`` or ``flops``); ``z`` passed
    to :meth:`log_loss` holds ``log(x / x0)`` for each input, x0 being its reference scale.
    ``term_inputs`` maps each natural amplitude (A, B) to its input and exponent, to convert
    between natural and anchored amplitudes.
    """

    name: str
    formula: str
    natural: tuple[str, ...]
    sampling: tuple[str, ...]
    inputs: tuple[str, ...]
    terms: tuple[tuple[str, str, str], ...]  # (amplitude, exponent, input)
    _log_loss: Callable[..., Any]

    def log_loss(self, theta: Mapping[str, Any], z: Mapping[str, Any], xp: Any = np) -> Any:
        """log L on the sampling scale; ``theta`` maps sampling names to arrays (broadcastable)."""
        return self._log_loss(theta, z, xp)

    @property
    def level_vector(self) -> np.ndarray:
        """The sampling-scale direction that multiplies the whole loss by a constant.

        Adding ``c`` to ``log_E`` and to every anchored amplitude ``log_{A,B}_ref`` adds ``c`` to
        ``log L`` at every (N, D): the direction along which families evaluated on different
        validation data (or tokenizers) differ most. 1 on those parameters, 0 on the exponents.
        """
        amps = {f"log_{amp}_ref" for amp, _, _ in self.terms}
        return np.array([1.0 if (p == "log_E" or p in amps) else 0.0 for p in self.sampling])

    def loss(self, theta: Mapping[str, Any], z: Mapping[str, Any], xp: Any = np) -> Any:
        return xp.exp(self.log_loss(theta, z, xp))

    # ------------------------------------------------------------ natural <-> sampling
    def to_natural(self, theta: Mapping[str, Any], ref: Mapping[str, float], xp: Any = np) -> dict[str, Any]:
        """Sampling-scale parameters -> natural (E, A, alpha, B, beta) with A = A_ref * N0^alpha."""
        out = {"E": xp.exp(theta["log_E"])}
        for amp, expo, inp in self.terms:
            e = xp.exp(theta[f"log_{expo}"])
            out[expo] = e
            out[amp] = xp.exp(theta[f"log_{amp}_ref"] + e * np.log(ref[inp]))
        return {k: out[k] for k in self.natural}

    def from_natural(self, natural: Mapping[str, float], ref: Mapping[str, float]) -> dict[str, Any]:
        """Natural parameters -> sampling scale (the inverse of :meth:`to_natural`)."""
        out = {"log_E": np.log(natural["E"])}
        for amp, expo, inp in self.terms:
            out[f"log_{expo}"] = np.log(natural[expo])
            out[f"log_{amp}_ref"] = np.log(natural[amp]) - natural[expo] * np.log(ref[inp])
        return {k: out[k] for k in self.sampling}

    def natural_loss(self, natural: Mapping[str, Any], x: Mapping[str, Any], xp: Any = np) -> Any:
        """L in natural units, e.g. E + A N^-alpha + B D^-beta (for checks and baselines)."""
        total = natural["E"]
        for amp, expo, inp in self.terms:
            total = total + natural[amp] * x[inp] ** (-natural[expo])
        return total


def log_sum_exp(parts: list[Any], xp: Any) -> Any:
    total = xp.exp(parts[0])
    for p in parts[1:]:
        total = total + xp.exp(p)
    return xp.log(total)


def _chinchilla_log_loss(theta, z, xp):
    return log_sum_exp([
        theta["log_E"],
        theta["log_A_ref"] - xp.exp(theta["log_alpha"]) * z["params"],
        theta["log_B_ref"] - xp.exp(theta["log_beta"]) * z["tokens"],
    ], xp)


def _compute_log_loss(theta, z, xp):
    return log_sum_exp([
        theta["log_E"],
        theta["log_A_ref"] - xp.exp(theta["log_alpha"]) * z["flops"],
    ], xp)


CHINCHILLA = Law(
    name="chinchilla",
    formula="L = E + A N^-alpha + B D^-beta",
    natural=("E", "A", "alpha", "B", "beta"),
    sampling=("log_E", "log_A_ref", "log_alpha", "log_B_ref", "log_beta"),
    inputs=("params", "tokens"),
    terms=(("A", "alpha", "params"), ("B", "beta", "tokens")),
    _log_loss=_chinchilla_log_loss,
)

COMPUTE = Law(
    name="compute",
    formula="L = E + A C^-alpha",
    natural=("E", "A", "alpha"),
    sampling=("log_E", "log_A_ref", "log_alpha"),
    inputs=("flops",),
    terms=(("A", "alpha", "flops"),),
    _log_loss=_compute_log_loss,
)

LAWS: dict[str, Law] = {law.name: law for law in (CHINCHILLA, COMPUTE)}


def get_law(name: str | Law) -> Law:
    """Look a law up by name (``"chinchilla"`` or ``"compute"``)."""
    if isinstance(name, Law):
        return name
    try:
        return LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; choose one of {sorted(LAWS)}") from None


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
