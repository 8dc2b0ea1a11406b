"""Priors built from many fits: the published population prior, fitted on the bundled zoos and calibrated on
them (:mod:`.published`), and the prior of your own zoo calibrated on its families (:mod:`.calibrated`). The
prior itself, and borrowing it, is :class:`bayes_scaling.PopulationPrior`."""

from .calibrated import calibrated_prior

__all__ = ["calibrated_prior"]
