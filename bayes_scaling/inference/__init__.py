"""Sampling, diagnostics, the extrapolation calibration, and the fitted object with save/load."""

from .diagnostics import Diagnostics, diagnose
from .fit import fit
from .fitted import ScalingFit, load

__all__ = ["Diagnostics", "ScalingFit", "diagnose", "fit", "load"]
