"""Temporary files beside their destination, for write-then-rename."""

from __future__ import annotations

import hashlib
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


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
