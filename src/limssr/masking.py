"""Training-time missingness: which modalities each training sample shows the model.

Protocols
---------
strict     (default) every training sample gets one fixed incomplete subset, drawn once (seeded)
           from the subsets of its available modalities that are not complete; no sample is ever
           seen complete and a sample's hidden modality never reaches the model. The paper's setting.
per-batch  one of the non-empty subsets, uniformly, for the whole batch, redrawn every batch; the
           complete set is in the pool (about 1/7 of batches with three modalities). The reference
           code's behaviour.
complete   every available modality, always (training on complete data, for baselines).
"""

from __future__ import annotations

import numpy as np
import torch

from limssr.subsets import all_subsets, incomplete_subsets

PROTOCOLS = ("strict", "per-batch", "complete")


class MaskingProtocol:
    """Chooses the (B, M) boolean mask of modalities shown for a batch of training samples."""

    name = "base"

    def masks(self, index: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Complete(MaskingProtocol):
    name = "complete"

    def masks(self, index, available):
        return available.clone()


class PerBatch(MaskingProtocol):
    name = "per-batch"

    def __init__(self, num_modalities: int, seed: int):
        self.pool = torch.tensor(all_subsets(num_modalities), dtype=torch.bool)
        self.generator = torch.Generator().manual_seed(seed)

    def masks(self, index, available):
        choice = int(torch.randint(len(self.pool), (), generator=self.generator))
        return self.pool[choice].expand(len(index), -1) & available

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class Strict(MaskingProtocol):
    """Fixed per-sample incomplete masks; `available` is the (N, M) availability of the data."""

    name = "strict"

    def __init__(self, available: np.ndarray, seed: int, names: list[str] | None = None):
        available = np.asarray(available, dtype=bool)
        n, m = available.shape
        if m < 2:
            raise ValueError("the 'strict' protocol needs at least two modalities "
                             "(with one, every non-empty subset is complete)")
        pool = np.array(incomplete_subsets(m), dtype=bool)
        rng = np.random.default_rng(seed)
        table = np.zeros((n, m), dtype=bool)
        for i in range(n):
            allowed = pool[(pool & ~available[i]).sum(axis=1) == 0]
            if len(allowed) == 0:
                who = names[i] if names else f"#{i}"
                raise ValueError(f"training sample '{who}' has no modality at all; "
                                 "the 'strict' protocol cannot give it a non-empty mask")
            table[i] = allowed[rng.integers(len(allowed))]
        self.table = torch.from_numpy(table)

    def masks(self, index, available):
        return self.table[index] & available


def build_protocol(name: str, available: np.ndarray, seed: int,
                   names: list[str] | None = None) -> MaskingProtocol:
    """The protocol `name` for training data whose modality availability is `available` (N, M)."""
    if name == "strict":
        return Strict(available, seed, names)
    if name == "per-batch":
        return PerBatch(available.shape[1], seed)
    if name == "complete":
        return Complete()
    raise ValueError(f"unknown missingness protocol '{name}'; choose one of {', '.join(PROTOCOLS)}")
