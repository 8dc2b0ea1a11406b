"""Experiment grids of many fits (the Hitchhiker's meta-analysis) on a dask.distributed cluster.

``config`` (what to run) → ``cells`` (one fit and its scores, run on a worker) → ``store`` (the
results Dataset, one dimension per axis, saved after every cell) → ``runner`` (scheduling, resume).
Figures of the results are in :mod:`bayes_scaling.report.grid_figures`.
"""

from .cells import SCORES, run_cell
from .config import AXES, DATASETS, PRIOR_SOURCES, FitSettings, GridConfig
from .runner import GridRunError, cluster_client, run_grid
from .store import counts, load_results, tidy

__all__ = ["AXES", "DATASETS", "PRIOR_SOURCES", "SCORES", "FitSettings", "GridConfig", "GridRunError",
           "cluster_client", "counts", "load_results", "run_cell", "run_grid", "tidy"]
