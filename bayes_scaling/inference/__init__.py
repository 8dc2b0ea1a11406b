"""Sampling, diagnostics, the extrapolation calibration, and the fitted object with save/load."""

from .approximate import fit_approximate
from .config import SamplerConfig
from .diagnostics import Diagnostics, diagnose
from .fit import fit
from .fitted import ScalingFit, load
from .mixing import MixingFit, fit_mixing
from .prior_check import prior_check_table, prior_predictive_check

__all__ = ["fit_approximate", "Diagnostics", "SamplerConfig", "MixingFit", "ScalingFit", "fit_mixing", "diagnose", "fit", "load", "prior_check_table", "prior_predictive_check"]
