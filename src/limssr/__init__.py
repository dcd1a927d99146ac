"""limssr: sequence-to-score learning from incomplete multimodal observations (LIMSSR, ICML 2026)."""

# limssr never downloads anything unless told to: every Hugging Face load passes
# `local_files_only=True`, so a missing file is an error and not a network attempt, and the
# process's environment (HF_HUB_OFFLINE and the like) is left as the user set it.
from limssr.compat import torchvision_without_compiled_ops

torchvision_without_compiled_ops()

__version__ = "0.1.0"

__all__ = ["Run", "Scorer", "evaluate", "export_run", "load", "train"]


def __getattr__(name: str):
    # the Python API (limssr.api), imported on first use: `import limssr` and the command line's
    # start stay free of torch, Lightning and transformers until they are needed
    if name in __all__:
        from limssr import api

        return getattr(api, name)
    raise AttributeError(f"module 'limssr' has no attribute {name!r}")
