"""A plain reference without an LLM: missing modalities are zero-filled.

Each modality is projected (GDLT-style projector) to `baseline.hidden`; a hidden modality contributes
zeros; the channels are concatenated, mixed by a linear layer, encoded over time by a transformer
(sinusoidal positions), mean-pooled over real steps and regressed through a sigmoid. Not from a paper:
it shows what LIMSSR adds over simply zero-filling. Its own training-time modality dropout (one
subset per batch, cut to what the data shows) is on by default (`baseline.modality_dropout`).
"""

from __future__ import annotations

import torch
from torch import nn

from limssr.layers import masked_mean, regressor
from limssr.methods.base import (step_masks_and_union, Method, ScoreOutput, SinusoidalPositions, drop_for_training,
                                 gdlt_projections, mse, project_all, temporal_encoder)
from limssr.methods.registry import register


class ZeroFillEncoder(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, self.alpha_mse = cfg.baseline, cfg.loss.alpha_mse
        self.modality_dropout = b.modality_dropout
        self.proj = gdlt_projections(self.dims, b.hidden, b.dropout)
        self.mix = nn.Linear(len(self.modalities) * b.hidden, b.hidden)
        self.positions = SinusoidalPositions(b.hidden)
        self.encoder = temporal_encoder(b.hidden, b.heads, b.layers, b.dropout)
        self.head = regressor(b.hidden, b.dropout)

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        if self.training and self.modality_dropout:
            mask = drop_for_training(mask, incomplete_only=False)
        tm, time_mask = step_masks_and_union(time_mask, len(self.modalities))  # (B, M, T), (B, T)
        x = project_all(self.proj, self.modalities, features, mask[:, :, None] & tm)
        x = self.mix(x.permute(0, 2, 1, 3).flatten(2))  # (B, T, M*d) -> (B, T, d)
        x = x + self.positions.pe[: x.shape[1], 0][None]
        h = self.encoder(x, src_key_padding_mask=~time_mask)
        return ScoreOutput(torch.sigmoid(self.head(masked_mean(h, time_mask))).squeeze(-1))

    def loss(self, out, target):
        task = mse(out.score, target)
        return {"loss": self.alpha_mse * task, "mse": task}


@register("zero-fill", "encoder without an LLM; missing modalities zero-filled (plain reference)")
def build(cfg):
    return ZeroFillEncoder(cfg)
