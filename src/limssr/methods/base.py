"""What every method shares: its interface, its checkpoint contract, and a few building blocks.

A method is an `nn.Module` with
* `forward(features, mask, time_mask) -> output` where `output.score` is (B,) on the normalised
  scale [0, 1] (score / score_range); `features` maps modality -> (B, T, D), zeros where hidden;
  `mask` (B, M) says which modalities are shown, `time_mask` (B, M, T) which steps of each modality
  are real (a (B, T) mask, the same for every modality, is accepted too: `step_masks`);
* `loss(output, target) -> {"loss": total, ...parts}`; `head_scores(output)`, any per-head scores;
* `modalities`, `dims`, `trainable_state_dict()`, `load_trainable_state_dict()`;
* optionally `set_epoch(epoch)` for methods whose training changes with the epoch (MoMKE's stages),
  and `selectable_epoch(epoch)` for epochs that model selection must skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from limssr.checkpoint import CheckpointError
from limssr.layers import TimeProjection
from limssr.subsets import all_subsets, incomplete_subsets


@dataclass
class ScoreOutput:
    score: torch.Tensor  # (B,) in [0, 1]
    extras: dict = field(default_factory=dict)  # method-specific tensors its loss needs


class Method(nn.Module):
    """Base class: holds the modalities and dims, and the checkpoint contract."""

    def __init__(self, modalities: list[str], dims: dict[str, int]):
        super().__init__()
        missing = [m for m in modalities if m not in dims]
        if missing:
            raise ValueError(f"no feature dim known for modality '{missing[0]}'")
        self.modalities = list(modalities)
        self.dims = {m: int(dims[m]) for m in modalities}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def selectable_epoch(self, epoch: int) -> bool:
        """Whether the model after `epoch` may be chosen as the best one (False for an epoch whose
        scoring head is not trained yet, e.g. MoMKE's stage 1)."""
        return True

    def prepare_inference(self, precision: str, quantize: str = "none", compile: bool = False) -> "Method":
        """Make the model fast for scoring (merging adapters, casting; `quantize` and `compile`:
        `eval.quantize` / `eval.compile`, which only LIMSSR's backbone uses); it may not train afterwards."""
        return self.eval()

    def store_frozen_weights(self, dtype: torch.dtype) -> None:
        """Keep frozen weights in `dtype` (with bf16 autocast they are cast to bf16 anyway)."""

    def loss(self, out: ScoreOutput, target: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def head_scores(self, out) -> dict[str, torch.Tensor]:
        """Scores (B,) of the method's own heads besides `out.score`, by name, for the per-sample
        predictions (LIMSSR: its two paths); none by default."""
        return {}

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: by default everything (baselines have no frozen backbone)."""
        return self.state_dict()

    def backbone_signature(self) -> str:
        """Identifies frozen weights a checkpoint depends on ('' for methods without a backbone)."""
        return ""

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        expected = self.trainable_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            detail = (f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'")
            raise CheckpointError(f"{source} does not fit this model ({len(missing)} missing, {len(unexpected)} "
                             f"unexpected tensors; {detail}): it was written for another method, architecture, "
                             "backbone or set of modalities")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(f"{source}: tensor '{key}' has shape {tuple(value.shape)}, this model "
                                 f"expects {tuple(expected[key].shape)} (another backbone or feature dim?)")
        self.load_state_dict(state, strict=False)


def drop_for_training(mask: torch.Tensor, incomplete_only: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """A method's own training-time modality dropout: one subset per batch, drawn uniformly from the
    non-empty (or only the incomplete) subsets and cut to what each sample shows; a sample left with
    nothing keeps what it shows."""
    pool = incomplete_subsets(mask.shape[1]) if incomplete_only else all_subsets(mask.shape[1])
    if not pool:  # one modality: nothing to drop
        return mask
    choice = int(torch.randint(len(pool), (), generator=generator))
    drawn = torch.tensor(pool[choice], device=mask.device).expand_as(mask) & mask
    empty = ~drawn.any(dim=1, keepdim=True)
    return torch.where(empty, mask, drawn)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal encodings, stored (max_len, 1, d) as in the GDLT/MCMoE code."""

    def __init__(self, d: int, max_len: int = 512):
        super().__init__()
        pos = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2] = torch.sin(pos * div)
        pe[:, 0, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)


class GradeDecoder(nn.Module):
    """GDLT grade-decoupling head: learned grade queries decoded against a sequence; the score is the
    linspace-weighted mean of the normalised per-query grades. Returns (score (B,), query states)."""

    def __init__(self, d: int, n_query: int, layers: int, heads: int, dropout: float,
                 query_positions: str = "none", ffn: int | None = None, final_norm: bool = False,
                 query_std: float = 0.02, xavier: bool = False):
        super().__init__()
        # ffn: feed-forward width (default 2d); final_norm: a LayerNorm after the last layer;
        # query_std: std of the queries' normal init; xavier: xavier-uniform every matrix of the decoder
        self.queries = nn.Parameter(torch.randn(n_query, d) * query_std)
        layer = nn.TransformerDecoderLayer(d, heads, ffn or 2 * d, dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(d) if final_norm else None)
        if xavier:
            xavier_matrices(self.decoder)
        self.grade = nn.Linear(d, n_query)
        self.register_buffer("levels", torch.linspace(0, 1, n_query), persistent=False)
        # "batch-index": MCMoE's quirk, the encoding added to a (B, Q, d) tensor indexed by batch position
        self.query_positions = query_positions
        self.positions = SinusoidalPositions(d) if query_positions == "batch-index" else None

    def forward(self, memory: torch.Tensor, memory_valid: torch.Tensor):
        q = self.queries.expand(memory.shape[0], -1, -1)
        if self.positions is not None:
            q = q + self.positions.pe[: q.shape[0]]  # (B, 1, d): offset by the sample's batch position
        states = self.decoder(q, memory, memory_key_padding_mask=~memory_valid)
        grades = torch.sigmoid(torch.diagonal(self.grade(states), dim1=1, dim2=2))
        weights = grades / grades.sum(dim=1, keepdim=True).clamp(min=1e-6)
        return (weights * self.levels).sum(dim=1), states


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.float(), target.float())


