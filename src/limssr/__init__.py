"""limssr: sequence-to-score learning from incomplete multimodal observations (LIMSSR, ICML 2026)."""

import os

# limssr never downloads anything: backbones and data are local. Make the Hugging Face libraries
# agree, so that a missing file is an error and not a network attempt.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from limssr.compat import torchvision_without_compiled_ops

torchvision_without_compiled_ops()

__version__ = "0.1.0"

__all__ = ["Run", "Scorer", "evaluate", "load", "train"]


def __getattr__(name: str):
    # the Python API (limssr.api), imported on first use: `import limssr` and the command line's
    # start stay free of torch, Lightning and transformers until they are needed
    if name in __all__:
        from limssr import api

        return getattr(api, name)
    raise AttributeError(f"module 'limssr' has no attribute {name!r}")
