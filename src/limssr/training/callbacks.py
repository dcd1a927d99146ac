"""Callbacks of a run: the last and best checkpoints (model selection) and the training clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from limssr.atomic import atomic_write_text

LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"


class LastCheckpoint(ModelCheckpoint):
    """One safetensors file per role, replaced in place. Its state (for the best checkpoint: the best
    score so far) is restored on resume even when the run directory has moved since."""

    FILE_EXTENSION = ".safetensors"

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        if state.get("dirpath") != self.dirpath:  # moved run directory: keep the score, remap the paths
            mine = str(Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}")
            score = state.get("best_model_score")
            state.update({"dirpath": self.dirpath, "best_model_path": mine if score is not None else "",
                          "kth_best_model_path": mine if score is not None else "",
                          "best_k_models": {mine: score} if score is not None else {}, "last_model_path": ""})
        super().load_state_dict(state)


SELECTION_METRIC = "val/select"


class BestCheckpoint(LastCheckpoint):
    """The best epoch by validation Spearman (`val/select`)."""


def best_validation_score(trainer: L.Trainer) -> float:
    """The validation Spearman of the selected epoch."""
    best = next(c for c in trainer.checkpoint_callbacks if isinstance(c, BestCheckpoint))
    return float(best.best_model_score)


class TrainingTime(L.Callback):
    """Wall and CPU seconds spent training, summed over every attempt of a run (an interrupted run's
    earlier attempts included), rewritten after each epoch to `path` (JSON)."""

    def __init__(self, path: Path):
        self.path = path
        self.earlier = json.loads(path.read_text()) if path.is_file() else {"wall_seconds": 0.0, "cpu_seconds": 0.0}

    def on_train_start(self, trainer, pl_module):
        self.wall0, self.cpu0 = time.time(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module):
        record = {"wall_seconds": round(self.earlier["wall_seconds"] + time.time() - self.wall0, 1),
                  "cpu_seconds": round(self.earlier["cpu_seconds"] + time.process_time() - self.cpu0, 1),
                  "epochs": trainer.current_epoch + 1}
        atomic_write_text(self.path, json.dumps(record, indent=2) + "\n")
