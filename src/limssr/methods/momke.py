"""MoMKE (Xu et al., ACM MM'24), simplified for AQA after `wxxv/MoMKE`.

Per modality a projector and a modality-specific expert (a small temporal transformer). Stage 1
(the first `baseline.stage_fraction` of the epochs): each modality goes through its own expert only,
with a unimodal head and loss. Stage 2: each shown modality goes through all experts, mixed per token
by that modality's softmax router ("soft MoE"); hidden modalities are zeros; the channels are
concatenated, refined by a residual MLP, pooled over time and regressed.

Where this differs from the original: one model serves all 7 subsets (stage 2 trains with one random
subset per batch, cut to what the data shows) instead of one model per test condition; stage 1 uses
what the data shows rather than always-complete data; temporal mean pooling and a sigmoid head replace
the utterance classifier. Model selection only considers stage-2 epochs: in stage 1 the scoring
(stage-2) head is not trained yet.
"""

from __future__ import annotations

import torch
from torch import nn

from limssr.layers import masked_mean, regressor
from limssr.methods.base import (step_masks_and_union, Method, ScoreOutput, drop_for_training, gdlt_projections, mse, project_all,
                                 temporal_encoder)
from limssr.methods.registry import register


class MoMKE(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, m = cfg.baseline, len(self.modalities)
        self.alpha_mse, self.modality_dropout = cfg.loss.alpha_mse, b.modality_dropout
        self.stage1_epochs = int(round(b.stage_fraction * cfg.train.epochs))
        if self.stage1_epochs >= cfg.train.epochs:
            raise ValueError(f"baseline.stage_fraction={b.stage_fraction} leaves no stage-2 epoch of "
                             f"train.epochs={cfg.train.epochs}: MoMKE scores through its stage-2 head")
        self.proj = gdlt_projections(self.dims, b.hidden, b.dropout)
        self.experts = nn.ModuleList(temporal_encoder(b.hidden, b.heads, 1, b.dropout) for _ in range(m))
        self.unimodal_heads = nn.ModuleList(regressor(b.hidden, b.dropout) for _ in range(m))
        self.routers = nn.ModuleList(nn.Sequential(nn.Linear(b.hidden, b.hidden // 2), nn.GELU(),
                                                   nn.Linear(b.hidden // 2, m)) for _ in range(m))
        self.refine = nn.Sequential(nn.Linear(m * b.hidden, m * b.hidden), nn.GELU(), nn.Dropout(b.dropout),
                                    nn.Linear(m * b.hidden, m * b.hidden))
        self.head = regressor(m * b.hidden, b.dropout)

    def selectable_epoch(self, epoch: int) -> bool:
        # stage-1 epochs train only the unimodal heads; scoring goes through the stage-2 head
        return epoch >= self.stage1_epochs

    @property
    def stage(self) -> int:
        return 1 if self.training and self.epoch < self.stage1_epochs else 2

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        if self.training and self.stage == 2 and self.modality_dropout:
            mask = drop_for_training(mask, incomplete_only=False)
        tm, time_mask = step_masks_and_union(time_mask, len(self.modalities))  # (B, M, T), (B, T)
        x = project_all(self.proj, self.modalities, features, mask[:, :, None] & tm)
        pad = ~tm  # (B, M, T)
        if self.stage == 1:
            per = torch.stack([torch.sigmoid(self.unimodal_heads[j](masked_mean(self.experts[j](x[:, j], src_key_padding_mask=pad[:, j]),
                                                                                 tm[:, j]))).squeeze(-1)
                               for j in range(len(self.modalities))], dim=1)
            w = mask.to(per.dtype)
            score = (per * w).sum(1) / w.sum(1).clamp(min=1.0)
            return ScoreOutput(score, {"per_modality": per, "mask": mask})
        mixed = []
        for j in range(len(self.modalities)):
            outs = torch.stack([e(x[:, j], src_key_padding_mask=pad[:, j]) for e in self.experts], dim=-1)  # (B,T,d,E)
            route = torch.softmax(self.routers[j](x[:, j]), dim=-1)[:, :, None, :]
            mixed.append((outs * route).sum(-1) * mask[:, j, None, None])
        h = torch.cat(mixed, dim=-1)
        h = h + self.refine(h)
        return ScoreOutput(torch.sigmoid(self.head(masked_mean(h, time_mask))).squeeze(-1))

    def loss(self, out, target):
        task = mse(out.score, target)
        if "per_modality" not in out.extras:
            return {"loss": self.alpha_mse * task, "mse": task}
        per, mask = out.extras["per_modality"], out.extras["mask"]
        unimodal = ((per - target[:, None]) ** 2 * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": self.alpha_mse * unimodal, "mse": task, "unimodal": unimodal}


@register("momke", "MoMKE (ACM MM'24): modality experts, then per-token soft mixture of all experts")
def build(cfg):
    return MoMKE(cfg)
