"""Fast, numerically equivalent replacements for pieces of a Hugging Face decoder, plugged in by
name when the backbone is built (`limssr.backbone.load_backbone`): LoRA dropout whose masks are
drawn from a seed and drawn again for backward, a gated MLP and an RMSNorm that keep less for
backward, and torch.compile of the decoder layers. The reference computation stays in the
backbone; tests/test_speed.py holds an equivalence test for each.
"""

from __future__ import annotations

import types

import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn


def _drop_mask(shape: torch.Size, threshold: int, seed: int, device: torch.device) -> torch.Tensor:
    """Where to drop: 15-bit integers from 64-bit random words of a generator seeded with `seed`,
    below `threshold` (so each element is dropped with probability threshold / 32768)."""
    n = shape.numel()
    gen = torch.Generator(device=device).manual_seed(seed)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(generator=gen)
    return (words.view(torch.int16)[:n].view(shape) & 0x7FFF) < threshold


class _Dropout(torch.autograd.Function):
    """Dropout that keeps only a seed for backward and draws its mask again there: no mask is held
    between the forward and backward passes (one byte per element of every LoRA input)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: int, scale: float, seed: int) -> torch.Tensor:
        ctx.threshold, ctx.scale, ctx.seed = threshold, scale, seed
        return (x * scale).masked_fill(_drop_mask(x.shape, threshold, seed, x.device), 0.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        drop = _drop_mask(grad.shape, ctx.threshold, ctx.seed, grad.device)
        return (grad * ctx.scale).masked_fill(drop, 0.0), None, None, None


class FastDropout(nn.Module):
    """Dropout whose masks come from 64-bit random words split into 15-bit integers: the same
    Bernoulli distribution as `nn.Dropout` with p rounded to a multiple of 1/32768 (0.1 becomes
    0.100006), about three times cheaper to draw on a CPU, where drawing masks is a large share of a
    LoRA training step (one mask per LoRA layer and step). Each mask comes from its own seed, drawn
    from torch's global generator (so seeded runs repeat), and is drawn again for backward rather
    than kept. On other devices and in compiled code it is `F.dropout`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self.threshold = int(round(self.p * 32768))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        # off the CPU one fused kernel, where a step is bound by kernel launches; in compiled code, the
        # compiler's own (a seed drawn here would be a constant of the graph: a recompile every step)
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return F.dropout(x, self.p, training=True)
        seed = int(torch.randint(2 ** 62, (), dtype=torch.int64))
        return _Dropout.apply(x, self.threshold, 1.0 / (1.0 - self.threshold / 32768), seed)

    def extra_repr(self) -> str:
        return f"p={self.threshold / 32768:.6f}"


def use_fast_dropout(module: nn.Module) -> int:
    """Replace every `nn.Dropout` inside LoRA layers (`lora_dropout`) by `FastDropout`; returns how many."""
    count = 0
    for name, sub in module.named_modules():
        if name.endswith("lora_dropout") and isinstance(sub, nn.ModuleDict):
            for key, drop in sub.items():
                if isinstance(drop, nn.Dropout) and drop.p > 0:
                    sub[key] = FastDropout(drop.p)
                    count += 1
    return count


class _SiluMul(torch.autograd.Function):
    """silu(gate) * up that keeps only `gate` and `up` for backward (silu is recomputed there): the
    gated MLP of Llama/Qwen-style decoders then saves two of its three intermediates."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate)  # the fused kernel autograd itself uses
        return grad_gate, grad * F.silu(gate)


def _lean_gated_mlp(self, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(_SiluMul.apply(self.gate_proj(x), self.up_proj(x)))


def use_lean_mlp(module: nn.Module) -> int:
    """Give every SiLU-gated MLP (gate_proj, up_proj, down_proj) the memory-saving forward above;
    the parameters and their names are unchanged. Returns how many MLPs were changed."""
    count = 0
    for sub in module.modules():
        act = getattr(sub, "act_fn", None)
        is_silu = isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"  # transformers' own
        if all(hasattr(sub, n) for n in ("gate_proj", "up_proj", "down_proj")) and is_silu:
            sub.forward = types.MethodType(_lean_gated_mlp, sub)
            count += 1
    return count


class _RMSNorm(torch.autograd.Function):
    """weight * (x / rms(x)) computed in fp32 and cast back, as Llama/Qwen/Mistral's RMSNorm does,
    keeping for backward the input in its own dtype (bf16 in bf16 training) and the reciprocal
    RMS, instead of the fp32 copy of the input that autograd keeps for the stock module."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return weight * (xf * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        xf = x.float()
        g = (grad * weight).float()
        # d/dx of x * (mean(x^2) + eps)^-1/2: rstd * g - rstd^3 * x * mean(g * x)
        grad_x = (rstd * g - rstd.pow(3) * xf * (g * xf).mean(-1, keepdim=True)).to(x.dtype)
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = (grad * (xf * rstd).to(x.dtype)).flatten(0, -2).sum(0).to(weight.dtype)
        return grad_x, grad_w, None


def _lean_rms_norm(self, x: torch.Tensor) -> torch.Tensor:
    return _RMSNorm.apply(x, self.weight, self.variance_epsilon)


# RMSNorm classes whose forward is exactly weight * (x.float() * rsqrt(mean(x^2) + eps)).to(x.dtype)
# (Gemma's, for one, scales by 1 + weight and is left alone)
_PLAIN_RMS_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "MistralRMSNorm")


def use_lean_rms_norm(module: nn.Module) -> int:
    """Give every plain RMSNorm the memory-saving forward above (same values; parameters and names
    unchanged). Returns how many norms were changed."""
    count = 0
    for sub in module.modules():
        if type(sub).__name__ in _PLAIN_RMS_NORMS:
            sub.forward = types.MethodType(_lean_rms_norm, sub)
            count += 1
    return count


def compile_decoder_layers(module: nn.Module, mode: str = "default") -> int:
    """torch.compile each decoder layer of a Hugging Face backbone in place (parameter names and
    checkpoints unchanged): fused element-wise work and, with mode "reduce-overhead" on a GPU,
    CUDA graphs instead of thousands of kernel launches. Returns the number of layers compiled."""
    layers = [m for m in module.modules() if type(m).__name__.endswith("DecoderLayer")]
    # each layer's index is a constant of its graph, so every layer compiles once per input shape:
    # leave room for all of them (the default limit, 8, would leave the later layers uncompiled)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 8 * len(layers))
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit,
                                                           32 * len(layers))
    for layer in layers:
        layer.compile(mode=None if mode == "default" else mode)
        layer.cuda_graphed = mode == "reduce-overhead"
    return len(layers)


def has_cuda_graphed_layers(module: nn.Module) -> bool:
    """Whether `compile_decoder_layers` gave `module` CUDA-graphed layers. Such a layer reuses its
    output memory on every replay, so code that keeps an output past the next replay (the prompt
    cache used in scoring) must run the layers eagerly."""
    return any(getattr(m, "cuda_graphed", False) for m in module.modules())
