"""The method registry: LIMSSR and the baselines, chosen by name (`method: mcmoe` in a config,
`--method mcmoe` on the command line). Adding a method is one module under `limssr/methods/` that
decorates its builder with `register`, listed in `MODULES` here and its name in `config.METHODS`
(so a config is checked without importing any model).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from limssr.config import METHODS
from limssr.methods.base import Method


@dataclass(frozen=True)
class MethodEntry:
    name: str
    build: Callable  # (RunConfig) -> Method
    summary: str


_REGISTRY: dict[str, MethodEntry] = {}
MODULES = ("limssr.methods.limssr", "limssr.methods.mcmoe", "limssr.methods.momke", "limssr.methods.gcnet",
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
    # imported on first use, by name: reading a config or `limssr --help` need no model's dependencies
    for module in MODULES:
        importlib.import_module(module)
    if tuple(_REGISTRY) != METHODS:
        raise RuntimeError(f"registered methods {tuple(_REGISTRY)} differ from config.METHODS {METHODS}")


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
