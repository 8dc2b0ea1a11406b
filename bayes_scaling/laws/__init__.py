"""Scaling-law functional forms: the law interface, the built-in laws and solving them for decisions."""

from .expression import Expression
from .flops import FLOPS_PER_PARAM_TOKEN, training_flops
from .forms import (BASE_INPUTS, CHINCHILLA, COMPUTE, DATA_CONSTRAINED, INPUTS, LAWS, Law, Parameter, get_law, log_sum_exp,
                    reference_scales, register, sampling_moments, standardized_inputs)

__all__ = ["BASE_INPUTS", "CHINCHILLA", "COMPUTE", "DATA_CONSTRAINED", "FLOPS_PER_PARAM_TOKEN", "INPUTS", "LAWS", "Expression",
           "Law", "Parameter", "get_law", "log_sum_exp", "reference_scales", "register", "sampling_moments",
           "standardized_inputs", "training_flops"]
