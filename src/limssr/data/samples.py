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
    # modalities not time-aligned with the others (a title, a tabular vector): each keeps its own
    # length, is cropped on its own and gets a span of its own in the model
    own_length: list[str] = field(default_factory=list)

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
        if self.own_length:  # (absent from older fingerprints: time-aligned data keeps its fingerprint)
            h.update(json.dumps(["own_length", self.own_length]).encode())
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


def array_problem(arr: np.ndarray, dim: int | None = None) -> str | None:
    """What keeps one feature array out of the model, or None: the one rule `data check` and the
    readers share (so the two cannot disagree)."""
    if arr.ndim != 2:
        return f"must be 2-D (T, D), got shape {arr.shape}"
    if arr.shape[0] == 0:
        return "has T = 0 time steps"
    if dim is not None and arr.shape[1] != dim:
        return f"has dim {arr.shape[1]}, expected {dim}"
    if not np.isfinite(arr).all():
        return "holds NaN or Inf values"
    return None


def length_problem(lengths: dict[str, int], max_length_mismatch: int = 1,
                   own_length: list[str] | tuple[str, ...] = ()) -> str | None:
    """What is wrong with a sample's modality lengths (T per modality), or None. Time-aligned
    modalities may differ by `max_length_mismatch` steps (they are cut to the shortest); those in
    `own_length` may have any length."""
    aligned = {m: t for m, t in lengths.items() if m not in own_length}
    if aligned and max(aligned.values()) - min(aligned.values()) > max_length_mismatch:
        return (f"has modalities of lengths {aligned}, which differ by more than {max_length_mismatch} step(s) "
                "(data.max_length_mismatch); modalities that are not time-aligned go under 'own_length' "
                "in limssr-data.yaml")
    return None


def check_sample(sample: Sample, modalities: list[str], dims: dict[str, int], where: str,
                 max_length_mismatch: int = 1, own_length: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse a sample whose arrays cannot enter the model (`array_problem`, `length_problem`);
    `where` names its source."""
    if not sample.features:
        raise DataError(f"{where}: sample '{sample.name}' has no modality at all")
    for m, arr in sample.features.items():
        if m not in modalities:
            raise DataError(f"{where}: sample '{sample.name}' has unknown modality '{m}' "
                            f"(expected one of {modalities})")
        problem = array_problem(arr, dims.get(m))
        if problem:
            raise DataError(f"{where}: sample '{sample.name}' modality '{m}' {problem}")
    problem = length_problem({m: arr.shape[0] for m, arr in sample.features.items()}, max_length_mismatch, own_length)
    if problem:
        raise DataError(f"{where}: sample '{sample.name}' {problem}")


def check_disjoint(splits: dict[str, list[Sample]], where: str) -> None:
    """Refuse a sample name that appears in two splits (a test sample seen in training)."""
    seen: dict[str, str] = {}
    for split, samples in splits.items():
        for s in samples:
            if s.name in seen and seen[s.name] != split:
                raise DataError(f"{where}: sample '{s.name}' is in both the {seen[s.name]} and the {split} split")
            seen[s.name] = split
