"""Building the PyMC model: priors, spec, likelihood and the hierarchical structure."""

from .config import ModelConfig
from .distribution import Prior
from .hierarchical import POPULATION_VARS, build_model, model_arrays
from .likelihood import run_marginal_loglik
from .population_prior import PopulationPrior
from .priors import Priors
from .spec import ModelSpec

__all__ = ["POPULATION_VARS", "ModelConfig", "ModelSpec", "PopulationPrior", "Prior", "Priors", "build_model", "model_arrays", "run_marginal_loglik"]
