"""ActionMAE (Woo et al., AAAI'23), simplified for AQA after `sangminwoo/ActionMAE`.

Each modality's projected sequence is encoded by its own one-layer temporal transformer and pooled into
one token. In training one random non-empty subset of modalities per batch is kept (cut to what each
sample shows, at least one), MAE style; a 2-layer
encoder with one memory token reads the kept tokens (the dropped ones masked out of attention); a 2-layer
decoder sees the encoded kept tokens and a learned mask token (plus a modality embedding) in place of
each dropped or missing one, and a linear predictor reconstructs every modality token. Loss: MSE on the
per-token-normalised tokens that were dropped (but shown by the data), plus the regression on
sigmoid(sum_m Linear_m(token_m)) over the reconstructed tokens (the original's "sum" fusion).

Where this differs from the original: per-clip spatial CNNs are replaced by the given features; a
masked attention stands in for the shuffle/unshuffle of kept tokens (the same computation); a sigmoid
regression replaces the classifier and its label smoothing; the kept subset is drawn once per batch
(`drop_for_training`, shared by the baselines), where the original draws a mask per sample; it does
not read `baseline.modality_dropout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from limssr.layers import masked_mean
from limssr.methods.base import (step_masks, Method, ScoreOutput, drop_for_training, gdlt_projections, project_all,
                                 task_and_reconstruction, temporal_encoder)
from limssr.methods.registry import register


class ActionMAE(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, m, d = cfg.baseline, len(self.modalities), cfg.baseline.hidden
        self.alpha_mse, self.recon_weight = cfg.loss.alpha_mse, b.recon_weight
        self.proj = gdlt_projections(self.dims, d, b.dropout)
        self.streams = nn.ModuleList(temporal_encoder(d, b.heads, 1, b.dropout) for _ in range(m))
        self.modality_embed = nn.Parameter(torch.randn(m, d) * 0.02)
        self.memory = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = temporal_encoder(d, b.heads, 2, b.dropout)
        self.decoder = temporal_encoder(d, b.heads, 2, b.dropout)
        self.predictor = nn.Linear(d, d)
        self.heads = nn.ModuleList(nn.Linear(d, 1) for _ in range(m))

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        kept = drop_for_training(mask, incomplete_only=False) if self.training else mask
        tm = step_masks(time_mask, len(self.modalities))  # (B, M, T)
        x = project_all(self.proj, self.modalities, features, mask[:, :, None] & tm)
        tokens = torch.stack([masked_mean(self.streams[j](x[:, j], src_key_padding_mask=~tm[:, j]), tm[:, j])
                              for j in range(len(self.modalities))], dim=1) + self.modality_embed  # (B, M, d)
        memory = self.memory.expand(tokens.shape[0], -1, -1)
        visible = torch.cat([torch.ones_like(kept[:, :1]), kept], dim=1)
        enc = self.encoder(torch.cat([memory, tokens], dim=1), src_key_padding_mask=~visible)[:, 1:]
        dec_in = torch.where(kept[..., None], enc, self.mask_token + self.modality_embed)
        recon = self.predictor(self.decoder(dec_in))
        score = torch.sigmoid(sum(h(recon[:, j]) for j, h in enumerate(self.heads))).squeeze(-1)
        target_rows = mask & ~kept
        loss = score.new_zeros(())
        if target_rows.any():
            target = tokens.detach()[target_rows]
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            loss = F.mse_loss(recon[target_rows], target)
        return ScoreOutput(score, {"recon": loss})

    def loss(self, out, target):
        return task_and_reconstruction(out, target, self.alpha_mse, self.recon_weight)


@register("actionmae", "ActionMAE (AAAI'23): modality tokens, random token dropping, MAE-style reconstruction")
def build(cfg):
    return ActionMAE(cfg)
