"""Priors built from many fits: the published population prior, fitted on the bundled zoos and calibrated on
them (:mod:`.published`). The prior itself, and borrowing it, is :class:`bayes_scaling.PopulationPrior`."""
