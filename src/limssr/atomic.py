"""Temporary files beside their destination, for write-then-rename; JSON that stays valid JSON."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path


def temp_sibling(path: Path, suffix: str = ".tmp") -> str:
    """A new empty file in `path`'s directory, with the permissions a plainly created file would get
    (mkstemp alone makes it readable by its owner only, and the rename would keep that)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, plain_file_mode())
    os.close(fd)
    return tmp


def plain_file_mode() -> int:
    """0o666 less the process umask: the mode `open(path, "w")` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) under a temporary name beside `path`, then rename it into place."""
    tmp = temp_sibling(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# result keys whose null in a JSON file written here stands for "not defined" (nan in Python)
NUMERIC_KEYS = ("spearman", "mse", "rl2", "mse_train_mean", "noise_ceiling")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(value, indent: int | None = 2) -> str:
    """JSON of `value` with nan and infinities written as null (bare NaN is not JSON)."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False) + "\n"


def atomic_write_json(path: Path, value, indent: int | None = 2) -> None:
    atomic_write_text(path, json_text(value, indent))


def _undefined_as_nan(d: dict) -> dict:
    for key in NUMERIC_KEYS:
        if key in d and d[key] is None:
            d[key] = float("nan")
    return d


def read_results_json(path: Path) -> dict:
    """A results file written by `atomic_write_json` (or an older one with bare NaN): a null metric
    (`spearman`, `mse`, ...) reads back as nan, so arithmetic on it behaves as before."""
    return json.loads(Path(path).read_text(encoding="utf-8"), object_hook=_undefined_as_nan)


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
