"""Evaluation against point-estimate baselines (the Hitchhiker's protocol)."""

from .baselines import fixed_n_term_fit, huber_fit, last_checkpoint_mean, predict_natural

__all__ = ["fixed_n_term_fit", "huber_fit", "last_checkpoint_mean", "predict_natural"]
