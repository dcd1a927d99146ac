"""Readers for the released FS1000, Fis-V and RG feature layouts (README, "Real data").

    FS1000/  train_fs1000_new.txt  val_fs1000_new.txt   (val is the test split)
             output_feature_fs1000_new/<name>.npy  (T, N, 768) TimeSformer, averaged over N
             ast_feature_fs1000_new/<name>.npy     (T, 768)    AST audio
             i3d_avg_clip8_5s_fs1000/<name>.npy    (T, 1024)   I3D flow
    Fis-V/   train.txt  test.txt
             [Fis-feature/]FISV_{rgb_VST,audio_AST,flow_I3D}.npy        pickled {id: (T, D)}
    RG/      train.txt  test.txt
             [RG-feature/]{Ball,Clubs,Hoop,Ribbon}_{rgb_VST,audio_AST,flow_I3D}.npy

Pickled dict files are read once each, with the restricted unpickler of `safe_pickle`. Feature dims
come from the files. A name missing from one modality's file makes that modality missing for that
sample (natural missingness); a name with no features at all is refused.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from limssr.config import DataConfig
from limssr.data import labels as L
from limssr.data.generic import MANIFEST, load_array, read_generic
from limssr.data.safe_pickle import read_feature_dict
from limssr.data.samples import DataError, Sample, SampleSet, check_disjoint, check_sample

MODALITIES = ["video", "audio", "flow"]
PAMFN_SUFFIX = {"video": "rgb_VST", "audio": "audio_AST", "flow": "flow_I3D"}
FS1000_FOLDERS = {"video": "output_feature_fs1000_new", "audio": "ast_feature_fs1000_new",
                  "flow": "i3d_avg_clip8_5s_fs1000"}
FS1000_LABELS = {"train": "train_fs1000_new.txt", "test": "val_fs1000_new.txt"}


@dataclass(frozen=True)
class DatasetSpec:
    """What a released dataset offers: its score types, their divisors (MCMoE/LIMSSR values) and the
    published clip length."""

    name: str
    score_types: tuple[str, ...]
    divisors: dict
    clip_num: int


SPECS = {
    "fs1000": DatasetSpec("fs1000", L.FS1000_COLUMNS,
                          {"TES": 130.0, "PCS": 60.0, "SS": 10.0, "TR": 10.0, "PE": 10.0, "CO": 10.0, "IN": 10.0}, 95),
    "fisv": DatasetSpec("fisv", ("TES", "PCS"), {"TES": 45.0, "PCS": 40.0}, 124),
    "rg": DatasetSpec("rg", L.RG_APPARATUS, {a: 25.0 for a in L.RG_APPARATUS}, 68),
}


def detect_layout(root: Path) -> str:
    """The layout of a data directory: generic, fs1000, fisv or rg."""
    if (root / MANIFEST).is_file():
        return "generic"
    if (root / FS1000_LABELS["train"]).is_file() or (root / FS1000_FOLDERS["video"]).is_dir():
        return "fs1000"
    for sub in ("", "Fis-feature"):
        if list((root / sub).glob("FISV_*.np[yz]")):
            return "fisv"
    for sub in ("", "RG-feature"):
        if any(list((root / sub).glob(f"{a}_*.np[yz]")) for a in L.RG_APPARATUS):
            return "rg"
    raise DataError(f"cannot tell the layout of '{root}': expected limssr-data.yaml (generic), "
                    f"{FS1000_LABELS['train']} (FS1000), FISV_*.npy (Fis-V) or Ball_*.npy etc. (RG)")


def score_type_for(spec: DatasetSpec, cfg: DataConfig) -> str:
    st = cfg.score_type or spec.score_types[0]
    if st not in spec.score_types:
        raise DataError(f"unknown score type '{st}' for {spec.name}; choose one of {', '.join(spec.score_types)} "
                        "(data.score_type)")
    return st


def feature_file(root: Path, sub: str, stem: str) -> Path:
    """The file one modality's features are read from: `stem.npz` (a pickle-free copy written by
    `limssr data convert`) before the released pickled `stem.npy`, in `root`, then `root/sub`."""
    for folder in (root, root / sub):
        for suffix in (".npz", ".npy"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    raise DataError(f"feature file '{stem}.npy' (or '{stem}.npz') not found in '{root}' or '{root / sub}'")


def feature_table(root: Path, sub: str, stem: str) -> dict[str, np.ndarray]:
    """One modality's features `{name: array}`, from `feature_file`."""
    path = feature_file(root, sub, stem)
    if path.suffix == ".npy":
        return read_feature_dict(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k].astype(np.float32, copy=False) for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: damaged archive ({err})") from None


def _samples(rows, feats: dict[str, dict[str, np.ndarray]], score_key: str, where: str) -> list[Sample]:
    out = []
    for name, values in rows:
        present = {m: table[name] for m, table in feats.items() if name in table}
        if not present:
            raise DataError(f"{where}: '{name}' has a label but no features in any modality file")
        out.append(Sample(name=name, features=present, score=values[score_key], labels=dict(values)))
    return out


