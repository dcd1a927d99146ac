"""limssr: sequence-to-score learning from incomplete multimodal observations (LIMSSR, ICML 2026)."""

__version__ = "0.1.0"
