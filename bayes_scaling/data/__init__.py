"""Data layer: the validated container, filters and loaders of published datasets."""

from .container import COLUMNS, DropRecord, ScalingData
from .filters import (
                      GUIDE_MIN_TOKENS,
                      apply_filters,
                      drop_early_checkpoints,
                      drop_start_of_run,
                      keep_final_checkpoint,
                      keep_fraction_of_run,
                      thin_checkpoints,
)
from .loaders import (
                      BUNDLED,
                      LOADERS,
                      data_root,
                      load_bundled,
                      load_datablations,
                      load_datablations_code,
                      load_epoch_chinchilla,
                      load_gemstone,
                      load_kempner,
                      load_misfitting,
                      load_olmo,
                      load_olmo_ladder,
                      load_opt,
                      load_porian,
                      load_t5_pile,
                      parse_size,
)
from .tasks import TaskData

__all__ = [
    "BUNDLED", "COLUMNS", "DropRecord", "GUIDE_MIN_TOKENS", "LOADERS", "ScalingData", "apply_filters", "keep_final_checkpoint",
    "data_root", "drop_early_checkpoints", "drop_start_of_run", "keep_fraction_of_run", "load_bundled", "load_datablations",
    "load_datablations_code", "load_epoch_chinchilla", "load_gemstone", "load_kempner", "load_misfitting", "load_olmo",
    "load_olmo_ladder", "load_opt", "load_porian", "load_t5_pile", "parse_size", "thin_checkpoints", "TaskData",
]
