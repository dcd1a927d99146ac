"""Data layer: files -> samples -> torch datasets and batches."""

from __future__ import annotations

from limssr.config import RunConfig
from limssr.data.released import read_dataset
from limssr.data.samples import DataError, Sample, SampleSet
from limssr.data.synthetic import generate


def load_data(cfg: RunConfig) -> SampleSet:
    """The dataset a run config names: the built-in synthetic generator or a directory in one of the
    released layouts (FS1000, Fis-V, RG) or the generic one."""
    if cfg.data.source == "synthetic":
        data = generate(cfg.data.synthetic, cfg.model.modalities)
    else:
        data = read_dataset(cfg.data)
    if cfg.data.score_range is not None:
        data.score_range = float(cfg.data.score_range)
    for split, samples in data.splits.items():
        over = next((s for s in samples if s.score is not None and s.score > data.score_range), None)
        if over is not None:
            where = data.info.get("path") or data.info.get("source", "the data")
            raise DataError(f"{where}: {split} sample '{over.name}' has score {over.score:g}, above the divisor "
                            f"{data.score_range:g} (the score range): the model's scores cannot reach it; set "
                            "data.score_range (or the data's score_range) to the largest possible score")
    return data


__all__ = ["DataError", "Sample", "SampleSet", "load_data"]
