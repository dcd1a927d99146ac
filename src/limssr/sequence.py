"""The LIMSSR input sequence: the prompt text for a mask and where every part of the sequence sits.

Layout of one sample (as LIMSSR's public code builds it):

    prompt (P tokens) | per modality, present ones first then missing ones, in configured order:
    <m_start> T x (projected feature or <missing_m>) <m_end> | K fusion tokens

P depends on the mask. Samples of one batch may have different masks, hence different P: each
sample's sequence starts at position 0 and shorter ones are padded at the end (causal attention means
no real token ever sees that padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SENTENCES = (
    "Given the available {avail} features from an action video.",
    "The {miss} modality is missing.",
    "Based on the available modalities, please infer and reconstruct the useful latent representations "
    "for the missing {miss} modalities at the designated positions.",
    "Then integrate and enhance all multimodal features for action quality assessment.",
    "Output the fused multi-dimensional feature representations at the designated feature dimension positions:",
)


def prompt_text(mask: tuple[bool, ...] | list[bool], names: list[str]) -> str:
    """The reference prompt for a mask: five sentences, each followed by one space."""
    avail = ", ".join(n for n, present in zip(names, mask) if present) or "no available modality"
    miss = ", ".join(n for n, present in zip(names, mask) if not present) or "none"
    return "".join(s.format(avail=avail, miss=miss) + " " for s in SENTENCES)


@dataclass
class Layout:
    """Positions, per sample, of every part of the sequence (all (B, ...) long tensors)."""

    prompt_len: torch.Tensor  # (B,)
    slot_of: torch.Tensor  # (B, M): block slot of modality m (present modalities take the first slots)
    modality_at: torch.Tensor  # (B, M): modality index in slot s
    span_start: torch.Tensor  # (B, M): position of modality m's first time step
    fusion_start: torch.Tensor  # (B,): position of the first fusion token
    length: torch.Tensor  # (B,): real tokens in the sequence
    steps: int  # T
    num_fusion: int  # K

    @property
    def total(self) -> int:
        """Padded length of the batch's sequences."""
        return int(self.length.max())


def build_layout(mask: torch.Tensor, prompt_len: torch.Tensor, steps: int, num_fusion: int) -> Layout:
    """Lay out a batch with modality mask (B, M) and prompt lengths (B,)."""
    bsz, num_mod = mask.shape
    device = mask.device
    idx = torch.arange(num_mod, device=device).expand(bsz, -1)
    # sort key: present modalities first, each group in configured order (a stable sort)
    key = (~mask).long() * num_mod + idx
    modality_at = key.argsort(dim=1)
    slot_of = modality_at.argsort(dim=1)
    block = steps + 2
    span_start = prompt_len[:, None] + slot_of * block + 1
    fusion_start = prompt_len + num_mod * block
    return Layout(prompt_len=prompt_len, slot_of=slot_of, modality_at=modality_at, span_start=span_start,
                  fusion_start=fusion_start, length=fusion_start + num_fusion, steps=steps,
                  num_fusion=num_fusion)
