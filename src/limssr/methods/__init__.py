"""LIMSSR and the baselines behind one interface (`base.Method`) and one registry (`registry`)."""

from limssr.methods.base import Method, ScoreOutput
from limssr.methods.registry import build_method, describe, method_names, register

__all__ = ["Method", "ScoreOutput", "build_method", "describe", "method_names", "register"]
