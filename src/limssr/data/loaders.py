"""Datasets and loaders over in-memory samples, and the validation split carved from training data."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from limssr.config import ConfigError, RunConfig
from limssr.data import SampleSet
from limssr.data.dataset import AQADataset, collate
from limssr.subsets import all_subsets


def make_dataset(cfg: RunConfig, data: SampleSet, samples: list, train: bool) -> AQADataset:
    """A dataset over `samples` of `data`, cut as the config says (random crop when `train`)."""
    return AQADataset(samples, data.modalities, data.dims, data.score_range, cfg.data.clip_num,
                      train=train, test_crop=cfg.data.test_crop, train_crop=cfg.data.train_crop,
                      span_lengths=cfg.model.span_lengths)


def make_loader(dataset: AQADataset, batch_size: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    """Batches from in-memory samples (no file is read here); pinned memory when a GPU is used."""
    pad_to = dataset.clip_num if (dataset.train or dataset.test_crop == "center") else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=partial(collate, modalities=dataset.modalities, pad_to=pad_to),
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())


def carve_validation(samples: list, fraction: float, seed: int, key: str = "data.val_fraction") -> tuple[list, list]:
    """Split training samples into (train, held out) with a fixed seed."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = int(round(fraction * len(samples)))
    if n_val < 1 or n_val >= len(samples):
        fix = " (or train.selection=last)" if key == "data.val_fraction" else ""
        raise ConfigError(f"{key}={fraction} leaves {n_val} of {len(samples)} training samples "
                          f"held out; choose a fraction that leaves both parts non-empty{fix}")
    val = set(order[:n_val].tolist())
    return [s for i, s in enumerate(samples) if i not in val], [s for i, s in enumerate(samples) if i in val]


def training_parts(cfg: RunConfig, samples: list) -> tuple[list, list | None, list]:
    """The training split as every consumer carves it: (train, validation or None, calibration).
    The calibration part (data.calibration_fraction of the split, carved first) is never trained or
    selected on; the validation part (data.val_fraction of the rest) exists under train.selection=val."""
    calibration: list = []
    if cfg.data.calibration_fraction > 0:
        samples, calibration = carve_validation(samples, cfg.data.calibration_fraction, cfg.data.val_seed + 1,
                                                key="data.calibration_fraction")
    validation = None
    if cfg.train.selection == "val":
        samples, validation = carve_validation(samples, cfg.data.val_fraction, cfg.data.val_seed)
    return samples, validation, calibration


def balanced_masks(available: np.ndarray, seed: int) -> np.ndarray:
    """Validation masks: the non-empty subsets in turn (shuffled), so that model selection weighs
    every subset alike; each mask is cut to what the sample has (all it has, if that leaves none)."""
    pool = np.array(all_subsets(available.shape[1]), dtype=bool)
    order = np.random.default_rng(seed).permutation(len(available))
    masks = np.zeros_like(available)
    for rank, i in enumerate(order):
        masks[i] = pool[rank % len(pool)] & available[i]
        if not masks[i].any():
            masks[i] = available[i]
    return masks
