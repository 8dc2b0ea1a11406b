"""bayes_scaling: Bayesian hierarchical scaling laws for language-model pretraining.

>>> import bayes_scaling as bs
>>> data = bs.load_bundled("porian")                    # doctest: +SKIP
>>> fit = bs.fit(data, "chinchilla", {"draws": 500})     # doctest: +SKIP
>>> fit.predict(family="rw-tuned-short-const-standard-val", params=7e9, tokens=2e12)   # doctest: +SKIP

The names below are imported when first used, so ``import bayes_scaling`` (and the command line's
``--help``) does not load PyMC, ArviZ or pandas until something needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__  # noqa: F401  (in __all__ below)

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["GUIDE_MIN_TOKENS", "ScalingData", "apply_filters", "drop_early_checkpoints",
                     "keep_fraction_of_run", "load_bundled", "thin_checkpoints", "MixingData", "load_bimix"], ".data"),
    **dict.fromkeys(["GrowthTiming", "Plan", "compare", "compare_mixtures", "compute_optimal", "growth_speedup",
                     "optimize_mixture", "plan", "win_probabilities"], ".decisions"),
    **dict.fromkeys(["Diagnostics", "MixingFit", "ScalingFit", "fit", "fit_approximate", "fit_mixing", "load",
                     "prior_check_table", "prior_predictive_check"], ".inference"),
    "backtest": ".evaluate.backtest",
    **dict.fromkeys(["DownstreamFit", "fit_downstream", "load_downstream"], ".inference.downstream"),
    "TaskData": ".data.tasks",
    **dict.fromkeys(["ModelSpec", "PopulationPrior", "Priors"], ".model"),
    "published_prior": ".model.population_prior",
    "ModelConfig": ".model.config",
    "open": ".inference.reader",
    "SamplerConfig": ".inference.config",
    "are": ".predict",
}
_SUBMODULES = ("decisions", "errors", "laws", "data", "evaluate", "grid", "inference", "model", "priors", "report")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


def write_report(fit, out_dir, targets=None, **kwargs):
    """Write a fit's posterior report (see :func:`bayes_scaling.report.write_report`)."""
    from .report import write_report as _write  # matplotlib is imported only when a report is written

    return _write(fit, out_dir, targets, **kwargs)


__all__ = sorted([*_EXPORTS, "__version__", "decisions", "errors", "laws", "write_report"])
