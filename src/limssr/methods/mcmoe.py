"""MCMoE (Xu et al., AAAI'26), after the public code `XuHuangbiao/MCMoE` (models/model.py,
models/transformer.py, models/loss.py, models/triplet_loss.py, at commit 302460f).

Architecture, as the public code builds it:
* per modality a GDLT projector (Conv1d k=1 D -> D/2, BN, ReLU, Conv1d k=1 -> d, BN), where d is
  `baseline.hidden` (the public --hidden_dim, 256 in both);
* ONE temporal transformer encoder shared by all modalities: 3 post-norm ReLU layers, 2 heads,
  feed-forward width 3 * d, dropout `baseline.dropout` (0.3 in the README), a final LayerNorm,
  and xavier-uniform initialisation of every matrix (the public `Transformer` re-initialises all of
  its encoder and decoder weights this way); no positional encoding on the sequence;
* for each missing modality a gated generator: two 4-head attention layers (no dropout: the public
  code leaves `nn.MultiheadAttention` at its default 0) whose all-zero query attends to the
  encodings of the present modalities, times a sigmoid gate on [mean of the output, mean of the
  context];
* three conv experts (Conv1d k=3 d -> d/2, BN, GELU, Conv1d k=1 -> d, BN), each applied to every
  modality's sequence (encoded or generated) and mixed per token by ONE router shared by the
  modalities (Linear d -> d/2, GELU, Linear -> 3, softmax);
* fusion Conv1d(3d -> 2d, k=1), BN, ReLU, Conv1d(2d -> d), BN;
* a GDLT grade decoder: 4 learned queries (an `nn.Embedding`, so initialised N(0, 1)) decoded against
  the fused sequence by 3 post-norm layers (2 heads, feed-forward 3 * d, same dropout, final
  LayerNorm, xavier init); per-query sigmoid grades, normalised, weighted by linspace(0, 1).
* Training: one incomplete subset drawn uniformly per batch (the public `generate_modality_mask`)
  decides which encodings the model sees; every dropped modality is generated and reconstructed
  against the full encoding, whose gradient reaches the encoder (the target is not detached); a KL
  term KL(softmax(expert_m(encoding_m)) || softmax(mixture_m)) over the channels, for every
  modality, `kl_div`'s element-wise mean (gradients reach both sides); loss
  alpha_mse * MSE + alpha * triplet(decoder query states) + recon_weight * (reconstruction + KL),
  which is the public 10 * MSE + alpha * triplet + 1.0 * recon with limssr's defaults
  (loss.alpha_mse=10, baseline.recon_weight=1). The triplet loss is the public one: batch-hard over
  the flattened query states labelled by query index, cosine distance, margin `loss.margin`.

`baseline.mcmoe_mode`:
* `faithful` keeps the public code's quirk: the sinusoidal "positional" encoding meant for the grade
  queries is sliced by the batch dimension, so sample i of a batch gets the encoding of position i
  added to all its queries. A score therefore depends on the batch size and on where the sample
  sits in the batch (the order of the evaluation set). Positions the training batches never reach
  are never trained: the public code trains and scores with the same batch (32); scoring with
  batches larger than the training batch gives the samples past it untrained offsets (warned once).
* `fixed` is the same model without that encoding: a score depends only on its own sample.

Where this differs from the public code (both modes):
* Missing modalities are given by the mask (per sample), not detected by `sum() == 0` of a batch's
  encoding; the public code scores one subset for a whole batch, which is the same thing.
* Under training-time missingness (the data layer hides modalities, `strict` etc.) a modality the
  data hides is never a reconstruction or KL target, and the BatchNorm statistics of the projectors,
  the experts and the fusion convs are taken over the modalities and steps actually present (the
  masked BatchNorm of `limssr.layers.TimeProjection`); the public code trains on complete data only.
  The per-batch subset is cut to what each sample shows (a sample left with nothing keeps what it
  shows, so under `strict` many batches reconstruct nothing); `baseline.modality_dropout=false`
  turns the draw off (the public code always draws).
* Padded time steps are masked out of every attention, BatchNorm statistic and loss and are zero at
  the input of the k=3 expert convolutions (the sequence ends there); the public code pads clips
  with zeros to `clip_num` and attends to and normalises over those steps as if they were real.
* The generator attends with one query and broadcasts it over time: with an all-zero query every
  query row of the public code is identical, so this is the same computation.
* The query encoding table holds 512 positions (the public one 136, so batches over 136 fail there).
* A projector's middle width is max(D/2, d/2) (the public D/2: the same for its 768/1024-dim features).
* Training settings come from limssr's shared training loop, set to the public code's own values by
  each dataset preset's `method_defaults.mcmoe` section (Adam with L2 weight decay 1e-4, the
  README's lr, epochs and triplet weight, per-epoch cosine to 0.01 * lr without warm-up, batch 32 for
  training and scoring, no gradient clipping, dropout 0.3); a key set by the user still wins. Model
  selection is limssr's (a validation split by default); `train.selection=paper` picks the best
  epoch on the test set with every modality present, as the public code does.
* Seeds are the run's (`seed`, or the benchmark's `--seeds`, the same for every method so that runs
  pair up); the public code's fixed per-dataset seeds (1 for FS1000, 3 for Fis-V, 0 for RG) are not used.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from limssr.layers import TimeProjection, masked_mean
from limssr.losses import batch_hard_cosine_triplet
from limssr.methods.base import (step_masks_and_union, GradeDecoder, Method, ScoreOutput, drop_for_training, gdlt_projections, mse,
                                 project_all, temporal_encoder)
from limssr.methods.registry import register

HEADS, ENCODER_LAYERS, DECODER_LAYERS = 2, 3, 3  # options.py defaults, used by every README command
FFN_MULT = 3  # the public Transformer's dim_feedforward = 3 * hidden_dim
GENERATOR_HEADS = 4


def masked_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BatchNorm of x (B, C, T) with training statistics over the steps `valid` (B, T) only."""
    bsz, channels, steps = x.shape
    flat = x.transpose(0, 1).reshape(1, channels, bsz * steps)
    out = TimeProjection._masked_bn(bn, flat, valid.reshape(bsz * steps))
    return out.reshape(channels, bsz, steps).transpose(0, 1)


