"""Small synthetic datasets written in exactly the released layouts (README, "Real data").

The features come from the built-in generator; the awkward cases of the real files are planted on
purpose: videos shorter and longer than the published `clip_num`, an FS1000 video whose audio is one
step short, FS1000 PCS stored multiplied by a varying `factor`, and (on request) a Fis-V label file
with a header line. Pickled dict files are written with `np.save(dict)`, as the releases are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from limssr.config import SyntheticConfig
from limssr.data.generic import write_generic
from limssr.data.labels import RG_APPARATUS
from limssr.data.released import FS1000_FOLDERS, FS1000_LABELS, PAMFN_SUFFIX, SPECS
from limssr.data.samples import Sample
from limssr.data.synthetic import generate

LAYOUTS = ("fs1000", "fisv", "rg", "generic")
REAL_DIMS = {"fs1000": {"video": 768, "audio": 768, "flow": 1024},
             "fisv": {"video": 1024, "audio": 768, "flow": 1024},
             "rg": {"video": 1024, "audio": 768, "flow": 1024},
             "generic": {"video": 768, "audio": 768, "flow": 1024}}
SMALL_DIMS = {"video": 64, "audio": 48, "flow": 80}


def _config(layout: str, n_train: int, n_test: int, small: bool, seed: int, score_range: float,
            clip_num: int) -> SyntheticConfig:
    """Lengths span clip_num - 4 .. clip_num + 6, so some videos are padded and some cropped."""
    dims = dict(SMALL_DIMS) if small else dict(REAL_DIMS[layout])
    return SyntheticConfig(n_train=n_train, n_test=n_test, clips=clip_num + 6, min_clips=max(2, clip_num - 4),
                           dims=dims, score_range=score_range, seed=seed)


def _atomic_dir(out: Path, write) -> Path:
    if out.exists():
        raise FileExistsError(f"'{out}' already exists; choose a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _write_dicts(folder: Path, prefix: str, samples: list[Sample], names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for m, suffix in PAMFN_SUFFIX.items():
        np.save(folder / f"{prefix}_{suffix}.npy", {n: s.features[m] for n, s in zip(names, samples)},
                allow_pickle=True)


def write_fisv(out: Path, n_train: int = 24, n_test: int = 8, small: bool = False, seed: int = 0,
               header: bool = False, clip_num: int | None = None) -> Path:
    clip_num = clip_num or (8 if small else SPECS["fisv"].clip_num)
    data = generate(_config("fisv", n_train, n_test, small, seed, 45.0, clip_num))

    def write(tmp: Path) -> None:
        ids = np.random.default_rng(seed).permutation(np.arange(1, n_train + n_test + 1)).astype(str)
        every, names = [], []
        for split, samples in data.splits.items():
            split_ids = ids[: len(samples)] if split == "train" else ids[n_train:]
            lines = ["name TES PCS deductions"] if header else []
            for name, s in zip(split_ids, samples):
                pcs = s.labels["artistic01"] * 40.0
                lines.append(f"{name} {_fmt(s.score)} {_fmt(pcs)} {int(name) % 3}")
            (tmp / f"{split}.txt").write_text("\n".join(lines) + "\n")
            every += samples
            names += list(split_ids)
        _write_dicts(tmp / "Fis-feature", "FISV", every, names)

    return _atomic_dir(Path(out), write)


def write_rg(out: Path, n_train: int = 16, n_test: int = 8, small: bool = False, seed: int = 0,
             apparatus: tuple[str, ...] = RG_APPARATUS, clip_num: int | None = None) -> Path:
    """`n_train` / `n_test` per apparatus."""
    clip_num = clip_num or (8 if small else SPECS["rg"].clip_num)

    def write(tmp: Path) -> None:
        rows = {"train": [], "test": []}
        for k, app in enumerate(apparatus):
            data = generate(_config("rg", n_train, n_test, small, seed + k, 25.0, clip_num))
            every, names, number = [], [], 1
            for split, samples in data.splits.items():
                for s in samples:
                    name = f"{app}_{number:03d}"
                    number += 1
                    penalty = 0.3 * (number % 3)
                    total = min(s.score, 24.9)
                    difficulty = 0.45 * (total + penalty)
                    execution = total + penalty - difficulty
                    length = int(round(s.features["video"].shape[0] * 1.28))
                    rows[split].append(f"{name}\t{_fmt(difficulty)}\t{_fmt(execution)}\t{_fmt(total)}\t"
                                       f"{_fmt(penalty)}\t{length}")
                    every.append(s)
                    names.append(name)
            _write_dicts(tmp / "RG-feature", app, every, names)
        header = "Video_Name\tDifficulty_Score    Execution_Score Total_Score\tPenalty\tVideo_length"
        for split, lines in rows.items():
            (tmp / f"{split}.txt").write_text("\n".join([header] + lines) + "\n")

    return _atomic_dir(Path(out), write)


def write_fs1000(out: Path, n_train: int = 24, n_test: int = 8, small: bool = False, seed: int = 0,
                 tokens: int | None = None, clip_num: int | None = None) -> Path:
    """Video files are (T, N, D): N noisy copies whose mean is the generated feature."""
    clip_num = clip_num or (8 if small else SPECS["fs1000"].clip_num)
    tokens = tokens or (3 if small else 15)
    data = generate(_config("fs1000", n_train, n_test, small, seed, 130.0, clip_num))
    rng = np.random.default_rng([seed, 2])

    def write(tmp: Path) -> None:
        for folder in FS1000_FOLDERS.values():
            (tmp / folder).mkdir()
        index = 0
        for split, samples in data.splits.items():
            lines = []
            for s in samples:
                name = f"2019_SWJ_LF_Skater{index:03d}"
                factor = 0.8 + 0.1 * (index % 13)
                a = s.labels["artistic01"]
                parts = [np.clip(10 * a + rng.normal(0, 0.3), 0, 10) for _ in range(5)]
                pcs = sum(parts)
                lines.append(" ".join([name, _fmt(s.score), _fmt(pcs * factor)] + [_fmt(p) for p in parts]
                                      + [f"{factor:.1f}"]))
                video = s.features["video"]
                noise = rng.normal(0, 0.05, (video.shape[0], tokens, video.shape[1])).astype(np.float32)
                noise -= noise.mean(axis=1, keepdims=True)
                np.save(tmp / FS1000_FOLDERS["video"] / f"{name}.npy", video[:, None, :] + noise)
                audio = s.features["audio"][:-1] if index == 1 else s.features["audio"]  # one step short
                np.save(tmp / FS1000_FOLDERS["audio"] / f"{name}.npy", audio)
                np.save(tmp / FS1000_FOLDERS["flow"] / f"{name}.npy", s.features["flow"])
                index += 1
            (tmp / FS1000_LABELS[split]).write_text("\n".join(lines) + "\n")

    return _atomic_dir(Path(out), write)


def write_synthetic_generic(out: Path, n_train: int = 24, n_test: int = 8, small: bool = False, seed: int = 0,
                            clip_num: int = 12) -> Path:
    data = generate(_config("generic", n_train, n_test, small, seed, 130.0, clip_num))
    return write_generic(data, out)


def write_layout(layout: str, out: str | Path, **kwargs) -> Path:
    writers = {"fs1000": write_fs1000, "fisv": write_fisv, "rg": write_rg, "generic": write_synthetic_generic}
    if layout not in writers:
        raise ValueError(f"unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
    return writers[layout](Path(out), **kwargs)
