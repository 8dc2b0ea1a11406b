"""bayes_scaling: Bayesian hierarchical scaling laws for language-model pretraining.

>>> import bayes_scaling as bs
>>> data = bs.load_bundled("porian")                    # doctest: +SKIP
>>> fit = bs.fit(data, law="chinchilla")                # doctest: +SKIP
>>> fit.predict(family="rw-tuned-short-const-standard-val", params=7e9, tokens=2e12)   # doctest: +SKIP
"""

from . import decisions, errors, laws
from .data import (
    GUIDE_MIN_TOKENS,
    ScalingData,
    apply_filters,
    drop_early_checkpoints,
    keep_fraction_of_run,
    load_bundled,
    thin_checkpoints,
)
from .data import MixingData, load_bimix
from .decisions import (GrowthTiming, Plan, compare, compare_mixtures, compute_optimal, growth_speedup,
                        optimize_mixture, plan, win_probabilities)
from .inference import Diagnostics, MixingFit, ScalingFit, fit, fit_approximate, fit_mixing, load, prior_check_table, prior_predictive_check
from .evaluate.backtest import backtest
from .model import ModelSpec, PopulationPrior, Priors
from .predict import are

__version__ = "0.1.0"


def write_report(fit, out_dir, targets=None, **kwargs):
    """Write a fit's posterior report (see :func:`bayes_scaling.report.write_report`)."""
    from .report import write_report as _write  # matplotlib is imported only when a report is written

    return _write(fit, out_dir, targets, **kwargs)


__all__ = [
    "GUIDE_MIN_TOKENS", "Diagnostics", "GrowthTiming", "compare", "compute_optimal", "decisions", "growth_speedup",
    "win_probabilities", "ModelSpec", "PopulationPrior", "Priors", "ScalingData", "ScalingFit", "__version__", "apply_filters",
    "are", "backtest", "drop_early_checkpoints", "errors", "fit", "fit_approximate", "thin_checkpoints", "keep_fraction_of_run", "laws", "load", "load_bundled",
    "prior_check_table", "prior_predictive_check", "write_report", "MixingData", "MixingFit", "compare_mixtures",
    "fit_mixing", "load_bimix", "optimize_mixture", "Plan", "plan",
]
