"""Exceptions raised by bayes_scaling.

Every error says what is wrong *and* how to fix it. All of them derive from
:class:`BayesScalingError`, and the input errors also derive from ``ValueError``
so that generic ``except ValueError`` handlers keep working.
"""

from __future__ import annotations


class BayesScalingError(Exception):
    """Base class of every error raised by the package."""


class DataValidationError(BayesScalingError, ValueError):
    """Base class of the errors about input data."""


class MissingColumnError(DataValidationError, KeyError):
    """A column named in the mapping is not in the DataFrame."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NonFiniteValueError(DataValidationError):
    """A NaN or infinite value in a numeric column."""


class NonPositiveValueError(DataValidationError):
    """A zero or negative parameter count, token count, FLOP count or loss."""


class DuplicateRowError(DataValidationError):
    """Two rows describe the same checkpoint (same run and token count)."""


class PerplexityLikeLossError(DataValidationError):
    """The loss column holds values that look like perplexities, not nats."""


class EmptyFamilyError(DataValidationError):
    """A family has no rows left (after filtering, or in the input)."""


class UnknownFamilyError(BayesScalingError, KeyError):
    """A family that the fit has never seen was asked for where it is not allowed."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PriorError(BayesScalingError, ValueError):
    """A prior specification that is impossible (non-positive scale, unknown parameter, ...)."""


class SamplingWarning(UserWarning):
    """Sampling problems: divergences, R-hat above the limit, low effective sample size."""


class SeedSpreadWarning(UserWarning):
    """Repeated runs of one configuration differ far more than seed noise can explain."""


class UsageError(BayesScalingError, ValueError):
    """Command-line flags that do not go together; the message says which and what to use instead."""


class OutputPathError(BayesScalingError, ValueError):
    """An output path that cannot be written (a file where a folder is needed, no permission, ...)."""


class FitFileError(BayesScalingError, OSError):
    """A file that is not a bayes_scaling fit, or was written by an incompatible version."""


class UnitWarning(UserWarning):
    """Sizes, token counts or losses at scales that suggest another unit (millions of parameters, billions of
    tokens, nats read as perplexity)."""


class DataAssumptionWarning(UserWarning):
    """Something the input did not say was assumed, and the data suggest the assumption may be wrong."""


class ExtrapolationWarning(UserWarning):
    """A prediction far outside the data it rests on."""


class PriorDataConflictWarning(UserWarning):
    """A new family's data lie where the borrowed population prior gives them almost no probability."""


class PlanningWarning(UserWarning):
    """A run plan rests on few effective draws, or no candidate run fits the budget."""


class LawError(BayesScalingError, ValueError):
    """A law that cannot be built: a formula that is not arithmetic, a parameter or input it does not declare, a
    name used twice, a law file that cannot be rebuilt."""


class UnsupportedLawError(BayesScalingError, ValueError):
    """The question asked needs another law (e.g. compute-optimal N and D need a law in N and D)."""


class ConfigError(BayesScalingError, ValueError):
    """A model or sampler configuration (``model=``, ``sampler=``) has a setting it does not know or cannot use."""


class GridConfigError(BayesScalingError, ValueError):
    """An experiment-grid configuration that cannot run (unknown axis or value, missing dataset, ...)."""


class GridResultsMismatchError(BayesScalingError, ValueError):
    """A results file to resume was written by a different grid configuration."""
