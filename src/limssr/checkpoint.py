"""Pickle-free checkpoints: tensors in safetensors, everything else as JSON in its metadata.

Two kinds of file, both plain safetensors:

* training checkpoints (Lightning's full state: trainable weights, optimizer, scheduler, loop
  counters, callback state), written through `SafetensorsCheckpointIO`, so resuming never unpickles;
* exported weights (`model.safetensors`): the trainable weights and the resolved run config.

Loading never executes code. Writes go to a temporary name in the same directory and are renamed
into place, so an interrupted write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import CheckpointIO
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from limssr.atomic import plain_file_mode, temp_sibling

TREE_KEY = "limssr.tree"
FORMAT_KEY = "limssr.format"
CONFIG_KEY = "limssr.config"
TRAINING_FORMAT = "limssr-training-checkpoint/1"
WEIGHTS_FORMAT = "limssr-weights/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or of the wrong kind; the message names the file."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor], path: str, storages: set[int]) -> Any:
    """Nested dicts/lists of tensors and JSON scalars -> a JSON tree, tensors stored by key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensor = obj.detach().cpu().contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in storages:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory
        storages.add(ptr)
        tensors[key] = tensor
        return {"tensor": key}
    if isinstance(obj, dict):
        return {"dict": [[_key(k, path), _encode(v, tensors, f"{path}.{k}", storages)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"tuple" if isinstance(obj, tuple) else "list":
                [_encode(v, tensors, f"{path}[{i}]", storages) for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, Path):
        return {"value": str(obj)}
    raise TypeError(f"checkpoint entry '{path}' of type {type(obj).__name__} cannot be stored without pickle")


def _key(k: Any, path: str) -> Any:
    if isinstance(k, (str, int)) and not isinstance(k, bool):
        return k
    raise TypeError(f"checkpoint key {k!r} under '{path}' must be a string or an integer")


def _decode(node: dict, tensors: dict[str, torch.Tensor]) -> Any:
    (kind, value), = node.items()
    if kind == "tensor":
        return tensors[value]
    if kind == "dict":
        return {k: _decode(v, tensors) for k, v in value}
    if kind == "list":
        return [_decode(v, tensors) for v in value]
    if kind == "tuple":
        return tuple(_decode(v, tensors) for v in value)
    if kind == "value":
        return value
    raise CheckpointError(f"unknown node kind '{kind}' in checkpoint tree")


def atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str | Path) -> None:
    """Write a safetensors file under a temporary name, then rename it over `path`."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, plain_file_mode())  # safetensors writes its files owner-only
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: str | Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint '{path}' is damaged or not a safetensors file ({err})") from None
    found = metadata.get(FORMAT_KEY)
    if found != expected_format:
        raise CheckpointError(f"'{path}' is not a {expected_format} file (format: {found!r})")
    return tensors, metadata


def save_training_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(checkpoint, tensors, "checkpoint", set())
    atomic_save(tensors, {FORMAT_KEY: TRAINING_FORMAT, TREE_KEY: json.dumps(tree)}, path)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    tensors, metadata = _read(path, TRAINING_FORMAT)
    try:
        return _decode(json.loads(metadata[TREE_KEY]), tensors)
    except (KeyError, json.JSONDecodeError, ValueError) as err:
        raise CheckpointError(f"checkpoint '{path}' has a damaged state tree ({err})") from None


def training_checkpoint_epoch(path: str | Path) -> int:
    """The epoch a training checkpoint was saved in, read from its metadata alone (no tensors)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        top = dict(json.loads(metadata[TREE_KEY])["dict"])
        return int(top["epoch"]["value"])
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint '{path}' is damaged or not a training checkpoint (no readable epoch: {err})") from None


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O without pickle (see the module docstring)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        save_training_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_training_checkpoint(path)

    def remove_checkpoint(self, path):
        Path(path).unlink(missing_ok=True)


BACKBONE_KEY = "limssr.backbone"


def save_weights(state: dict[str, torch.Tensor], config: dict, path: str | Path, backbone: str = "") -> None:
    """Export trainable weights with the resolved run config (and the backbone's signature) embedded."""
    atomic_save({k: v.detach().cpu().contiguous() for k, v in state.items()},
                {FORMAT_KEY: WEIGHTS_FORMAT, CONFIG_KEY: json.dumps(config), BACKBONE_KEY: backbone}, path)


def load_weights(path: str | Path, with_backbone: bool = False):
    """(tensors, config), plus the backbone signature when `with_backbone`."""
    tensors, metadata = _read(path, WEIGHTS_FORMAT)
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"'{path}' has no readable run config ({err})") from None
    return (tensors, config, metadata.get(BACKBONE_KEY, "")) if with_backbone else (tensors, config)
