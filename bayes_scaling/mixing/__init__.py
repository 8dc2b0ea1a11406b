"""Data mixing with the BiMix law (Ge et al. 2024): its own layers, in the package's order.

``data`` (per-domain losses of runs on several mixtures, the BiMix release's loader) -> ``entropy`` (mixture
proportions from domain entropies) -> ``law`` (BiMix as pure functions) -> ``model`` (the hierarchical PyMC
model) -> ``fit`` (``fit_mixing``, :class:`MixingFit`) -> ``decisions`` (the optimal mixture, two mixtures
compared) and ``evaluate`` (held-out mixtures against the release's least-squares method).

>>> import bayes_scaling as bs
>>> data = bs.mixing.load_bimix("slimpajama")                      # doctest: +SKIP
>>> fit = bs.mixing.fit_mixing(data, likelihood="student_t")       # doctest: +SKIP
>>> bs.mixing.optimize_mixture(fit, step=20_000)                    # doctest: +SKIP
"""

from .data import MixingData, load_bimix, load_bimix_config
from .decisions import compare_mixtures, optimize_mixture
from .entropy import (
                      bigram_joint_entropy,
                      conditional_entropy,
                      domain_entropies,
                      proportions_from_entropy,
                      unigram_entropy,
)
from .evaluate import evaluate_heldout, fit_least_squares, predict_least_squares
from .fit import MixingFit, fit_mixing
from .model import MixingPriors

__all__ = [
    # data
    "MixingData", "load_bimix", "load_bimix_config",
    "bigram_joint_entropy", "conditional_entropy", "domain_entropies", "proportions_from_entropy", "unigram_entropy",
    # fit
    "MixingPriors", "MixingFit", "fit_mixing",
    # decide and evaluate
    "compare_mixtures", "optimize_mixture", "evaluate_heldout", "fit_least_squares", "predict_least_squares",
]
