"""The downstream link: task loss (or a latent difficulty) to accuracy, bounded below by chance.

Accuracy falls from an upper asymptote ``u`` towards a floor ``f`` as the task loss ``x`` grows::

    acc(x) = f + (u - f) * sigmoid(k * (m - x)),     c <= f < u <= 1

``k > 0`` is the steepness, ``m`` the task loss at which half of the rise is reached, ``c`` the task's
chance accuracy. The floor may sit above chance: a model too small to know the answers still exploits an
answer-length bias or a majority class. When ``x`` is the loss of the right answer (its bits per byte, or
the cross-entropy over the choices), a loss of 0 means the right answer gets all the probability, so the
accuracy there is 1; the model enters that fact as one observation at (0, 1)
(:mod:`bayes_scaling.model.accuracy_link`), which keeps a sigmoid fitted to the bottom of its rise from
placing its ceiling just above the data.

Without a task-loss column the first step is a latent law of the model's size and data, the log of the
reducible part of a Chinchilla law at the data's reference scales (``n = ln(N / N0)``, ``d = ln(D / D0)``)::

    x(N, D) = log(exp(-alpha * n) + exp(b - beta * d))

with the link's steepness fixed at 1 (the exponents carry the scale). Each function takes ``xp``, a module
with ``exp`` and ``log`` (numpy or pytensor.tensor), as :mod:`.forms` does.
"""

from __future__ import annotations

from typing import Any

from .forms import log_sum_exp


def sigmoid(u: Any, xp: Any) -> Any:
    return 1.0 / (1.0 + xp.exp(-u))


def accuracy(x: Any, floor: Any, upper: Any, slope: Any, midpoint: Any, xp: Any) -> Any:
    """Accuracy at task loss ``x``: the floor plus the share ``sigmoid(slope (midpoint - x))`` of the rise."""
    return floor + (upper - floor) * sigmoid(slope * (midpoint - x), xp)


def latent_difficulty(n: Any, d: Any, alpha: Any, beta: Any, b: Any, xp: Any) -> Any:
    """The latent task loss of the one-step link: the log reducible loss of a law in (N, D)."""
    return log_sum_exp([-alpha * n, b - beta * d], xp)
