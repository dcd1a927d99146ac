"""Which numeric precision a run computes in, and the matching device and autocast context."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch


def resolve_precision(name: str, method: str = "limssr") -> str:
    """'fp32' | 'bf16' | 'auto' -> a Lightning precision string. 'auto' on a CPU is bf16 only for an
    LLM method on a CPU that computes bf16 natively: the small baselines run many times slower under
    CPU bf16 autocast (zero-fill on Fis-V shapes: 5.6 s a step against 0.2 s in fp32)."""
    if name == "fp32":
        return "32-true"
    if name == "bf16":
        return "bf16-mixed"
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_bf16() and method == "limssr" else "32-true"


def scoring_precision(train_precision: str, method: str = "limssr", quantize: str = "none") -> str:
    """The precision scoring runs in: the training one, except fp32 for int8 weights (their
    matrix products take fp32 activations)."""
    return "32-true" if quantize == "int8" else resolve_precision(train_precision, method)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_for(device: torch.device, precision: str):
    """An autocast context for 'bf16-mixed', a no-op context otherwise."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def best_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
