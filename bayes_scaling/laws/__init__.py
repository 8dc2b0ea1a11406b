"""Pure scaling-law functional forms (numpy and pytensor) and their parameterisation."""

from .forms import CHINCHILLA, COMPUTE, LAWS, Law, get_law, reference_scales, sampling_moments, standardized_inputs

__all__ = ["CHINCHILLA", "COMPUTE", "LAWS", "Law", "get_law", "reference_scales", "sampling_moments", "standardized_inputs"]
