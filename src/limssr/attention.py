"""The backbone's attention kernel, chosen by `model.attention`.

"sdpa" is PyTorch's fused scaled-dot-product attention, as Hugging Face runs it. "auto" (the
default) keeps it everywhere except in bf16 on a CPU, where it runs `grouped_attention`: plain
matrix products and a softmax, the query heads of each key/value head stacked into one product so
that grouped-query attention needs no repeated keys or values, and the mask added inside the
product. On this project's 2-core CPU that trains a step of the default backbone 1.34x faster
than SDPA's CPU kernel (whose backward pass is slow) and scores 1.26x faster; it keeps the
attention probabilities for backward (SDPA recomputes them), 0.4 GB more at FS1000 shapes
(docs/speed.md). The scores are rounded to bf16 before the softmax, as in Hugging Face's eager
attention under autocast.
"""

from __future__ import annotations

import functools

import torch

ATTENTION_NAME = "limssr"


def grouped_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      keep: torch.Tensor | None, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale, masked) v for query (B, H, Lq, D), key and value (B, KV, Lk, D) with
    H a multiple of KV, and `keep` a boolean mask broadcastable to (B, 1, Lq, Lk) (True: attend)
    or None (attend to all). Returns (B, H, Lq, D)."""
    bsz, heads, q_len, dim = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    group = heads // kv_heads
    # (B*KV, group*Lq, D): the heads sharing a key/value head form one matrix product; the
    # queries are scaled rather than the scores (a tensor Lk/D times smaller)
    q = (query * scale).reshape(bsz * kv_heads, group * q_len, dim)
    k = key.reshape(bsz * kv_heads, k_len, dim).transpose(1, 2)
    if keep is None:
        scores = q @ k
    else:  # the mask enters as an additive bias inside the matrix product: no pass of its own
        scores = torch.baddbmm(_additive_bias(keep, bsz, kv_heads, group, query.dtype), q, k)
    probs = scores.softmax(dim=-1)
    return (probs @ value.reshape(bsz * kv_heads, k_len, dim)).view(bsz, heads, q_len, dim)


def _additive_bias(keep: torch.Tensor, bsz: int, kv_heads: int, group: int, dtype: torch.dtype) -> torch.Tensor:
    """`keep` (B or 1, 1, Lq, Lk) as (B*KV, group*Lq, Lk): 0 where attended, -inf elsewhere. Made
    once per mask tensor and kept on it, since every layer of a forward pass gets the same one."""
    spec = (bsz, kv_heads, group, dtype)
    cached = getattr(keep, "_limssr_bias", None)
    if cached is not None and cached[0] == spec:
        return cached[1]
    q_len, k_len = keep.shape[-2:]
    bias = torch.zeros((), dtype=dtype, device=keep.device).masked_fill(~keep, float("-inf"))
    bias = bias.expand(bsz, 1, q_len, k_len)[:, :, None].expand(bsz, kv_heads, group, q_len, k_len)
    bias = bias.reshape(bsz * kv_heads, group * q_len, k_len)
    keep._limssr_bias = (spec, bias)
    return bias


@functools.lru_cache(maxsize=8)
def _causal_keep(q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
    """The causal mask with the queries at the end of the keys (a cache before them); one tensor
    per shape, so that its additive bias is made once."""
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)[None, None]


def attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                      scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """A Hugging Face attention function (`AttentionInterface`): `grouped_attention` for bf16 on a
    CPU, Hugging Face's SDPA function otherwise or for anything the former does not do (attention
    dropout, sliding windows, soft-capping, sinks, float masks)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    unsupported = ((dropout and module.training) or kwargs.get("sliding_window") or kwargs.get("softcap")
                   or kwargs.get("s_aux") is not None
                   or (attention_mask is not None and attention_mask.dtype != torch.bool))
    if query.device.type != "cpu" or query.dtype != torch.bfloat16 or unsupported:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    q_len, k_len = query.shape[2], key.shape[2]
    keep = attention_mask
    if keep is None:  # the mask function left causality to the kernel
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        keep = _causal_keep(q_len, k_len, query.device) if causal and q_len > 1 else None
    elif keep.shape[-1] != k_len:
        keep = keep[:, :, :, :k_len]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = grouped_attention(query, key.to(query.dtype), value.to(query.dtype), keep, scale)
    return out.transpose(1, 2).contiguous(), None


def use_attention(decoder, choice: str) -> str:
    """Set a Hugging Face decoder's attention to `choice` ("auto" or "sdpa"); returns the name in
    use. A decoder that takes no pluggable attention keeps its own (it was loaded with SDPA)."""
    if choice == "sdpa":
        decoder.set_attn_implementation("sdpa")
        return "sdpa"
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # boolean masks, None when causal
    try:
        decoder.set_attn_implementation(ATTENTION_NAME)
    except ValueError:  # its modeling code calls one attention of its own
        return decoder.config._attn_implementation
    return ATTENTION_NAME
