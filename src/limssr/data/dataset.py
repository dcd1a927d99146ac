"""Torch dataset over in-memory samples: temporal crop/pad, padding mask, availability mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from limssr.data.samples import Sample


@dataclass
class Batch:
    """A collated batch. `mask` is what the model may see: availability AND the protocol's choice."""

    features: dict[str, torch.Tensor]  # modality -> (B, T, D); zeros where not visible
    time_mask: torch.Tensor  # (B, M, T) bool, per modality: False on padded steps
    available: torch.Tensor  # (B, M) bool, modality present in the data
    mask: torch.Tensor  # (B, M) bool, modality shown to the model
    label: torch.Tensor  # (B,) score / score_range; NaN where unlabelled
    index: torch.Tensor  # (B,) sample index in its dataset
    names: list[str]

    def _map(self, fn) -> "Batch":
        return Batch(features={m: fn(x) for m, x in self.features.items()}, time_mask=fn(self.time_mask),
                     available=fn(self.available), mask=fn(self.mask), label=fn(self.label), index=fn(self.index),
                     names=self.names)

    def to(self, device: torch.device | str) -> "Batch":
        return self._map(lambda x: x.to(device, non_blocking=True))

    def pin_memory(self) -> "Batch":
        return self._map(lambda x: x.pin_memory())

    def __len__(self) -> int:
        return len(self.names)


class AQADataset(Dataset):
    """Samples cut to `clip_num` steps: a random crop in training, a centre crop (or the full length)
    at test. One crop start serves every time-aligned modality of a sample; one longer than the
    shortest is first trimmed at the end, so lengths that differ by a step never break collation.

    A modality in `span_lengths` has a length of its own (a title, a tabular vector): it is cropped on
    its own to at most `span_lengths[m]` steps (the same kind of crop), and a missing one is that many
    zero steps (the model puts its placeholders there)."""

    def __init__(self, samples: list[Sample], modalities: list[str], dims: dict[str, int],
                 score_range: float, clip_num: int, train: bool, test_crop: str = "center",
                 train_crop: str = "uniform", span_lengths: dict[str, int] | None = None):
        self.samples = samples
        self.span_lengths = dict(span_lengths or {})
        self.modalities = modalities
        self.dims = dims
        self.score_range = float(score_range)
        self.clip_num = clip_num
        self.train = train
        self.test_crop = test_crop
        self.train_crop = train_crop

    def __len__(self) -> int:
        return len(self.samples)

    def _crop_start(self, length: int, keep: int) -> int:
        if length <= keep:
            return 0
        if self.train:
            # "uniform": every start in [0, length - keep]; "reference": the last start is never
            # drawn, as in the reference code's randint(0, L - clip_num)
            last = length - keep + (0 if self.train_crop == "reference" else 1)
            return int(torch.randint(0, last, ()).item())
        return (length - keep) // 2

    def _crop(self, length: int, keep: int) -> tuple[int, int]:
        if self.train or self.test_crop == "center":
            start = self._crop_start(length, keep)
            return start, start + min(length, keep)
        return 0, length

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        aligned = [arr.shape[0] for m, arr in sample.features.items() if m not in self.span_lengths]
        # no time-aligned modality present: the missing ones get clip_num placeholder steps
        start, stop = self._crop(min(aligned), self.clip_num) if aligned else (0, self.clip_num)
        feats = {}
        for m in self.modalities:
            arr = sample.features.get(m)
            if m in self.span_lengths:  # a length of its own: its own crop
                if arr is None:
                    feats[m] = torch.zeros(self.span_lengths[m], self.dims[m])
                    continue
                a, b = self._crop(arr.shape[0], self.span_lengths[m])
                arr = arr[a:min(b, a + self.span_lengths[m])]
            elif arr is None:
                feats[m] = torch.zeros(stop - start, self.dims[m])
                continue
            else:
                arr = arr[start:stop]
            feats[m] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        label = float("nan") if sample.score is None else sample.score / self.score_range
        return {"index": i, "name": sample.name, "features": feats,
                "available": [m in sample.features for m in self.modalities], "label": label}

    def pad_length(self, lengths: list[int]) -> int:
        """Length a batch is padded to: `clip_num` (as the reference), or the longest at full length."""
        return max(lengths) if (not self.train and self.test_crop == "full") else self.clip_num


def collate(items: list[dict], modalities: list[str], pad_to: int | None = None) -> Batch:
    """Stack items, zero-padding each modality at the end to one length T; the time mask marks each
    modality's real steps (a missing modality's zero steps count as real: the model decides)."""
    lengths = torch.tensor([[it["features"][m].shape[0] for m in modalities] for it in items])  # (B, M)
    steps = max(pad_to or 0, int(lengths.max()))
    bsz = len(items)
    features = {}
    for j, m in enumerate(modalities):
        dim = items[0]["features"][m].shape[1]
        out = torch.zeros(bsz, steps, dim)
        for b, it in enumerate(items):
            out[b, : lengths[b, j]] = it["features"][m]
        features[m] = out
    time_mask = torch.arange(steps)[None, None, :] < lengths[:, :, None]
    available = torch.tensor([it["available"] for it in items], dtype=torch.bool)
    return Batch(features=features, time_mask=time_mask, available=available, mask=available.clone(),
                 label=torch.tensor([it["label"] for it in items], dtype=torch.float32),
                 index=torch.tensor([it["index"] for it in items]), names=[it["name"] for it in items])


def hide(batch: Batch, mask: torch.Tensor) -> Batch:
    """Show the model only the modalities in `mask` (B, M): the others are zeroed here, in the data
    layer, so a hidden modality's values never reach the model."""
    mask = mask & batch.available
    empty = ~mask.any(dim=1)
    if empty.any():
        name = batch.names[int(empty.nonzero()[0])]
        raise ValueError(f"sample '{name}' would be left with no modality: none of the requested "
                         f"modalities is present in its data")
    features = {}
    for j, (m, x) in enumerate(batch.features.items()):
        features[m] = torch.where(mask[:, j, None, None], x, torch.zeros((), dtype=x.dtype))
    return Batch(features=features, time_mask=batch.time_mask, available=batch.available, mask=mask,
                 label=batch.label, index=batch.index, names=batch.names)
