"""LIMSSR's speed paths: the same computation as `LIMSSR.reference_forward`, arranged to do less work.
They are plugged into the model when it is built (`LIMSSR.speed`; set it to None for the reference
computation alone), and each has an equivalence test (tests/test_model.py, tests/test_speed.py):

* shared prompt prefix: each distinct prompt runs through the LLM once (per batch in CPU training,
  once for good at inference) and its keys/values are shared by the samples that have it;
* fixed-length assembly: CUDA-graphed layers train on one sequence length with nothing read back
  from the device, so one graph serves every batch;
* inference preparation: LoRA merged into the weights, the backbone stored in bf16 for bf16 scoring
  (or its linear layers in int8, `eval.quantize`), optionally compiled (`eval.compile`); bf16
  training with the frozen weights stored in bf16.
"""

from __future__ import annotations

import warnings

import torch
from transformers import DynamicCache

from limssr.kernels import has_cuda_graphed_layers


class SpeedPaths:
    """Chooses, per call, the fastest arrangement that gives the reference's result."""

    def __init__(self):
        self.prefix_cache = None  # (key, prompt keys/values of every subset), at inference

    def reset(self) -> None:
        self.prefix_cache = None

    def forward(self, model, features, mask, valid):
        graphed = has_cuda_graphed_layers(model.backbone)
        if graphed and not model.training:
            with torch.compiler.set_stance("force_eager"):  # compiled for training only
                return self._route(model, features, mask, valid, fixed_length=False)
        return self._route(model, features, mask, valid, fixed_length=graphed)

    def _route(self, model, features, mask, valid, fixed_length: bool):
        if self.shares_prefix(model, fixed_length):
            return self.with_prefix(model, features, mask, valid)
        if fixed_length:
            return self.fixed_length(model, features, mask, valid)
        return model.reference_forward(features, mask, valid)

    @staticmethod
    def shares_prefix(model, fixed_length: bool) -> bool:
        if model.training and (model.prompt_ids.device.type != "cpu" or fixed_length):
            # off the CPU a step at these sizes is bound by kernel launches, not FLOPs: the separate prefix
            # pass costs more than it saves (H200, Qwen3-0.6B shapes: 0.343 s vs 0.236 s per step); and
            # CUDA-graphed layers train on one fixed-length sequence
            return False
        return (model.cfg.share_prompt and model.cfg.pcmi and model.cfg.lmrf
                and not getattr(model.backbone, "is_gradient_checkpointing", False))

    # ------------------------------------------------------------------ fixed length (CUDA graphs)

    def fixed_length(self, model, features, mask, valid):
        """One shape and one mask kind for every batch (so one graph per layer), nothing read back."""
        embeds, attend, positions, layout = model.assemble(features, mask, valid,
                                                           model.longest_sequence(valid.shape[-1]))
        hidden = model.backbone(inputs_embeds=embeds.to(model.compute_dtype),
                                attention_mask=full_attention_mask(model.backbone.config, attend),
                                position_ids=positions).last_hidden_state.float()
        return model.heads(hidden, layout, mask, valid, attend)

    # ------------------------------------------------------------------ the prompt prefix, computed once

    def prefix(self, model, subsets: torch.Tensor):
        """Keys and values of the prompts of `subsets` (U,), right-padded to the longest: a list of
        (keys, values) per layer, each (U, kv_heads, Pmax, head_dim), and the prompt lengths (U,)."""
        plen = model.prompt_len[subsets]
        pmax = int(plen.max())
        embeds = model.backbone.get_input_embeddings()(model.prompt_ids[subsets, :pmax]).to(model.compute_dtype)
        attend = torch.arange(pmax, device=plen.device)[None, :] < plen[:, None]
        out = model.backbone(inputs_embeds=embeds, attention_mask=None if bool(attend.all()) else attend.long(),
                             use_cache=True)
        return [(layer.keys, layer.values) for layer in out.cache.layers], plen

    def cached_prefix(self, model):
        """All subsets' prompt keys/values, computed once per weights and precision (inference only)."""
        device = model.prompt_ids.device
        key = (torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type), device)
        if self.prefix_cache is None or self.prefix_cache[0] != key:
            with torch.no_grad():
                self.prefix_cache = (key, self.prefix(model, torch.arange(len(model.prompt_len), device=device)))
        return self.prefix_cache[1]

    def with_prefix(self, model, features, mask, valid):
        """The reference computation with each distinct prompt run once and its keys/values shared."""
        subset = model._subsets(mask)
        if model.training:
            uniq, inverse = torch.unique(subset, return_inverse=True)
            kv, plen_u = self.prefix(model, uniq)
        else:
            (kv, plen_u), inverse = self.cached_prefix(model), subset
        plen = plen_u[inverse]
        pmax = kv[0][0].shape[2]
        body, body_attend, layout = model._body(features, mask, valid)
        cache = DynamicCache(ddp_cache_data=[(k[inverse], v[inverse]) for k, v in kv])
        prefix_attend = torch.arange(pmax, device=mask.device)[None, :] < plen[:, None]
        attend = torch.cat([prefix_attend, body_attend], dim=1)
        positions = plen[:, None] + body_attend.long().cumsum(dim=1) - 1
        hidden = model.backbone(inputs_embeds=body.to(model.compute_dtype), cache=cache, use_cache=True,
                                position_ids=positions,
                                attention_mask=None if bool(attend.all()) else attend.long()).last_hidden_state.float()
        return model.heads(hidden, layout, mask, valid, body_attend)


