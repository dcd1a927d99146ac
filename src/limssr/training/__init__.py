"""Training with Lightning, one job per module: the data module (where training masks are drawn),
the training module (optimiser, steps), callbacks (checkpoints, model selection, the clock), the
random-state record for exact resume, and the trainer that puts them together."""

from limssr.training.callbacks import (BEST_CHECKPOINT, LAST_CHECKPOINT, SELECTION_METRIC, BestCheckpoint,
                                       LastCheckpoint, TrainingTime, best_validation_score)
from limssr.training.datamodule import LimssrDataModule, MaskLogWriter, selection_label
from limssr.training.module import TrainingModule, adamw, apply_training_speedups, build_model, lr_factor
from limssr.training.rng import rng_state, set_rng_state
from limssr.training.trainer import check_loggers, csv_logger, is_worker_process, make_trainer

__all__ = ["BEST_CHECKPOINT", "LAST_CHECKPOINT", "SELECTION_METRIC", "BestCheckpoint", "LastCheckpoint",
           "LimssrDataModule", "MaskLogWriter", "TrainingModule", "TrainingTime", "adamw", "apply_training_speedups",
           "best_validation_score", "build_model", "check_loggers", "csv_logger", "is_worker_process", "lr_factor", "make_trainer",
           "rng_state", "selection_label", "set_rng_state"]
