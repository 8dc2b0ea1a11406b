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

#: public name -> the module that defines it, grouped by job (``__all__`` below keeps the order)
_EXPORTS = {
    # the data
    "ScalingData": ".data", "load_bundled": ".data",
    # what to fit and how to sample
    "ModelConfig": ".model.config", "Prior": ".model", "Priors": ".model", "SamplerConfig": ".inference.config",
    # fitting, and reading any file bayes_scaling writes
    "fit": ".inference", "fit_downstream": ".inference.downstream", "open": ".reader",
    # borrowing what other families (or every published zoo) measured
    "PopulationPrior": ".model", "published_prior": ".model.population_prior",
    # checking a forecast on your own zoo before trusting it
    "backtest": ".evaluate.backtest",
}
#: the subpackages by layer; the rest of the API lives there (``bs.data.thin_checkpoints``, ``bs.decisions.plan``)
_SUBMODULES = ("data", "laws", "model", "inference", "decisions", "evaluate", "mixing", "grid", "priors", "report",
               "errors")
#: where the names of the subpackages' API are found, for the error that points there
_HOMES = {
    **dict.fromkeys(["GUIDE_MIN_TOKENS", "apply_filters", "drop_early_checkpoints", "keep_fraction_of_run",
                     "thin_checkpoints", "TaskData"], "data"),
    **dict.fromkeys(["GrowthTiming", "Plan", "compare", "compute_optimal", "growth_speedup", "plan",
                     "win_probabilities"], "decisions"),
    **dict.fromkeys(["MixingData", "MixingFit", "load_bimix", "fit_mixing", "compare_mixtures", "optimize_mixture"],
                    "mixing"),
    **dict.fromkeys(["Diagnostics", "ScalingFit", "DownstreamFit", "fit_approximate", "prior_check_table",
                     "prior_predictive_check"], "inference"),
    "ModelSpec": "model", "are": "evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _HOMES:
        raise AttributeError(f"bayes_scaling.{name} is in the {_HOMES[name]} subpackage: use "
                             f"bayes_scaling.{_HOMES[name]}.{name} (bs.{_HOMES[name]}.{name})")
    if name in ("load", "load_downstream"):
        raise AttributeError(f"bayes_scaling has no {name}: bs.open(path) reads any file bayes_scaling writes (a fit, "
                             "a prior, a mixing or downstream fit) as what it is")
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_SUBMODULES))


def write_report(fit, out_dir, targets=None, **kwargs):
    """Write a fit's posterior report (see :func:`bayes_scaling.report.write_report`)."""
    from .report import (
        write_report as _write,  # matplotlib is imported only when a report is written
    )

    return _write(fit, out_dir, targets, **kwargs)


#: the public names, grouped by job (reporting last)
__all__ = [*_EXPORTS, "write_report", "__version__"]
