"""The Lightning data module: training, validation and test loaders, and where training masks are drawn."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from limssr.config import RunConfig
from limssr.data import SampleSet
from limssr.data.dataset import Batch, hide
from limssr.data.loaders import balanced_masks, make_dataset, make_loader, training_parts
from limssr.masking import build_protocol
from limssr.subsets import parse_subset, subset_name


def selection_label(cfg: RunConfig) -> str:
    t = cfg.train
    if t.selection == "last":
        return f"fixed epoch count (last of {t.epochs})"
    if t.selection == "val":
        return (f"best epoch on a validation split ({cfg.data.val_fraction:.0%} of train, seed "
                f"{cfg.data.val_seed}, all subsets in turn)")
    return "PAPER PROTOCOL: best epoch chosen on the TEST set (complete modalities), as the published code"


class LimssrDataModule(L.LightningDataModule):
    """Training (and validation) data plus the training-time missingness protocol.

    The protocol is applied here, to each training batch before it moves to the device, so a hidden
    modality's values are zeroed in the data layer and never reach the model. The validation split
    (train.selection=val) is carved from the training set with a fixed seed; under the `paper`
    protocol the test set, with every modality, plays that role, as in the published code.
    """

    def __init__(self, cfg: RunConfig, data: SampleSet):
        super().__init__()
        self.cfg = cfg
        train, val, self.calibration = training_parts(cfg, data.split("train"))
        if cfg.train.selection == "paper":
            val = data.split("test")
        self.train_set = make_dataset(cfg, data, train, True)
        self.val_set = make_dataset(cfg, data, val, False) if val is not None else None
        mods = data.modalities
        available = np.array([[m in s.features for m in mods] for s in train], dtype=bool)
        t = cfg.train
        self.protocol = build_protocol(t.missing, available, cfg.seed, [s.name for s in train], mods,
                                       t.missing_rate, t.complete_fraction, t.fixed_subset)
        if val is not None:
            val_avail = np.array([[m in s.features for m in mods] for s in val], dtype=bool)
            masks = val_avail if t.selection == "paper" else balanced_masks(val_avail, cfg.data.val_seed)
            self.val_masks = torch.from_numpy(masks)
        self.mask_log: list[list] = []
        self._warn_unseen(available, mods)

    def _warn_unseen(self, available: np.ndarray, mods: list[str]) -> None:
        """Say so when a modality can never be shown in training: its projection stays as initialised,
        and any score made from it is meaningless."""
        shown = available.any(axis=0)
        if self.protocol.name == "fixed":
            shown &= np.array(parse_subset(self.cfg.train.fixed_subset, mods))
        for m, seen in zip(mods, shown):
            if not seen:
                why = ("no training sample has it" if not available[:, mods.index(m)].any()
                       else f"train.fixed_subset={self.cfg.train.fixed_subset} hides it")
                warnings.warn(f"modality '{m}' is never shown in training ({why}): its projection stays untrained "
                              "and scores from it mean nothing", stacklevel=2)

    def _batch_size(self, batch_size: int) -> int:
        """Per process: the configured batch is split among the data-parallel processes."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if batch_size % world:
            raise ValueError(f"train.batch_size={batch_size} must be divisible by the {world} processes")
        return batch_size // world

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.train_set, self._batch_size(self.cfg.train.batch_size), shuffle=self.cfg.train.shuffle,
                           num_workers=self.cfg.train.num_workers)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return make_loader(self.val_set, self.cfg.eval.batch_size, shuffle=False)

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is None:
            return batch
        if self.trainer.training:
            mask = self.protocol.masks(batch.index, batch.available)
            if not self.protocol.fixed_per_sample:
                epoch, step = self.trainer.current_epoch, self.trainer.global_step
                mods = self.train_set.modalities
                self.mask_log += [[epoch, step, n, subset_name(m.tolist(), mods)] for n, m in zip(batch.names, mask)]
            return hide(batch, mask)
        if self.val_set is not None and (self.trainer.validating or self.trainer.sanity_checking):
            return hide(batch, self.val_masks[batch.index])
        return batch

    def transfer_batch_to_device(self, batch: Batch, device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def fixed_masks(self) -> list[tuple[str, list[bool]]] | None:
        """Per-sample masks of protocols that never change them (None for those drawn every step)."""
        if not self.protocol.fixed_per_sample:
            return None
        idx = torch.arange(len(self.train_set))
        available = torch.tensor([[m in s.features for m in self.train_set.modalities] for s in self.train_set.samples])
        masks = self.protocol.masks(idx, available)
        return [(s.name, row.tolist()) for s, row in zip(self.train_set.samples, masks)]

    def take_mask_log(self) -> list[list]:
        rows, self.mask_log = self.mask_log, []
        return rows

    def state_dict(self) -> dict:
        return {"protocol": self.protocol.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.protocol.load_state_dict(state.get("protocol", {}))


class MaskLogWriter(L.Callback):
    """Appends the masks drawn during an epoch (protocols drawn per step) to train_masks.csv."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        rows = trainer.datamodule.take_mask_log()
        if not rows:
            return
        new = not self.path.is_file()
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["epoch", "step", "name", "shown"])
            writer.writerows(rows)