class ConvExpert(nn.Module):
    """Conv1d(k=3) d -> d/2, BN, GELU, Conv1d(k=1) -> d, BN on (B, T, d), BN over the valid steps."""

    def __init__(self, d: int):
        super().__init__()
        self.conv1 = nn.Conv1d(d, d // 2, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(d // 2)
        self.conv2 = nn.Conv1d(d // 2, d, 1)
        self.bn2 = nn.BatchNorm1d(d)

    def forward(self, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = (seq * valid[..., None].to(seq.dtype)).transpose(1, 2)  # padding: the sequence ends there
        x = F.gelu(masked_batch_norm(self.bn1, self.conv1(x), valid))
        return masked_batch_norm(self.bn2, self.conv2(x), valid).transpose(1, 2)


class Fusion(nn.Module):
    """Conv1d(k=1) M*d -> 2d, BN, ReLU, Conv1d -> d, BN on (B, T, M*d), BN over the valid steps."""

    def __init__(self, in_dim: int, d: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, 2 * d, 1)
        self.bn1 = nn.BatchNorm1d(2 * d)
        self.conv2 = nn.Conv1d(2 * d, d, 1)
        self.bn2 = nn.BatchNorm1d(d)

    def forward(self, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = F.relu(masked_batch_norm(self.bn1, self.conv1(seq.transpose(1, 2)), valid))
        return masked_batch_norm(self.bn2, self.conv2(x), valid).transpose(1, 2)


class GatedGenerator(nn.Module):
    """A missing modality's encoding from the present ones: two attention layers (all-zero query,
    no dropout), times a sigmoid gate on [pooled output, pooled context]."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attn = nn.ModuleList(nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True) for _ in range(2))
        self.gate = nn.Linear(2 * d, d)

    def forward(self, context: torch.Tensor, context_valid: torch.Tensor) -> torch.Tensor:
        """context (B, L, d) of the present encodings, valid (B, L) -> (B, 1, d), the same for every step."""
        context_valid = context_valid | ~context_valid.any(dim=1, keepdim=True)  # nothing present: no NaN
        out = context.new_zeros(context.shape[0], 1, context.shape[2])
        for attn in self.attn:
            out, _ = attn(out, context, context, key_padding_mask=~context_valid, need_weights=False)
        w = context_valid[..., None].to(context.dtype)
        pooled = (context * w).sum(1) / w.sum(1).clamp(min=1.0)
        gate = torch.sigmoid(self.gate(torch.cat([out[:, 0], pooled], dim=-1)))
        return out * gate[:, None, :]


class MCMoE(Method):
    def __init__(self, cfg):
        super().__init__(cfg.model.modalities, cfg.model.dims)
        b, m = cfg.baseline, len(self.modalities)
        self.alpha_mse, self.alpha, self.margin = cfg.loss.alpha_mse, cfg.loss.alpha, cfg.loss.margin
        self.recon_weight, self.modality_dropout = b.recon_weight, b.modality_dropout
        self.faithful = b.mcmoe_mode == "faithful"
        d = b.hidden  # the public --hidden_dim (256, as baseline.hidden)
        self.proj = gdlt_projections(self.dims, d, 0.0)
        self.encoder = temporal_encoder(d, HEADS, ENCODER_LAYERS, b.dropout, ffn=FFN_MULT * d, final_norm=True,
                                        xavier=True)
        self.generators = nn.ModuleDict({k: GatedGenerator(d, GENERATOR_HEADS) for k in self.modalities})
        self.experts = nn.ModuleList(ConvExpert(d) for _ in range(m))
        self.router = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, m))
        self.fuse = Fusion(m * d, d)
        self.head = GradeDecoder(d, b.n_query, DECODER_LAYERS, HEADS, b.dropout,
                                 query_positions="batch-index" if self.faithful else "none",
                                 ffn=FFN_MULT * d, final_norm=True, query_std=1.0, xavier=True)
        self._largest_train_batch = 0  # faithful mode: warn when scoring batches reach untrained positions
        self._warned = False

    def _mix(self, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Every expert on (B, T, d), mixed per token by the shared router."""
        outs = torch.stack([e(seq, valid) for e in self.experts], dim=-1)  # (B, T, d, E)
        return (outs * torch.softmax(self.router(seq), dim=-1)[:, :, None, :]).sum(-1)

    def forward(self, features, mask, time_mask) -> ScoreOutput:
        tm, time_mask = step_masks_and_union(time_mask, len(self.modalities))  # (B, M, T), (B, T)
        bsz, steps = time_mask.shape
        self._note_batch(bsz)
        drop = self.training and self.modality_dropout
        shown = drop_for_training(mask, incomplete_only=True) if drop else mask
        present = mask[:, :, None] & tm  # (B, M, T): what the data shows
        x = project_all(self.proj, self.modalities, features, present)
        enc = torch.stack([self.encoder(x[:, j], src_key_padding_mask=~tm[:, j]) for j in range(x.shape[1])], dim=1)
        enc = enc * present[..., None].to(enc.dtype)  # hidden modalities and padded steps: zeros
        context = enc.flatten(1, 2)  # (B, M*T, d), keys limited to what the model is shown
        context_valid = (shown[:, :, None] & tm).flatten(1)
        seqs, recon = [], []
        for j, m in enumerate(self.modalities):
            if bool((~shown[:, j]).any()):
                generated = self.generators[m](context, context_valid).expand(-1, steps, -1)
                seqs.append(torch.where(shown[:, j, None, None], enc[:, j], generated))
                target = mask[:, j, None] & ~shown[:, j, None] & tm[:, j]  # dropped by training, shown by the data
                if bool(target.any()):  # MSE against the full encoding; its gradient reaches the encoder
                    recon.append(_masked_mean((generated - enc[:, j]).pow(2), target))
            else:
                seqs.append(enc[:, j])
        mixed = [self._mix(seq, time_mask) for seq in seqs]
        kl = []
        if self.training:  # KL(P_own expert on the full encoding || P_mixture), over the channels
            for j in range(len(self.modalities)):
                rows = present[:, j]
                if bool(rows.any()):
                    p_log = F.log_softmax(self.experts[j](enc[:, j], rows).float(), dim=-1)
                    q_log = F.log_softmax(mixed[j].float(), dim=-1)
                    kl.append(_masked_mean(p_log.exp() * (p_log - q_log), rows))
        fused = self.fuse(torch.cat(mixed, dim=-1), time_mask)
        score, states = self.head(fused, time_mask)
        zero = fused.new_zeros((), dtype=torch.float32)
        recon_loss = sum(recon, zero)
        kl_loss = sum(kl, zero)
        return ScoreOutput(score, {"states": states, "recon": recon_loss, "kl": kl_loss,
                                   "aux_loss": recon_loss + kl_loss})

    def _note_batch(self, bsz: int) -> None:
        if not self.faithful:
            return
        if self.training:
            self._largest_train_batch = max(self._largest_train_batch, bsz)
        elif 0 < self._largest_train_batch < bsz and not self._warned:
            self._warned = True
            warnings.warn(f"MCMoE (baseline.mcmoe_mode=faithful) scores a batch of {bsz} after training on batches "
                          f"of at most {self._largest_train_batch}: samples past position "
                          f"{self._largest_train_batch} get query offsets never trained (score with the training "
                          "batch size, or use baseline.mcmoe_mode=fixed)")

    def loss(self, out, target):
        task = mse(out.score, target)
        triplet = batch_hard_cosine_triplet(out.extras["states"], self.margin)
        aux = out.extras["aux_loss"]
        total = self.alpha_mse * task + self.alpha * triplet + self.recon_weight * aux
        return {"loss": total, "mse": task, "triplet": triplet, "recon": out.extras["recon"],
                "kl": out.extras["kl"], "recon_kl": aux}


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of x (B, T, d) over its elements at the steps `valid` (B, T): `mse_loss`/`kl_div`'s
    element-wise mean, restricted to those steps."""
    return masked_mean(x.float().flatten(0, 1), valid.flatten(), dim=0).mean()


@register("mcmoe", "MCMoE (AAAI'26): shared encoder, gated generators, conv mixture of experts, GDLT head")
def build(cfg):
    return MCMoE(cfg)
