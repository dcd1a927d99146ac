"""limssr: sequence-to-score learning from incomplete multimodal observations (LIMSSR, ICML 2026)."""

import os

# limssr never downloads anything: backbones and data are local. Make the Hugging Face libraries
# agree, so that a missing file is an error and not a network attempt.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
