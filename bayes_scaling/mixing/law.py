"""The BiMix data-mixing law (Ge et al. 2024) as pure functions, usable with numpy and pytensor.

BiMix writes the validation loss of domain i after s training steps with mixture share r_i as::

    L_i(s, r_i) = (A_i / s^a_i + C_i) * B_i / r_i^b_i

Only the products A_i B_i and C_i B_i are identifiable. We write it on a sampling scale anchored at a
reference step s0 and a reference share r0_i (geometric means over the training data), where the
parameters are nearly independent::

    L_i(s, r) = exp(log_level_i) * (phi_i (s / s0)^-a_i + 1 - phi_i) * (r / r0_i)^-b_i

``exp(log_level_i)``: the loss at (s0, r0_i); ``phi_i = sigmoid(logit_phi_i)`` in (0, 1): the share of
that loss that training still removes as s grows (the A-term); ``a_i = exp(log_a_i)``,
``b_i = exp(log_b_i)``. Natural parameters: ``AB = level phi s0^a r0^b``, ``CB = level (1 - phi) r0^b``,
so ``L = (AB s^-a + CB) r^-b``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: sampling-scale parameter names, in order
MIXING_PARAMS = ("log_level", "logit_phi", "log_a", "log_b")
#: natural parameter names
MIXING_NATURAL = ("AB", "CB", "a", "b")
FORMULA = "L_i(s, r_i) = (A_i B_i / s^a_i + C_i B_i) / r_i^b_i"


def log_loss(theta: Mapping[str, Any], log_step_rel: Any, log_share_rel: Any, xp: Any = np) -> Any:
    """log L on the sampling scale; ``log_step_rel = log(s / s0)``, ``log_share_rel = log(r / r0)``."""
    a = xp.exp(theta["log_a"])
    b = xp.exp(theta["log_b"])
    phi = 1.0 / (1.0 + xp.exp(-theta["logit_phi"]))
    return theta["log_level"] + xp.log(phi * xp.exp(-a * log_step_rel) + 1.0 - phi) - b * log_share_rel


def to_natural(theta: Mapping[str, Any], s0: Any, r0: Any) -> dict[str, Any]:
    """Sampling scale -> (AB, CB, a, b) with L = (AB s^-a + CB) r^-b (numpy)."""
    a = np.exp(theta["log_a"])
    b = np.exp(theta["log_b"])
    phi = 1.0 / (1.0 + np.exp(-np.asarray(theta["logit_phi"])))
    level = np.exp(theta["log_level"])
    rb = np.power(r0, b)
    return {"AB": level * phi * np.power(s0, a) * rb, "CB": level * (1.0 - phi) * rb, "a": a, "b": b}


def from_natural(nat: Mapping[str, Any], s0: Any, r0: Any) -> dict[str, Any]:
    """(AB, CB, a, b) -> sampling scale (the inverse of :func:`to_natural`)."""
    ab, cb = np.asarray(nat["AB"], dtype=float), np.asarray(nat["CB"], dtype=float)
    a, b = np.asarray(nat["a"], dtype=float), np.asarray(nat["b"], dtype=float)
    k1 = ab * np.power(s0, -a) * np.power(r0, -b)  # A-term at (s0, r0)
    k0 = cb * np.power(r0, -b)
    return {"log_level": np.log(k1 + k0), "logit_phi": np.log(k1) - np.log(k0), "log_a": np.log(a),
            "log_b": np.log(b)}


def natural_loss(AB: Any, CB: Any, a: Any, b: Any, step: Any, share: Any) -> np.ndarray:
    """L = (AB s^-a + CB) r^-b in natural units (numpy)."""
    return (AB * np.power(step, -a) + CB) * np.power(share, -b)
