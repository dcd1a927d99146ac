"""MCMoE (Xu et al., AAAI'26), after `XuHuangbiao/MCMoE:models/model.py` (baselines.md section 6).

Per modality a GDLT projector (D -> D/2 -> 256); ONE shared temporal transformer encoder (3 layers,
2 heads) applied to each modality; for each missing modality a gated generator (two 4-head attention
layers whose all-zero query attends to the present encodings, times a sigmoid gate on the pooled
output and context); three conv experts (Conv1d k=3 256->128, BN, GELU, Conv1d k=1 ->256, BN) mixed
per token by a shared softmax router, for every modality; KL guidance from each modality's own expert
on its full encoding; fusion convs 768 -> 512 -> 256 and a GDLT grade decoder (4 queries, 3 layers).
Loss: alpha_mse * MSE + alpha * triplet(query states) + recon_weight * (reconstruction + KL).

Where this differs from the original:
* `baseline.mcmoe_mode=faithful` keeps the query positional encoding indexed by the sample's
  position in the batch (the original's quirk: a prediction depends on batch order); `fixed` drops it.
  In `fixed` mode the generator attends with one query vector and broadcasts it over time, which
  is numerically what the all-zero query computes anyway.
* Training draws one incomplete subset per batch, as the original does, but cut to what the data
  shows: under training-time missingness, a modality the data layer hid is never a reconstruction
  target (the original needs complete training data). Hidden modalities are passed as a mask, not
  detected by `sum() == 0`.
* The token regulariser is the batch-hard triplet loss with cosine distance (as LIMSSR's), and the
  optimiser and schedule are limssr's shared ones (AdamW, warm-up + cosine) instead of Adam.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from limssr.losses import batch_hard_cosine_triplet
from limssr.methods import register
from limssr.methods.base import GradeDecoder, Method, ScoreOutput, drop_for_training, gdlt_projections, mse, project_all

D = 256


class GatedGenerator(nn.Module):
    """Generates a missing modality's encoding from the present ones."""

    def __init__(self, d: int, heads: int, dropout: float, single_query: bool):
        super().__init__()
        self.attn1 = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.attn2 = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Linear(2 * d, d)
        self.single_query = single_query

    def forward(self, context: torch.Tensor, context_valid: torch.Tensor, steps: int) -> torch.Tensor:
        """context (B, L, d) of the present encodings, valid (B, L) -> (B, steps, d)."""
        q_len = 1 if self.single_query else steps
        q = context.new_zeros(context.shape[0], q_len, context.shape[2])
        out, _ = self.attn1(q, context, context, key_padding_mask=~context_valid, need_weights=False)
        out, _ = self.attn2(out, context, context, key_padding_mask=~context_valid, need_weights=False)
        w = context_valid[..., None].to(context.dtype)
        pooled_context = (context * w).sum(1) / w.sum(1).clamp(min=1.0)
        gate = torch.sigmoid(self.gate(torch.cat([out.mean(dim=1), pooled_context], dim=-1)))
        return (out * gate[:, None, :]).expand(-1, steps, -1)


def conv_expert(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(d, d // 2, 3, padding=1), nn.BatchNorm1d(d // 2), nn.GELU(),
                         nn.Conv1d(d // 2, d, 1), nn.BatchNorm1d(d))


class MCMoE(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, m = cfg.baseline, len(self.modalities)
        self.alpha_mse, self.alpha, self.recon_weight, self.margin = cfg.loss.alpha_mse, cfg.loss.alpha, b.recon_weight, cfg.loss.margin
        self.proj = gdlt_projections(self.dims, D, 0.0)
        layer = nn.TransformerEncoderLayer(D, 2, 2 * D, b.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)  # shared by all modalities
        self.generators = nn.ModuleDict({k: GatedGenerator(D, 4, b.dropout, b.mcmoe_mode == "fixed")
                                         for k in self.modalities})
        self.experts = nn.ModuleList(conv_expert(D) for _ in range(m))
        self.router = nn.Sequential(nn.Linear(D, D // 2), nn.GELU(), nn.Linear(D // 2, m))
        self.fuse = nn.Sequential(nn.Conv1d(m * D, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                  nn.Conv1d(512, D, 1), nn.BatchNorm1d(D))
        self.head = GradeDecoder(D, b.n_query, 3, 2, b.dropout,
                                 query_positions="batch-index" if b.mcmoe_mode == "faithful" else "none")

    def _mix(self, seq: torch.Tensor) -> torch.Tensor:
        """Every expert on (B, T, d), mixed per token by the router."""
        outs = torch.stack([e(seq.transpose(1, 2)).transpose(1, 2) for e in self.experts], dim=-1)  # (B,T,d,E)
        return (outs * torch.softmax(self.router(seq), dim=-1)[:, :, None, :]).sum(-1)

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        bsz, steps = time_mask.shape
        shown = drop_for_training(mask, incomplete_only=True) if self.training else mask
        # encodings of everything the data shows (targets for what training drops), zeros elsewhere
        x = project_all(self.proj, self.modalities, features, mask[:, :, None] & time_mask[:, None, :])
        enc = torch.stack([self.encoder(x[:, j], src_key_padding_mask=~time_mask) for j in range(x.shape[1])], dim=1)
        enc = enc * mask[:, :, None, None]
        context_valid = (shown[:, :, None] & time_mask[:, None, :]).flatten(1)  # (B, M*T)
        context = (enc * shown[:, :, None, None]).flatten(1, 2)
        seqs, recon, kl = [], [], []
        for j, m in enumerate(self.modalities):
            generated = self.generators[m](context, context_valid, steps)
            seq = torch.where(shown[:, j, None, None], enc[:, j], generated)
            fused_j = self._mix(seq)
            seqs.append(fused_j)
            target_rows = mask[:, j] & ~shown[:, j]  # dropped by training, shown by the data
            if target_rows.any():
                recon.append(F.mse_loss(generated[target_rows], enc[target_rows, j].detach()))
            if self.training and mask[:, j].any():
                own = self.experts[j](enc[:, j].transpose(1, 2)).transpose(1, 2)
                rows = mask[:, j]
                # KL(P_expert || P_fusion) over channels, averaged over elements (kl_div's 'mean')
                p_log, q_log = F.log_softmax(own[rows], -1), F.log_softmax(fused_j[rows], -1)
                kl.append((p_log.exp() * (p_log - q_log)).mean())
        fused = self.fuse(torch.cat(seqs, dim=-1).transpose(1, 2)).transpose(1, 2)
        score, states = self.head(fused, time_mask)
        extras = {"states": states,
                  "aux_loss": (sum(recon) if recon else fused.new_zeros(())) + (sum(kl) if kl else fused.new_zeros(()))}
        return ScoreOutput(score, extras)

    def loss(self, out, target):
        task = mse(out.score, target)
        triplet = batch_hard_cosine_triplet(out.extras["states"], self.margin)
        aux = out.extras["aux_loss"]
        total = self.alpha_mse * task + self.alpha * triplet + self.recon_weight * aux
        return {"loss": total, "mse": task, "triplet": triplet, "recon_kl": aux}


@register("mcmoe", "MCMoE (AAAI'26): shared encoder, gated generators, conv mixture of experts, GDLT head")
def build(cfg):
    return MCMoE(cfg)
