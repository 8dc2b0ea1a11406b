"""Decisions from a posterior: compute-optimal allocation, recipe A vs B, model growth (G_stack), and which
runs to train next (planning). Data mixtures: :mod:`bayes_scaling.mixing`."""

from .compare import compare, win_probabilities
from .compute_optimal import compute_optimal
from .growth import growth_speedup
from .growth_timing import PAPER_COEFFICIENTS, PAPER_GROWTH_FACTOR, GrowthTiming, guideline_log10
from .planning import Plan, PlanningWarning, plan, set_flops, spread_heuristic, target_fraction_heuristic
from .summary import summarize

__all__ = ["PAPER_COEFFICIENTS", "PAPER_GROWTH_FACTOR", "GrowthTiming", "compare", "compute_optimal",
           "growth_speedup", "guideline_log10", "summarize", "win_probabilities", "Plan", "PlanningWarning", "plan", "set_flops", "spread_heuristic",
           "target_fraction_heuristic"]
