"""Sampling, diagnostics, the extrapolation calibration, and the fitted object with save/load."""

from .approximate import fit_approximate
from .config import SamplerConfig
from .diagnostics import Diagnostics, diagnose
from .downstream import DownstreamFit, fit_downstream
from .fit import fit
from .fitted import ScalingFit, load
from .prior_check import prior_check_table, prior_predictive_check

__all__ = ["fit_approximate", "Diagnostics", "DownstreamFit", "fit_downstream", "SamplerConfig", "ScalingFit", "diagnose", "fit", "load", "prior_check_table",
           "prior_predictive_check"]
