"""`limssr data convert`: a pickle-free copy of any supported dataset, in the same layout.

Pickled feature dicts (`FISV_rgb_VST.npy`, `Ball_audio_AST.npy`, ...) are read once with the
restricted unpickler and written as `.npz` archives of the same name (one array per video), which
the same readers load without pickle. Plain `.npy` feature files (FS1000, generic) are checked to
load without pickle and copied; label files and manifests are copied byte for byte. The copy is
built in a temporary directory and renamed into place, so an interrupted conversion leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from limssr.data.generic import MANIFEST, load_array
from limssr.data.released import FS1000_FOLDERS, FS1000_LABELS, detect_layout
from limssr.data.safe_pickle import read_feature_dict
from limssr.data.samples import DataError


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _plain_npy(src: Path, dst: Path) -> None:
    load_array(src)  # refuses pickles and damaged files
    _copy(src, dst)


def _holds_pickle(path: Path) -> bool:
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                      np.lib.format.read_array_header_2_0)(fh)
        except ValueError as err:
            raise DataError(f"{path}: not a .npy file ({err})") from None
    return header[2].hasobject


def convert(src: str | Path, dst: str | Path, progress=None) -> dict:
    """Write the pickle-free copy of `src` to the new directory `dst`; returns what was done."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"source '{src}' is not a directory")
    if dst.exists():
        raise FileExistsError(f"'{dst}' already exists; choose a new directory")
    layout = detect_layout(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    done = {"layout": layout, "converted": 0, "copied": 0}
    try:
        if layout in ("fisv", "rg"):
            for name in ("train.txt", "test.txt"):
                _copy(src / name, tmp / name)
                done["copied"] += 1
            for path in sorted(src.rglob("*.npy")):
                rel = path.relative_to(src)
                if not _holds_pickle(path):
                    _plain_npy(path, tmp / rel)
                    done["copied"] += 1
                    continue
                out = (tmp / rel).with_suffix(".npz")
                out.parent.mkdir(parents=True, exist_ok=True)
                np.savez(out, **read_feature_dict(path))
                done["converted"] += 1
                if progress:
                    progress(str(rel))
        else:
            labels = list(FS1000_LABELS.values()) if layout == "fs1000" else [MANIFEST, "train.csv", "test.csv"]
            for name in labels:
                if (src / name).is_file():
                    _copy(src / name, tmp / name)
                    done["copied"] += 1
            folders = FS1000_FOLDERS.values() if layout == "fs1000" else ["features"]
            for folder in folders:
                for path in sorted((src / folder).rglob("*.npy")):
                    _plain_npy(path, tmp / path.relative_to(src))
                    done["copied"] += 1
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done
