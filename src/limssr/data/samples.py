"""In-memory containers for multimodal samples: the one format every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Input data is malformed; the message names the file, key or field."""


@dataclass
class Sample:
    """One performance: a feature sequence per observed modality and, for labelled data, a score.

    A modality absent from `features` is missing for this sample (natural missingness).
    """

    name: str
    features: dict[str, np.ndarray]  # modality -> float32 (T, D)
    score: float | None = None  # raw judge score of the chosen score type (not divided by the range)
    meta: dict[str, float] = field(default_factory=dict)
    labels: dict[str, float] = field(default_factory=dict)  # every score the label file gives


@dataclass
class SampleSet:
    """A labelled dataset: its modalities, their feature dims, and the train/test splits."""

    modalities: list[str]
    dims: dict[str, int]
    score_range: float
    splits: dict[str, list[Sample]]
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Sample]:
        if name not in self.splits:
            raise DataError(f"dataset has no split '{name}' (splits: {', '.join(self.splits)})")
        return self.splits[name]

    def fingerprint(self) -> str:
        """sha256 over everything a run reads from the data: modalities, dims, score range, and per
        split every sample's name, scores and feature arrays (bytes). Equal data, equal fingerprint."""
        import hashlib
        import json

        h = hashlib.sha256(json.dumps([self.modalities, self.dims, self.score_range]).encode())
        for split in sorted(self.splits):
            for s in self.splits[split]:
                h.update(json.dumps([split, s.name, s.score, sorted(s.labels.items())]).encode())
                for m in sorted(s.features):
                    arr = np.ascontiguousarray(s.features[m])
                    h.update(f"{m}{arr.dtype.str}{arr.shape}".encode())
                    h.update(memoryview(arr).cast("B"))
        return h.hexdigest()


def read_label_text(path) -> str:
    """A label file's text (UTF-8, a BOM allowed); refuses a missing or non-UTF-8 file by name."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise DataError(f"label file '{path}' does not exist")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from None


def check_sample(sample: Sample, modalities: list[str], dims: dict[str, int], where: str,
                 max_length_mismatch: int = 1) -> None:
    """Refuse a sample whose arrays cannot enter the model; `where` names its source. Modalities of
    one sample may differ in length by `max_length_mismatch` steps (they are cut to the shortest)."""
    if not sample.features:
        raise DataError(f"{where}: sample '{sample.name}' has no modality at all")
    for m, arr in sample.features.items():
        if m not in modalities:
            raise DataError(f"{where}: sample '{sample.name}' has unknown modality '{m}' "
                            f"(expected one of {modalities})")
        if arr.ndim != 2:
            raise DataError(f"{where}: sample '{sample.name}' modality '{m}' must be 2-D (T, D), "
                            f"got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise DataError(f"{where}: sample '{sample.name}' modality '{m}' has T = 0 time steps")
        if m in dims and arr.shape[1] != dims[m]:
            raise DataError(f"{where}: sample '{sample.name}' modality '{m}' has dim {arr.shape[1]}, "
                            f"expected {dims[m]}")
        if not np.isfinite(arr).all():
            raise DataError(f"{where}: sample '{sample.name}' modality '{m}' holds NaN or Inf values")
    lengths = {m: arr.shape[0] for m, arr in sample.features.items()}
    if max(lengths.values()) - min(lengths.values()) > max_length_mismatch:
        raise DataError(f"{where}: sample '{sample.name}' has modalities of lengths {lengths}, which differ by "
                        f"more than {max_length_mismatch} step(s) (data.max_length_mismatch)")


def check_disjoint(splits: dict[str, list[Sample]], where: str) -> None:
    """Refuse a sample name that appears in two splits (a test sample seen in training)."""
    seen: dict[str, str] = {}
    for split, samples in splits.items():
        for s in samples:
            if s.name in seen and seen[s.name] != split:
                raise DataError(f"{where}: sample '{s.name}' is in both the {seen[s.name]} and the {split} split")
            seen[s.name] = split
