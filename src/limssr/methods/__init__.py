"""One registry of methods: LIMSSR and the baselines, chosen by name (`method: mcmoe` in a config,
`--method mcmoe` on the command line). Every method shares the data, the masks, the training loop,
the evaluation and the outputs; adding one is one new module that calls `register`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from limssr.methods.base import Method, ScoreOutput


@dataclass(frozen=True)
class MethodEntry:
    name: str
    build: Callable  # (RunConfig) -> Method
    summary: str


_REGISTRY: dict[str, MethodEntry] = {}
_MODULES = ("limssr.methods.limssr_method", "limssr.methods.mcmoe", "limssr.methods.momke", "limssr.methods.gcnet",
            "limssr.methods.actionmae", "limssr.methods.zero_fill", "limssr.methods.late_fusion")


def register(name: str, summary: str):
    """Decorator for a builder `(RunConfig) -> Method`."""

    def wrap(build):
        if name in _REGISTRY:
            raise ValueError(f"method '{name}' registered twice")
        _REGISTRY[name] = MethodEntry(name, build, summary)
        return build

    return wrap


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def method_names() -> list[str]:
    _load()
    return list(_REGISTRY)


def describe() -> dict[str, str]:
    _load()
    return {name: entry.summary for name, entry in _REGISTRY.items()}


def build_method(cfg) -> Method:
    """The method `cfg.method`, built for `cfg.model.modalities` / `cfg.model.dims`."""
    _load()
    if cfg.method not in _REGISTRY:
        raise ValueError(f"unknown method '{cfg.method}'; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[cfg.method].build(cfg)


__all__ = ["Method", "ScoreOutput", "build_method", "describe", "method_names", "register"]
