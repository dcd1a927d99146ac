"""The LIMSSR input sequence: the prompt text for a mask and where every part of the sequence sits.

Layout of one sample (as LIMSSR's public code builds it):

    prompt (P tokens) | per modality, present ones first then missing ones, in configured order:
    <m_start> T_m x (projected feature or <missing_m>) <m_end> | K fusion tokens

T_m is the batch's T for time-aligned modalities, and the stated span length of a modality with a
length of its own (`model.span_lengths`).

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
    steps: tuple[int, ...]  # (M,): T_m, the steps of each modality's span, in configured order
    num_fusion: int  # K

    @property
    def total(self) -> int:
        """Padded length of the batch's sequences."""
        return int(self.length.max())


def build_layout(mask: torch.Tensor, prompt_len: torch.Tensor, steps: int | tuple[int, ...] | list[int],
                 num_fusion: int) -> Layout:
    """Lay out a batch with modality mask (B, M) and prompt lengths (B,); `steps` is T for every
    modality, or T_m per modality in configured order."""
    bsz, num_mod = mask.shape
    device = mask.device
    steps = (steps,) * num_mod if isinstance(steps, int) else tuple(steps)
    idx = torch.arange(num_mod, device=device).expand(bsz, -1)
    # sort key: present modalities first, each group in configured order (a stable sort)
    key = (~mask).long() * num_mod + idx
    modality_at = key.argsort(dim=1)
    slot_of = modality_at.argsort(dim=1)
    block = torch.tensor(steps, device=device) + 2  # (M,) tokens of each modality's block
    slot_block = block[modality_at]  # (B, M): block length in each slot
    slot_start = slot_block.cumsum(dim=1) - slot_block  # (B, M): where each slot's block begins
    span_start = prompt_len[:, None] + slot_start.gather(1, slot_of) + 1
    fusion_start = prompt_len + (sum(steps) + 2 * num_mod)
    return Layout(prompt_len=prompt_len, slot_of=slot_of, modality_at=modality_at, span_start=span_start,
                  fusion_start=fusion_start, length=fusion_start + num_fusion, steps=steps,
                  num_fusion=num_fusion)


def span_positions(layout: Layout) -> torch.Tensor:
    """(B, sum of T_m): the positions of every span step, modality after modality (configured order)."""
    device = layout.span_start.device
    return torch.cat([layout.span_start[:, j, None] + torch.arange(t, device=device)
                      for j, t in enumerate(layout.steps)], dim=1)


def padded_span_positions(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Span positions padded to the longest span: (B, M, Tmax) long (past a shorter modality's T_m,
    its first step again), and (M, Tmax) bool, True where the step exists."""
    longest = max(layout.steps)
    device = layout.span_start.device
    offsets = torch.arange(longest, device=device)
    exists = offsets[None, :] < torch.tensor(layout.steps, device=device)[:, None]  # (M, Tmax)
    pos = layout.span_start[:, :, None] + torch.where(exists, offsets, 0)[None]
    return pos, exists


def gather_spans(hidden: torch.Tensor, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (B, L, H) of every span step, padded to the longest span: (B, M, Tmax, H), and
    (M, Tmax) bool, True where the step exists."""
    pos, exists = padded_span_positions(layout)
    bsz, num_mod, longest = pos.shape
    spans = hidden.gather(1, pos.flatten(1)[..., None].expand(-1, -1, hidden.shape[-1]))
    return spans.view(bsz, num_mod, longest, -1), exists
