"""Evaluation: the Hitchhiker's protocol, point-estimate baselines and the borrowed-priors harness."""

from ..predict import are
from .backtest import BacktestResult, BacktestSettings, backtest
from .baselines import (
                        donor_fit,
                        fixed_n_term_fit,
                        huber_fit,
                        last_checkpoint_mean,
                        log_residual_scale,
                        predict_natural,
                        variable_projection_fit,
)
from .harness import (
                        METHODS,
                        HarnessSettings,
                        calibration_table,
                        eligible_families,
                        evaluate_borrowing,
                        paired_table,
                        summary_table,
)
from .protocol import (
                        TARGET_LAST_FRACTION,
                        Split,
                        family_sizes,
                        max_k,
                        score,
                        split_family,
)

__all__ = ["are", "BacktestResult", "BacktestSettings", "backtest", "variable_projection_fit",
           "METHODS", "TARGET_LAST_FRACTION", "HarnessSettings", "Split", "donor_fit", "eligible_families",
           "evaluate_borrowing", "family_sizes", "fixed_n_term_fit", "huber_fit", "last_checkpoint_mean",
           "log_residual_scale", "max_k", "paired_table", "predict_natural", "score", "split_family", "summary_table",
           "calibration_table"]
