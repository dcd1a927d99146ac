"""Library quirks worked around once, at `import limssr`, before any model library is imported."""

from __future__ import annotations

import importlib.metadata
import sys
import types


def torchvision_without_compiled_ops() -> bool:
    """Let torchvision import beside a CPU-only torch when it is a CUDA build (PyPI's torchvision
    wheels are): its compiled operators (nms, roi_align, ...) cannot load there, and its import then
    fails while registering kernels for them, taking down transformers, which imports torchvision
    when present. limssr's extractors use torchvision's models, plain PyTorch, and none of those
    operators, so the registrations are skipped. Returns whether the workaround was applied."""
    try:
        torch_version = importlib.metadata.version("torch")
        vision_version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return False
    cpu_torch = torch_version.endswith("+cpu")
    cuda_vision = "+cu" in vision_version or "+" not in vision_version  # PyPI's plain version is a CUDA build
    if not (cpu_torch and cuda_vision) or "torchvision" in sys.modules:
        return False
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return True