def _finish(name: str, spec: DatasetSpec, root: Path, splits: dict[str, list[Sample]], cfg: DataConfig,
            score_type: str) -> SampleSet:
    dims: dict[str, int] = {}
    for samples in splits.values():
        for s in samples:
            for m, arr in s.features.items():
                if arr.ndim == 2 and dims.setdefault(m, arr.shape[1]) != arr.shape[1]:
                    raise DataError(f"{root}: '{s.name}' modality '{m}' has dim {arr.shape[1]}, other samples {dims[m]}")
    check_disjoint(splits, str(root))
    for split, samples in splits.items():
        for s in samples:
            check_sample(s, MODALITIES, dims, f"{root} ({split})", cfg.max_length_mismatch)
    divisor = cfg.score_range or spec.divisors[score_type]
    return SampleSet(modalities=list(MODALITIES), dims=dims, score_range=float(divisor), splits=splits,
                     info={"source": name, "path": str(root), "score_type": score_type})


def read_pamfn(root: str | Path, cfg: DataConfig, name: str) -> SampleSet:
    """Fis-V or RG: label files plus one pickled feature dict per modality (per apparatus for RG)."""
    root = Path(root)
    spec = SPECS[name]
    score_type = score_type_for(spec, cfg)
    if name == "fisv":
        prefix, sub = "FISV", "Fis-feature"
        rows = {s: L.parse_fisv(root / f"{s}.txt", cfg.skip_first_line) for s in ("train", "test")}
        key = score_type
    else:
        prefix, sub = score_type, "RG-feature"
        rows = {s: L.parse_rg(root / f"{s}.txt", score_type, cfg.skip_first_line) for s in ("train", "test")}
        key = "Total"
    feats = {m: feature_table(root, sub, f"{prefix}_{suffix}") for m, suffix in PAMFN_SUFFIX.items()}
    splits = {s: _samples(r, feats, key, str(root / f"{s}.txt")) for s, r in rows.items()}
    return _finish(name, spec, root, splits, cfg, score_type)


def _fs1000_video(path: Path, arr: np.ndarray, allow_2d: bool) -> np.ndarray:
    if arr.ndim == 3:
        return arr.mean(axis=1)
    if arr.ndim == 2 and allow_2d:
        warnings.warn(f"{path}: 2-D video features used as they are (data.video_2d)", stacklevel=3)
        return arr
    raise DataError(f"{path}: FS1000 video features must be 3-D (T, N, 768), got shape {arr.shape} "
                    "(set data.video_2d=true to accept 2-D files)")


def read_fs1000(root: str | Path, cfg: DataConfig) -> SampleSet:
    """FS1000: one `.npy` per video in each modality folder; PCS is divided by `factor`."""
    root = Path(root)
    spec = SPECS["fs1000"]
    score_type = score_type_for(spec, cfg)
    splits = {}
    for split, filename in FS1000_LABELS.items():
        rows = L.parse_fs1000(root / filename, cfg.skip_first_line)
        samples = []
        for name, values in rows:
            feats = {}
            for m, folder in FS1000_FOLDERS.items():
                path = root / folder / f"{name}.npy"
                if path.is_file():
                    arr = load_array(path)
                    feats[m] = _fs1000_video(path, arr, cfg.video_2d) if m == "video" else arr
            if not feats:
                raise DataError(f"{root / filename}: '{name}' has a label but no .npy file in "
                                f"{', '.join(FS1000_FOLDERS.values())}")
            samples.append(Sample(name=name, features=feats, score=values[score_type], labels=values))
        splits[split] = samples
    return _finish("fs1000", spec, root, splits, cfg, score_type)


def read_dataset(cfg: DataConfig) -> SampleSet:
    """Read the directory `cfg.path` in the layout `cfg.source` ("auto" detects it)."""
    root = Path(cfg.path)
    if not root.is_dir():
        raise DataError(f"data directory '{root}' does not exist")
    layout = detect_layout(root) if cfg.source == "auto" else cfg.source
    return READERS[layout](root, cfg)


# The one table of data layouts: `data.source` (and `--data`, detected) for training and evaluation,
# `limssr data check --dataset` and `limssr data convert` all name a layout from here.
READERS: dict[str, Callable[[Path, DataConfig], SampleSet]] = {
    "generic": lambda root, cfg: read_generic(root, score_type=cfg.score_type,
                                              max_length_mismatch=cfg.max_length_mismatch),
    "fs1000": read_fs1000,
    "fisv": lambda root, cfg: read_pamfn(root, cfg, "fisv"),
    "rg": lambda root, cfg: read_pamfn(root, cfg, "rg"),
}
LAYOUTS = tuple(READERS)
