"""LIMSSR: LLM-driven sequence-to-score regression under incomplete multimodal observations.

One method, one file: the model, its loss beside the forward, and its registry entry.

Read top to bottom: modality projections, the added tokens, the sequence assembly (prompt-guided
imputation with missing placeholders, PCMI), the LLM, then the two heads of the mask-aware dual-path
aggregation (MDA): Path 1 over the K fusion tokens (LMRF), Path 2 over the modality spans, and their
learned mix. The reference is LIMSSR's public code (first commit 8bdbbc0); docs/deviations.md lists every departure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from limssr.backbone import Backbone, load_backbone
from limssr.config import LossConfig, ModelConfig
from limssr.layers import TimeProjection, masked_mean, regressor
from limssr.losses import batch_hard_cosine_triplet
from limssr.methods.base import Method, step_masks
from limssr.methods.limssr_speed import SpeedPaths, prepare_inference, store_frozen_weights
from limssr.methods.registry import register
from limssr.sequence import Layout, build_layout, gather_spans, prompt_text, span_positions
from limssr.subsets import all_subsets


def _check(holds: torch.Tensor, message: str, queued: bool = False) -> None:
    """Raise ValueError(message) unless `holds` (a one-element bool tensor). `queued`, off the CPU:
    a device-side assert instead, so the host does not wait for the device (for invariants the data
    layer already guarantees, such as non-empty training masks)."""
    if queued and holds.device.type != "cpu":
        torch._assert_async(holds, message)
    elif not bool(holds):
        raise ValueError(message)


@dataclass
class LimssrOutput:
    score: torch.Tensor  # (B,) final score on the normalised scale (score / score_range)
    main: torch.Tensor | None  # (B,) Path 1 head (None without Path 1)
    aux: torch.Tensor | None  # (B,) Path 2 head (None without Path 2)
    fusion: torch.Tensor  # (B, K, H) fusion-token states (for the token regulariser)
    fused: torch.Tensor | None  # (B, H) Path 2 fused modality feature


def limssr_loss(out: LimssrOutput, target: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """alpha_mse * MSE(final, y) + alpha * triplet(fusion tokens) + alpha_con * MSE(main, aux)."""
    mse = F.mse_loss(out.score.float(), target.float())
    triplet = batch_hard_cosine_triplet(out.fusion, cfg.margin)
    both = out.main is not None and out.aux is not None  # one path alone has nothing to agree with
    consistency = F.mse_loss(out.main.float(), out.aux.float()) if both else mse.new_zeros(())
    total = cfg.alpha_mse * mse + cfg.alpha * triplet + cfg.alpha_con * consistency
    return {"loss": total, "mse": mse, "triplet": triplet, "consistency": consistency}


class FusionTokenHead(nn.Module):
    """Path 1: role-weighted fusion tokens, refined by a gated residual conditioned on the mask."""

    def __init__(self, hidden: int, num_modalities: int, num_tokens: int, dropout: float):
        super().__init__()
        self.role_weight = nn.Parameter(torch.ones(num_tokens))
        self.norm = nn.LayerNorm(hidden)
        cond = hidden + num_modalities
        self.delta = nn.Sequential(nn.Linear(cond, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.gate = nn.Sequential(nn.Linear(cond, hidden), nn.Sigmoid())
        self.regressor = regressor(hidden, dropout)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (B, K, H), mask (B, M) -> score (B,) in (0, 1)."""
        w = torch.softmax(self.role_weight, dim=0)
        f = self.norm((w[None, :, None] * tokens).sum(dim=1))
        c = torch.cat([f, mask.to(f.dtype)], dim=-1)
        f = f + self.gate(c) * self.delta(c)
        return torch.sigmoid(self.regressor(f)).squeeze(-1)


