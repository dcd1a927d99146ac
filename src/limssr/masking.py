"""Training-time missingness: which modalities each training sample shows the model.

Every protocol's mask is intersected with what the data has (natural missingness) and is never
empty. Hidden modalities are zeroed in the data layer and never reach the model.

Protocols
---------
strict      (default) every training sample gets one fixed incomplete subset, drawn once (seeded)
            from the incomplete subsets of its available modalities: no sample is ever seen complete.
            The paper's setting. With `complete_fraction` > 0 that fraction of samples (chosen once)
            stays complete instead.
per-batch   one non-empty subset, uniformly, for the whole batch, redrawn every batch; the complete
            set is in the pool (1/7 of batches with three modalities). The reference code's behaviour.
            A sample with none of the drawn modalities shows what it has.
per-sample  an independent uniform non-empty subset (of what the sample has) per sample and step.
rate        each modality hidden independently with probability `missing_rate`, at every step;
            if that hides everything a sample has, one of its modalities (uniformly) is kept.
fixed       one subset (`fixed_subset`, e.g. "vf") for every sample throughout.
natural     exactly what the data has (natural missingness only).
complete    every modality the data has (an alias of `natural`, named for baselines trained on
            complete data).
"""

from __future__ import annotations

import numpy as np
import torch

from limssr.config import MISSINGNESS_PROTOCOLS as PROTOCOLS
from limssr.config import ConfigError
from limssr.data.samples import DataError
from limssr.subsets import all_subsets, incomplete_subsets, parse_subset


class MaskingProtocol:
    """Chooses the (B, M) boolean mask of modalities shown for a batch of training samples."""

    name = "base"
    fixed_per_sample = False  # True: a sample's mask never changes (recorded once per run)

    def masks(self, index: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _Random(MaskingProtocol):
    """A protocol that draws at every step from its own seeded generator (saved for resume)."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])


class Natural(MaskingProtocol):
    name = "natural"
    fixed_per_sample = True

    def masks(self, index, available):
        return available.clone()


class Complete(Natural):
    name = "complete"


class Fixed(MaskingProtocol):
    name = "fixed"
    fixed_per_sample = True

    def __init__(self, subset: tuple[bool, ...]):
        self.subset = torch.tensor(subset, dtype=torch.bool)

    def masks(self, index, available):
        return self.subset.expand(len(index), -1) & available


class PerBatch(_Random):
    """A sample that has none of the batch's subset (natural missingness) shows what it has."""

    name = "per-batch"

    def __init__(self, num_modalities: int, seed: int):
        super().__init__(seed)
        self.pool = torch.tensor(all_subsets(num_modalities), dtype=torch.bool)

    def masks(self, index, available):
        choice = int(torch.randint(len(self.pool), (), generator=self.generator))
        drawn = self.pool[choice].expand(len(index), -1) & available
        return torch.where(drawn.any(dim=1, keepdim=True), drawn, available)


class PerSample(_Random):
    """Uniform over the non-empty subsets of what each sample has."""

    name = "per-sample"

    def __init__(self, num_modalities: int, seed: int):
        super().__init__(seed)
        self.pool = torch.tensor(all_subsets(num_modalities), dtype=torch.bool)

    def masks(self, index, available):
        allowed = ~(self.pool[None, :, :] & ~available[:, None, :]).any(dim=2)  # (B, S): subset within available
        scores = torch.rand(allowed.shape, generator=self.generator).masked_fill(~allowed, -1.0)
        return self.pool[scores.argmax(dim=1)]


class Rate(_Random):
    name = "rate"

    def __init__(self, rate: float, seed: int):
        super().__init__(seed)
        self.rate = rate

    def masks(self, index, available):
        keep = (torch.rand(available.shape, generator=self.generator) >= self.rate) & available
        empty = ~keep.any(dim=1)
        if empty.any():  # keep one available modality, uniformly, for samples left with none
            scores = torch.rand(available.shape, generator=self.generator).masked_fill(~available, -1.0)
            rescue = torch.zeros_like(keep).scatter(1, scores.argmax(dim=1, keepdim=True), True)
            keep = torch.where(empty[:, None], rescue & available, keep)
        return keep


class Strict(MaskingProtocol):
    """Fixed per-sample incomplete masks; `available` is the (N, M) availability of the data."""

    name = "strict"
    fixed_per_sample = True

    def __init__(self, available: np.ndarray, seed: int, names: list[str] | None = None,
                 complete_fraction: float = 0.0):
        available = np.asarray(available, dtype=bool)
        n, m = available.shape
        if m < 2:
            raise ConfigError("train.missing 'strict' needs at least two modalities (with one, every non-empty "
                              "subset is complete): use train.missing=complete")
        pool = np.array(incomplete_subsets(m), dtype=bool)
        rng = np.random.default_rng(seed)
        complete = np.zeros(n, dtype=bool)
        if complete_fraction > 0:  # drawn only when asked for, so the default masks stay as they were
            complete[rng.permutation(n)[: int(round(complete_fraction * n))]] = True
        table = np.zeros((n, m), dtype=bool)
        for i in range(n):
            if not available[i].any():
                who = names[i] if names else f"#{i}"
                raise DataError(f"training sample '{who}' has no modality at all; "
                                "no protocol can give it a non-empty mask")
            allowed = pool[(pool & ~available[i]).sum(axis=1) == 0]
            pick = allowed[rng.integers(len(allowed))]
            table[i] = available[i] if complete[i] else pick
        self.table = torch.from_numpy(table)

    def masks(self, index, available):
        return self.table[index] & available


def build_protocol(name: str, available: np.ndarray, seed: int, names: list[str] | None = None,
                   modalities: list[str] | None = None, missing_rate: float = 0.5,
                   complete_fraction: float = 0.0, fixed_subset: str | None = None) -> MaskingProtocol:
    """The protocol `name` for training data whose modality availability is `available` (N, M).

    Refuses a setting that would leave a training sample with no modality at all."""
    available = np.asarray(available, dtype=bool)
    num = available.shape[1]
    if name == "strict":
        return Strict(available, seed, names, complete_fraction)
    empty = np.flatnonzero(~available.any(axis=1))
    if len(empty):
        who = names[empty[0]] if names else f"#{empty[0]}"
        raise DataError(f"training sample '{who}' has no modality at all")
    if name == "per-batch":
        return PerBatch(num, seed)
    if name == "per-sample":
        return PerSample(num, seed)
    if name == "rate":
        return Rate(missing_rate, seed)
    if name in ("natural", "complete"):
        return Complete() if name == "complete" else Natural()
    if name == "fixed":
        subset = parse_subset(fixed_subset or "", modalities or [f"m{i}" for i in range(num)])
        left_empty = np.flatnonzero(~(available & np.array(subset)).any(axis=1))
        if len(left_empty):
            who = names[left_empty[0]] if names else f"#{left_empty[0]}"
            raise ConfigError(f"the 'fixed' protocol with subset '{fixed_subset}' leaves training sample "
                             f"'{who}' with no modality (none of {fixed_subset!r} is in its data)")
        return Fixed(subset)
    raise ConfigError(f"unknown missingness protocol '{name}'; choose one of {', '.join(PROTOCOLS)}")
