"""A plain reference: late fusion of per-modality heads, averaged over the modalities present.

Each modality has its own projector, one-layer temporal transformer, mean pooling and sigmoid head;
the score is the mean of the heads of the shown modalities. Every head is also trained on its own
(MSE of each shown modality's head), so a modality alone still scores. Not from a paper.
"""

from __future__ import annotations

import torch
from torch import nn

from limssr.layers import masked_mean, regressor
from limssr.methods.base import step_masks, Method, ScoreOutput, drop_for_training, gdlt_projections, mse, temporal_encoder
from limssr.methods.registry import register


class LateFusion(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, self.alpha_mse = cfg.baseline, cfg.loss.alpha_mse
        self.modality_dropout = b.modality_dropout
        self.proj = gdlt_projections(self.dims, b.hidden, b.dropout)
        self.encoders = nn.ModuleDict({m: temporal_encoder(b.hidden, b.heads, 1, b.dropout) for m in self.modalities})
        self.heads = nn.ModuleDict({m: regressor(b.hidden, b.dropout) for m in self.modalities})

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        if self.training and self.modality_dropout:
            mask = drop_for_training(mask, incomplete_only=False)
        tm = step_masks(time_mask, len(self.modalities))  # (B, M, T)
        per = []
        for j, m in enumerate(self.modalities):
            x = self.proj[m].sequence(features[m], mask[:, j, None] & tm[:, j])
            h = self.encoders[m](x, src_key_padding_mask=~tm[:, j])
            per.append(torch.sigmoid(self.heads[m](masked_mean(h, tm[:, j]))).squeeze(-1))
        per = torch.stack(per, dim=1)  # (B, M)
        w = mask.to(per.dtype)
        score = (per * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        return ScoreOutput(score, {"per_modality": per, "mask": mask})

    def loss(self, out, target):
        task = mse(out.score, target)
        per, mask = out.extras["per_modality"], out.extras["mask"]
        heads = ((per - target[:, None]) ** 2 * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": self.alpha_mse * (task + heads), "mse": task, "heads": heads}


@register("late-fusion", "per-modality heads averaged over the modalities present (plain reference)")
def build(cfg):
    return LateFusion(cfg)