class ModalitySpanHead(nn.Module):
    """Path 2: pooled modality spans, cross-modal attention, softmax gating, and a learned
    confidence sigmoid(lambda_m) that down-weights missing modalities."""

    def __init__(self, hidden: int, num_modalities: int, heads: int, dropout: float, confidence_init: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"model.attention_heads={heads} must divide the backbone hidden size {hidden}")
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_modalities))
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Sequential(nn.Linear(num_modalities * hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, num_modalities), nn.Softmax(dim=-1))
        self.confidence = nn.Parameter(torch.full((num_modalities,), confidence_init))
        self.regressor = regressor(hidden, dropout)

    def forward(self, spans: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor):
        """spans (B, M, T, H) hidden states, valid (B, M, T) real steps, mask (B, M) -> (score, fused)."""
        w = valid[..., None].to(spans.dtype)
        pooled = (spans * w).sum(dim=2) / w.sum(dim=2).clamp(min=1.0)  # (B, M, H)
        u = torch.stack([norm(pooled[:, m]) for m, norm in enumerate(self.norms)], dim=1)
        attended, _ = self.attention(u, u, u, need_weights=False)
        attended = attended * self.gate(u.flatten(1))[..., None]
        conf = torch.where(mask, torch.ones_like(self.confidence), torch.sigmoid(self.confidence))
        fused = (attended * conf[..., None].to(attended.dtype)).sum(dim=1)
        return torch.sigmoid(self.regressor(fused)).squeeze(-1), fused