def task_and_reconstruction(out: ScoreOutput, target: torch.Tensor, alpha_mse: float,
                            recon_weight: float) -> dict[str, torch.Tensor]:
    """alpha_mse * MSE(score, y) + recon_weight * the reconstruction loss the forward left in extras."""
    task = mse(out.score, target)
    recon = out.extras["recon"]
    return {"loss": alpha_mse * task + recon_weight * recon, "mse": task, "recon": recon}


def gdlt_projections(dims: dict[str, int], d: int, dropout: float) -> nn.ModuleDict:
    """One GDLT-style projector per modality: Conv1d(k=1) D -> D/2, BN, ReLU, Conv1d -> d, BN."""
    return nn.ModuleDict({m: TimeProjection(dim, d, dropout, mid=max(dim // 2, d // 2)) for m, dim in dims.items()})


def step_masks(time_mask: torch.Tensor, num_modalities: int) -> torch.Tensor:
    """(B, M, T) real steps per modality; a (B, T) mask (every modality alike) is expanded."""
    return time_mask[:, None, :].expand(-1, num_modalities, -1) if time_mask.dim() == 2 else time_mask


def step_masks_and_union(time_mask: torch.Tensor, num_modalities: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, M, T) real steps per modality, and (B, T) the steps any modality has (what a fusing
    encoder that pairs steps across modalities attends to)."""
    per = step_masks(time_mask, num_modalities)
    return per, per.any(dim=1)


def project_all(proj: nn.ModuleDict, modalities: list[str], features: dict[str, torch.Tensor],
                rows: torch.Tensor) -> torch.Tensor:
    """(B, M, T, d): every modality projected on the steps `rows` (B, M, T) selects, zeros elsewhere."""
    return torch.stack([proj[m].sequence(features[m], rows[:, j]) for j, m in enumerate(modalities)], dim=1)


def temporal_encoder(d: int, heads: int, layers: int, dropout: float, ffn: int | None = None,
                     final_norm: bool = False, xavier: bool = False) -> nn.TransformerEncoder:
    """Post-norm ReLU encoder; ffn: feed-forward width (default 2d); final_norm: a LayerNorm after the
    last layer; xavier: xavier-uniform every matrix (as MCMoE's/GDLT's transformer does)."""
    layer = nn.TransformerEncoderLayer(d, heads, ffn or 2 * d, dropout, batch_first=True)
    encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d) if final_norm else None,
                                    enable_nested_tensor=False)
    if xavier:
        xavier_matrices(encoder)
    return encoder


def xavier_matrices(module: nn.Module) -> None:
    """Xavier-uniform initialisation of every parameter with more than one dimension (biases and
    norms keep theirs)."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
