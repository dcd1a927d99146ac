"""GCNet (Lian et al., TPAMI'23), simplified for AQA after `zeroQiaoba/GCNet`,
without torch_geometric.

Nodes are the clips; a node's input is the concatenation of the projected modalities (hidden ones
zeroed); a 2-layer BiLSTM encodes the sequence; a temporal graph links each clip to those within
`baseline.window` steps with three relation types (past, now, future): a relational graph convolution
(one weight per relation, mean over neighbours) then a plain graph convolution, written as dense masked
matrix products. An LSTM and a linear layer fuse [node; graph]; the score comes from the mean over
clips; a linear reconstruction head predicts each modality's projected features, with an MSE on the
modalities training dropped (but the data shows).

Where this differs from the original: no speaker graph (one performer); whole-modality masks per batch
instead of per-utterance random masks; reconstruction targets are the (detached) projected features
rather than raw inputs; regression instead of classification.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from limssr.layers import masked_mean, regressor
from limssr.methods.base import (step_masks_and_union, Method, ScoreOutput, drop_for_training, gdlt_projections, project_all,
                                 task_and_reconstruction)
from limssr.methods.registry import register


class TemporalGraph(nn.Module):
    """RGCN over (past, now, future) relations within a window, then a GraphConv; dense form."""

    def __init__(self, d: int, window: int):
        super().__init__()
        self.window = window
        self.relations = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(3))
        self.self_loop = nn.Linear(d, d)
        self.conv = nn.Linear(d, d, bias=False)
        self.conv_root = nn.Linear(d, d)

    def adjacency(self, valid: torch.Tensor) -> list[torch.Tensor]:
        steps = valid.shape[1]
        idx = torch.arange(steps, device=valid.device)
        offset = idx[None, :] - idx[:, None]  # j - i
        near = offset.abs() <= self.window
        pair = valid[:, :, None] & valid[:, None, :]
        return [(near & (offset < 0))[None] & pair, (offset == 0)[None] & pair, (near & (offset > 0))[None] & pair]

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        adj = [a.to(h.dtype) for a in self.adjacency(valid)]
        out = self.self_loop(h)
        for a, w in zip(adj, self.relations):
            out = out + (a @ w(h)) / a.sum(-1, keepdim=True).clamp(min=1.0)
        out = F.relu(out)
        full = sum(adj)
        return self.conv_root(out) + (full @ self.conv(out)) / full.sum(-1, keepdim=True).clamp(min=1.0)


class GCNet(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, m, d = cfg.baseline, len(self.modalities), cfg.baseline.hidden
        self.alpha_mse, self.recon_weight, self.modality_dropout = cfg.loss.alpha_mse, b.recon_weight, b.modality_dropout
        self.proj = gdlt_projections(self.dims, d, b.dropout)
        self.lstm = nn.LSTM(m * d, d // 2, num_layers=2, batch_first=True, bidirectional=True, dropout=b.dropout)
        self.graph = TemporalGraph(d, b.window)
        self.fuse = nn.LSTM(2 * d, d // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(d, d)
        self.head = regressor(d, b.dropout)
        self.recon = nn.ModuleList(nn.Linear(d, d) for _ in range(m))

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        shown = drop_for_training(mask, incomplete_only=False) if self.training and self.modality_dropout else mask
        tm, time_mask = step_masks_and_union(time_mask, len(self.modalities))  # (B, M, T), (B, T)
        full = project_all(self.proj, self.modalities, features, mask[:, :, None] & tm)
        x = (full * shown[:, :, None, None]).permute(0, 2, 1, 3).flatten(2)  # (B, T, M*d)
        nodes, _ = self.lstm(x)
        graph = self.graph(nodes, time_mask)
        fused, _ = self.fuse(torch.cat([nodes, graph], dim=-1))
        fused = self.out(fused)
        score = torch.sigmoid(self.head(masked_mean(fused, time_mask))).squeeze(-1)
        recon = []
        for j in range(len(self.modalities)):
            rows = (mask[:, j] & ~shown[:, j])[:, None] & tm[:, j]
            if rows.any():
                recon.append(F.mse_loss(self.recon[j](fused)[rows], full[:, j][rows].detach()))
        return ScoreOutput(score, {"recon": sum(recon) if recon else score.new_zeros(())})

    def loss(self, out, target):
        return task_and_reconstruction(out, target, self.alpha_mse, self.recon_weight)


@register("gcnet", "GCNet (TPAMI'23): BiLSTM + temporal relational graph over clips, with reconstruction")
def build(cfg):
    return GCNet(cfg)