# linear layers left in fp32 by quantize_int8: the MLP's down projection reads the gated product,
# whose few large channels one activation scale per batch cannot follow. On LIMSSR trained on the
# Fis-V features (TES, seed 1) quantizing it too moved the test MSE from 21.2 to 26.2 (rank
# agreement with the bf16 scores 0.89); kept in fp32, 23.1 (0.985) (docs/speed.md)
INT8_KEEP = ("down_proj",)


def quantize_int8(backbone: torch.nn.Module) -> int:
    """Dynamic int8 quantization (torch.ao's, on the CPU's x86/fbgemm kernels) of the linear layers
    of a merged backbone, in place: int8 weights with a scale per output channel, activations
    quantized per batch; the layers named in INT8_KEEP, the embeddings and the norms stay fp32.
    Returns how many layers were quantized."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if any(p.device.type != "cpu" for p in backbone.parameters()):
        raise ValueError("eval.quantize=int8 runs on a CPU only (its int8 kernels are the CPU's); "
                         "on a GPU score in bf16 (eval.quantize=none)")
    spec = {name: per_channel_dynamic_qconfig for name, m in backbone.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith(INT8_KEEP)}
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(backbone, spec, dtype=torch.qint8, inplace=True)
    return len(spec)


def full_attention_mask(config, attend: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, causal and over `attend`'s positions, given to the backbone as it
    is (Hugging Face builds its own from a (B, L) mask, reading the device to decide whether it can
    skip it). Backbones with sliding-window layers get the (B, L) mask."""
    if getattr(config, "sliding_window", None) or any(
            t != "full_attention" for t in (getattr(config, "layer_types", None) or ())):
        return attend.long()
    length = attend.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=attend.device).tril()
    return causal[None, None] & attend[:, None, None, :]


def store_frozen_weights(model, dtype: torch.dtype) -> None:
    """bf16 training: the frozen backbone weights are stored in bf16 and the backbone's residual
    stream runs in bf16 too (its norms compute in fp32 inside); trainable weights stay fp32."""
    for p in model.backbone.parameters():
        if not p.requires_grad:
            p.data = p.data.to(dtype)
    model.compute_dtype = dtype
    for module in model.backbone.modules():  # peft would cast each LoRA input up to fp32 and back
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False


def prepare_inference(model, precision: str, quantize: str = "none", compile: bool = False):
    """Merge the LoRA adapters into the backbone weights (no adapter work per token), store the
    backbone in bf16 when scoring runs in bf16 (or its linear layers in int8 with quantize="int8"),
    optionally compile it, and score with the cached prompt prefixes."""
    if hasattr(model.backbone, "merge_and_unload"):
        model.backbone = model.backbone.merge_and_unload()
        model.inference_only = True
    if quantize == "int8":
        model.backbone.float()  # frozen weights kept in bf16 for training go back to fp32 first
        model.compute_dtype = torch.float32
        quantize_int8(model.backbone)
    elif precision == "bf16-mixed":
        model.backbone.to(torch.bfloat16)
        model.compute_dtype = torch.bfloat16
    if compile and not getattr(model, "backbone_compiled", False):
        # in place: the module keeps its type and attributes (config, embeddings), only its call is compiled
        model.backbone.compile()
        model.backbone_compiled = True
    if model.speed is not None:
        model.speed.reset()
    return model.eval()