class LIMSSR(Method):
    """The LIMSSR model around a (LoRA-wrapped) decoder backbone.

    Ablations (configuration): `pcmi=False` drops the prompt and zero-fills missing spans instead of
    learned placeholders; `lmrf=False` drops the K fusion tokens and feeds Path 1 the mean of all
    hidden states; `path1=False` / `path2=False` score with the other path alone.
    """

    def __init__(self, cfg: ModelConfig, backbone: Backbone, dims: dict[str, int], loss_cfg: LossConfig | None = None):
        super().__init__(cfg.modalities, dims)
        if not (cfg.path1 or cfg.path2):
            raise ValueError("model.path1 and model.path2 cannot both be off: no head would score")
        self.cfg = cfg
        self.loss_cfg = loss_cfg or LossConfig()
        k = cfg.num_fusion_tokens if cfg.lmrf else 0
        num_mod, hidden = len(self.modalities), backbone.hidden_size
        self.hidden = hidden
        self.backbone = backbone.decoder
        self.projections = nn.ModuleDict(
            {m: TimeProjection(self.dims[m], hidden, cfg.dropout) for m in self.modalities})

        # Added tokens: <m_start>, <m_end>, <missing_m> per modality, then K fusion tokens. Held as a
        # table of their own (not new vocabulary rows), initialised as typical vocabulary rows.
        self.token_names = ([f"<|{m}_start|>" for m in self.modalities] + [f"<|{m}_end|>" for m in self.modalities]
                            + [f"<|missing_{m}|>" for m in self.modalities]
                            + [f"<|feat_dim_{i + 1}|>" for i in range(k)])
        vocab = backbone.input_embeddings().weight.detach().float()
        mean, std = vocab.mean(dim=0), vocab.std(dim=0)
        self.added_tokens = nn.Parameter(mean + std * torch.randn(len(self.token_names), hidden))

        # Prompt token ids for every non-empty subset, tokenised once.
        names = [cfg.prompt_names.get(m, m) for m in self.modalities]
        subsets = all_subsets(num_mod)
        ids = [backbone.tokenizer(prompt_text(s, names), add_special_tokens=False)["input_ids"] if cfg.pcmi else []
               for s in subsets]
        longest = max(len(i) for i in ids)
        self.longest_prompt = longest  # a Python int: fixed-length assembly needs no device read
        self.register_buffer("prompt_ids", torch.tensor([i + [0] * (longest - len(i)) for i in ids], dtype=torch.long),
                             persistent=False)
        self.register_buffer("prompt_len", torch.tensor([len(i) for i in ids]), persistent=False)
        lookup = torch.full((2**num_mod,), -1, dtype=torch.long)
        for s, subset in enumerate(subsets):
            lookup[sum(1 << j for j, present in enumerate(subset) if present)] = s
        self.register_buffer("subset_of_code", lookup, persistent=False)

        self.path1 = FusionTokenHead(hidden, num_mod, max(k, 1), cfg.dropout) if cfg.path1 else None
        self.path2 = (ModalitySpanHead(hidden, num_mod, cfg.attention_heads, cfg.dropout, cfg.confidence_init)
                      if cfg.path2 else None)
        if cfg.path1 and cfg.path2:
            init = torch.tensor(cfg.mix_init)
            self.mix = nn.Parameter(init if cfg.final_mix == "linear" else torch.logit(init))

        self.compute_dtype = torch.float32  # the backbone's residual stream (bf16 once its weights are)
        self.inference_only = False  # True once the LoRA adapters are merged for scoring
        self.speed = SpeedPaths()  # None: the reference computation alone (same scores, slower)

    # ------------------------------------------------------------------ sequence assembly (PCMI)

    def _token(self, group: int, j: int) -> torch.Tensor:
        return self.added_tokens[group * len(self.modalities) + j]

    def span_steps(self, steps: int) -> tuple[int, ...]:
        """T_m of each modality's span in a batch of T steps: `model.span_lengths`, else T."""
        return tuple(min(self.cfg.span_lengths.get(m, steps), steps) for m in self.modalities)

    def _modality_blocks(self, features: dict[str, torch.Tensor], mask: torch.Tensor,
                         valid: torch.Tensor) -> list[torch.Tensor]:
        """Per modality, in configured order, (B, T_m+2, H): start token, T_m projected features or
        placeholders, end token."""
        bsz = mask.shape[0]
        blocks = []
        for j, (m, steps) in enumerate(zip(self.modalities, self.span_steps(valid.shape[-1]))):
            rows = mask[:, j, None] & valid[:, j, :steps]  # real steps of samples that show this modality
            projected = self.projections[m].sequence(features[m][:, :steps], rows)
            if self.cfg.pcmi:  # missing spans hold the learned <missing_m> placeholder
                content = torch.where(mask[:, j, None, None], projected, self._token(2, j).expand(bsz, steps, -1))
            else:  # ablation: missing spans zero-filled
                content = projected
            start = self._token(0, j).expand(bsz, 1, self.hidden)
            end = self._token(1, j).expand(bsz, 1, self.hidden)
            blocks.append(torch.cat([start, content, end], dim=1))
        return blocks

    def _subsets(self, mask: torch.Tensor, queued: bool = False) -> torch.Tensor:
        """Index of each sample's subset (its prompt) from its mask (B, M)."""
        codes = (mask.long() << torch.arange(mask.shape[1], device=mask.device)).sum(dim=1)
        subset = self.subset_of_code[codes]
        _check((subset >= 0).all(), "every sample needs at least one modality in its mask", queued)
        return subset

    def _body(self, features, mask, valid, fixed: bool = False):
        """Everything after the prompt: embeddings (B, Lb, H), which positions attend (B, Lb), and the
        layout in body coordinates (prompt length 0). `fixed`: no value is read back from the device."""
        bsz, device = mask.shape[0], mask.device
        num_mod, k = len(self.modalities), self.cfg.num_fusion_tokens if self.cfg.lmrf else 0
        spans = self.span_steps(valid.shape[-1])
        layout = build_layout(mask, torch.zeros(bsz, dtype=torch.long, device=device), spans, k)
        blocks = self._modality_blocks(features, mask, valid)  # in configured order
        # the blocks in slot order (present modalities first): which position of their configured-order
        # concatenation each body position takes
        src = torch.empty(bsz, sum(spans) + 2 * num_mod, dtype=torch.long, device=device)
        offset = 0
        for j, t in enumerate(spans):
            steps = torch.arange(t + 2, device=device)
            src.scatter_(1, layout.span_start[:, j, None] - 1 + steps, (offset + steps).expand(bsz, -1))
            offset += t + 2
        body = torch.cat(blocks, dim=1).gather(1, src[..., None].expand(-1, -1, self.hidden))
        body = torch.cat([body, self.added_tokens[3 * num_mod:3 * num_mod + k].expand(bsz, k, self.hidden)], dim=1)
        attend = torch.ones(body.shape[:2], dtype=torch.bool, device=device)
        if self.cfg.mask_padding and (fixed or not bool(valid.all())):
            real = torch.cat([valid[:, j, :t] for j, t in enumerate(spans)], dim=1)
            attend = attend.scatter(1, span_positions(layout), real)
        return body, attend, layout

    def assemble(self, features: dict[str, torch.Tensor], mask: torch.Tensor, valid: torch.Tensor,
                 length: int | None = None):
        """The whole sequence for valid (B, M, T) real steps per modality: input embeddings (B, L, H),
        attention mask (B, L), position ids (B, L) and the layout. Each sample's sequence starts at 0; shorter ones are padded at the end, to
        the batch's longest or to `length` if given. With `length`, shapes do not depend on the data
        and nothing is read back from the device (checks are queued there), as CUDA graphs need."""
        bsz, steps = valid.shape[0], valid.shape[-1]
        fixed = length is not None
        subset = self._subsets(mask, queued=fixed)
        plen = self.prompt_len[subset]
        pmax = self.longest_prompt if fixed else int(plen.max())
        prompt = self.backbone.get_input_embeddings()(self.prompt_ids[subset, :pmax]).float()
        body, body_attend, _ = self._body(features, mask, valid, fixed)
        layout = build_layout(mask, plen, self.span_steps(steps), self.cfg.num_fusion_tokens if self.cfg.lmrf else 0)
        full = torch.cat([prompt, body], dim=1)  # prompts padded to pmax, then the body
        total = length if fixed else layout.total
        _check(layout.length.max() <= total, f"length {total} is shorter than the batch's longest sequence", fixed)
        pos = torch.arange(total, device=mask.device).expand(bsz, -1)
        src = torch.where(pos < plen[:, None], pos, pmax + pos - plen[:, None]).clamp(max=full.shape[1] - 1)
        embeds = full.gather(1, src[..., None].expand(-1, -1, self.hidden))
        attend = torch.cat([torch.ones_like(body_attend[:, :1]).expand(-1, pmax), body_attend], dim=1)
        attend = attend.gather(1, src) & (pos < layout.length[:, None])
        positions = (attend.long().cumsum(dim=1) - 1).clamp(min=0)
        return embeds, attend, positions, layout

    def longest_sequence(self, steps: int) -> int:
        """The length of the longest sequence any mask gives at `steps` time steps (the fixed length
        CUDA-graphed training pads every batch to: one input shape, so one graph)."""
        k = self.cfg.num_fusion_tokens if self.cfg.lmrf else 0
        return self.longest_prompt + sum(t + 2 for t in self.span_steps(steps)) + k

    # ------------------------------------------------------------------ forward

    def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor, time_mask: torch.Tensor) -> LimssrOutput:
        """features: modality -> (B, T, D); mask (B, M) shown modalities; time_mask (B, M, T) (or
        (B, T)) real steps."""
        time_mask = step_masks(time_mask, len(self.modalities))
        valid = time_mask if self.cfg.mask_padding else torch.ones_like(time_mask)
        if self.speed is not None:  # the same computation, faster (methods/limssr_speed.py)
            return self.speed.forward(self, features, mask, valid)
        return self.reference_forward(features, mask, valid)

    def reference_forward(self, features, mask, valid) -> LimssrOutput:
        """The method as described: assemble the sequence, run the LLM over it, score with the heads."""
        embeds, attend, positions, layout = self.assemble(features, mask, valid)
        hidden = self.backbone(inputs_embeds=embeds.to(self.compute_dtype), position_ids=positions,
                               attention_mask=None if bool(attend.all()) else attend.long()).last_hidden_state.float()
        return self.heads(hidden, layout, mask, valid, attend)

    def heads(self, hidden: torch.Tensor, layout: Layout, mask: torch.Tensor, valid: torch.Tensor,
              attend: torch.Tensor) -> LimssrOutput:
        k = layout.num_fusion
        bsz, num_mod = mask.shape
        if k:
            fusion_pos = layout.fusion_start[:, None] + torch.arange(k, device=hidden.device)
            fusion = hidden.gather(1, fusion_pos[..., None].expand(-1, -1, self.hidden))
        else:  # ablation without fusion tokens: Path 1 reads the mean of every real position
            fusion = masked_mean(hidden, attend)[:, None, :]
        main = self.path1(fusion, mask) if self.path1 is not None else None
        aux = fused = None
        if self.path2 is not None:
            spans, exists = gather_spans(hidden, layout)  # (B, M, Tmax, H), (M, Tmax)
            aux, fused = self.path2(spans, valid[:, :, :spans.shape[2]] & exists, mask)
        if main is None or aux is None:
            score = main if aux is None else aux
        else:
            w1 = self.mix if self.cfg.final_mix == "linear" else torch.sigmoid(self.mix)
            score = w1 * main + (1 - w1) * aux
        return LimssrOutput(score=score, main=main, aux=aux, fusion=fusion, fused=fused)

    def loss(self, out: LimssrOutput, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return limssr_loss(out, target, self.loss_cfg)

    def head_scores(self, out: LimssrOutput) -> dict[str, torch.Tensor]:
        """Path 1 ("main") and Path 2 ("aux") on their own, where the configuration has them."""
        return {name: s for name, s in (("main", out.main), ("aux", out.aux)) if s is not None}

    # ------------------------------------------------------------------ what a checkpoint holds

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone weights: LoRA, added tokens, projections, heads, and
        the BatchNorm running statistics (the whole embedding too when it trains)."""
        if self.inference_only:
            raise RuntimeError("this model's LoRA weights were merged for inference; it has no separate "
                               "trainable weights any more (save before prepare_inference)")
        frozen = {f"backbone.{n}" for n, p in self.backbone.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k not in frozen}

    def backbone_signature(self) -> str:
        """The frozen backbone a checkpoint's adapters belong to: its architecture, parameter shapes
        and a sample of its embedding values (so two checkpoints of one architecture differ too),
        rounded to bf16 so that the same backbone stored in fp32 or bf16 gives the same signature."""
        base = self.backbone.get_base_model() if hasattr(self.backbone, "get_base_model") else self.backbone
        digest = hashlib.sha256(type(base).__name__.encode())
        for name, p in base.named_parameters():
            if "lora_" not in name:
                digest.update(f"{name}:{tuple(p.shape)}".encode())
        emb = base.get_input_embeddings().weight.detach()
        digest.update(emb[:8, :32].to(torch.bfloat16).float().cpu().numpy().tobytes())
        return f"{type(base).__name__}-{digest.hexdigest()[:16]}"

    # ------------------------------------------------------------------ speed (methods/limssr_speed.py)

    def train(self, mode: bool = True):
        if self.speed is not None:
            self.speed.reset()  # weights may change: computed prompt prefixes are stale
        return super().train(mode)

    def store_frozen_weights(self, dtype: torch.dtype) -> None:
        store_frozen_weights(self, dtype)

    def prepare_inference(self, precision: str, quantize: str = "none", compile: bool = False) -> "LIMSSR":
        return prepare_inference(self, precision, quantize, compile)

@register("limssr", "LIMSSR: an LLM (LoRA) reads a prompt, modality spans with <missing> placeholders and fusion "
                    "tokens; two mask-aware heads")
def build(cfg, backbone=None) -> LIMSSR:
    """LIMSSR for a RunConfig, around `backbone` or the one `cfg.model.backbone` names."""
    if backbone is None:
        names = [cfg.model.prompt_names.get(m, m) for m in cfg.model.modalities]
        texts = [prompt_text(s, names) for s in all_subsets(len(names))]
        backbone = load_backbone(cfg.model.backbone, cfg.model.lora, cfg.model.train_embeddings,
                                 prompt_texts=texts, seed=cfg.seed, trust_remote_code=cfg.model.trust_remote_code,
                                 attention=cfg.model.attention, init=cfg.model.backbone_init)
    return LIMSSR(cfg.model, backbone, cfg.model.dims, cfg.loss)
