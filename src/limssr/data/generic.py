"""The generic on-disk layout: any number of named modalities, pickle-free.

    DIR/
      limssr-data.yaml          modalities: [video, audio, flow]   (names, in mask order)
                                score_range: 130                    (labels are divided by it)
                                or, for several score columns,
                                score_ranges: {TES: 45, PCS: 40}
                                own_length: [title, vector]          (optional: modalities that are
                                  not time-aligned with the others; each keeps its own length)
      train.csv, test.csv       header `name,score` (or `name,TES,PCS`), one row per sample
      features/<modality>/<name>.npy
                                float (T, D) array; a missing file means that modality is
                                missing for that sample (natural missingness)

Arrays are read with `allow_pickle=False`: nothing in a data directory can run code.
Single samples for `limssr predict` may also come as `.npz` files whose keys are modality names.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import yaml

from limssr.data.samples import DataError, Sample, SampleSet, check_disjoint, check_sample, read_label_text

MANIFEST = "limssr-data.yaml"


def load_array(path: Path) -> np.ndarray:
    """Read one `.npy` feature file as float32, refusing pickles and damaged files by name."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = reader(fh)
        if dtype.hasobject:
            raise DataError(f"{path}: holds pickled Python objects, which limssr never loads; save a numeric array")
        arr = np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: damaged or truncated .npy file ({err})") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: array of dtype {arr.dtype} is not numeric")
    return arr.astype(np.float32, copy=False)


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(f"'{root}' is not a limssr data directory: {MANIFEST} is missing")
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid YAML ({err})") from None
    mods = manifest.get("modalities")
    if not isinstance(mods, list) or not mods or not all(isinstance(m, str) and m for m in mods):
        raise DataError(f"{path}: key 'modalities' must be a non-empty list of names")
    ranges = manifest.get("score_ranges", {"score": manifest.get("score_range")})
    if not isinstance(ranges, dict) or not ranges:
        raise DataError(f"{path}: key 'score_ranges' must map score columns to their divisors")
    for column, rng in ranges.items():
        if not isinstance(rng, (int, float)) or isinstance(rng, bool) or rng <= 0:
            key = "score_range" if "score_ranges" not in manifest else f"score_ranges.{column}"
            raise DataError(f"{path}: key '{key}' must be a positive number, got {rng!r}")
    manifest["score_ranges"] = {str(k): float(v) for k, v in ranges.items()}
    own = manifest.get("own_length", [])
    if not isinstance(own, list) or any(m not in mods for m in own) or len(set(own)) != len(own):
        raise DataError(f"{path}: key 'own_length' must list distinct names from 'modalities' {mods}, got {own!r}")
    manifest["own_length"] = list(own)
    return manifest


def read_labels(path: Path) -> list[tuple[str, dict[str, float]]]:
    """`name,<score columns>` rows; refuses missing fields, non-numeric or negative scores, duplicates."""
    rows = list(csv.reader(read_label_text(path).splitlines()))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "name":
        raise DataError(f"{path}: the first line must be a header 'name,score' (or 'name,<score columns>')")
    columns = [c.strip() for c in rows[0][1:]]
    out, seen = [], {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < len(columns) + 1:
            raise DataError(f"{path}:{lineno}: expected {len(columns) + 1} fields (name,{','.join(columns)}), "
                            f"got {','.join(row)!r}")
        name = row[0].strip()
        if not _plain_name(name):
            raise DataError(f"{path}:{lineno}: name {name!r} must be a plain file name (no '/', '\\', '..', "
                            "leading '.' or absolute path): it names features/<modality>/<name>.npy")
        values = {}
        for column, raw in zip(columns, row[1:]):
            try:
                values[column] = float(raw)
            except ValueError:
                raise DataError(f"{path}:{lineno}: {column} {raw.strip()!r} of '{name}' is not a number") from None
            if not math.isfinite(values[column]) or values[column] < 0:
                raise DataError(f"{path}:{lineno}: {column} {raw.strip()!r} of '{name}' must be finite and non-negative")
        if name in seen:
            raise DataError(f"{path}:{lineno}: duplicate name '{name}' (first on line {seen[name]})")
        seen[name] = lineno
        out.append((name, values))
    if not out:
        raise DataError(f"{path}: no samples (empty split)")
    return out


def _plain_name(name: str) -> bool:
    """A sample name that stays inside features/<modality>/ when it becomes a file name."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name


def _read_features(root: Path, name: str, modalities: list[str]) -> dict[str, np.ndarray]:
    """The sample's feature arrays; a file that is absent means a missing modality, but one that is
    there and unreadable as a file (a dangling link, a directory) is an error, never a silent gap."""
    feats = {}
    for m in modalities:
        path = root / "features" / m / f"{name}.npy"
        if path.is_file():
            feats[m] = load_array(path)
        elif path.is_symlink():
            raise DataError(f"{path}: a symbolic link to '{os.readlink(path)}', which does not exist")
        elif path.exists():
            raise DataError(f"{path}: is not a regular file (a directory or a device); a .npy array belongs there")
    return feats


def _infer_dims(samples: list[Sample], modalities: list[str], root: Path) -> dict[str, int]:
    """Each modality's dim: the one most files have; a file with another is named in the error."""
    found: dict[str, list[tuple[int, str]]] = {}
    for s in samples:
        for m, arr in s.features.items():
            if arr.ndim != 2:
                raise DataError(f"{root / 'features' / m / (s.name + '.npy')}: expected a 2-D (T, D) array, "
                                f"got shape {arr.shape}")
            found.setdefault(m, []).append((arr.shape[1], s.name))
    dims = {}
    for m, files in found.items():
        counts = [d for d, _ in files]
        dims[m] = max(set(counts), key=counts.count)
        odd = next(((d, n) for d, n in files if d != dims[m]), None)
        if odd:
            raise DataError(f"{root / 'features' / m / (odd[1] + '.npy')}: dim {odd[0]}, but other '{m}' files "
                            f"have dim {dims[m]}")
    absent = [m for m in modalities if m not in dims]
    if absent:
        raise DataError(f"{root}: no sample has features for modality '{absent[0]}'")
    return dims


def read_generic(root: str | Path, splits: tuple[str, ...] = ("train", "test"), score_type: str | None = None,
                 max_length_mismatch: int = 1) -> SampleSet:
    """Read a generic-layout directory (see the module docstring); `score_type` picks the label
    column (default: the first one)."""
    root = Path(root)
    manifest = read_manifest(root)
    modalities = list(manifest["modalities"])
    ranges = manifest["score_ranges"]
    column = score_type or next(iter(ranges))
    if column not in ranges:
        raise DataError(f"{root / MANIFEST}: no score column '{column}' (data.score_type); "
                        f"columns: {', '.join(ranges)}")
    out: dict[str, list[Sample]] = {}
    for split in splits:
        samples = []
        for name, values in read_labels(root / f"{split}.csv"):
            if column not in values:
                raise DataError(f"{root / (split + '.csv')}: no column '{column}'")
            feats = _read_features(root, name, modalities)
            if not feats:
                raise DataError(f"{root / (split + '.csv')}: sample '{name}' has no feature file under "
                                f"{root / 'features'}/<modality>/{name}.npy")
            samples.append(Sample(name=name, features=feats, score=values[column], labels=values))
        out[split] = samples
    dims = _infer_dims([s for ss in out.values() for s in ss], modalities, root)
    check_disjoint(out, str(root))
    for split, samples in out.items():
        for s in samples:
            check_sample(s, modalities, dims, f"{root}/{split}", max_length_mismatch, manifest["own_length"])
    return SampleSet(modalities=modalities, dims=dims, score_range=ranges[column], splits=out,
                     info={"source": "generic", "path": str(root), "score_type": column},
                     own_length=manifest["own_length"])


def write_generic(data: SampleSet, root: str | Path) -> Path:
    """Write `data` in the generic layout; refuses an existing target and never leaves a half copy."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"'{root}' already exists; choose a new directory")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        manifest = {"modalities": data.modalities, "score_range": data.score_range}
        if data.own_length:
            manifest["own_length"] = list(data.own_length)
        (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
        for m in data.modalities:
            (tmp / "features" / m).mkdir(parents=True)
        for split, samples in data.splits.items():
            with open(tmp / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["name", "score"])
                for s in samples:
                    writer.writerow([s.name, repr(float(s.score))])
                    for m, arr in s.features.items():
                        np.save(tmp / "features" / m / f"{s.name}.npy", arr, allow_pickle=False)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def read_unlabelled(path: str | Path, modalities: list[str]) -> list[Sample]:
    """Samples to score: one `.npz` file (keys are modality names), a directory of `.npz` files, or
    a generic-layout directory (every name under features/)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input '{path}' does not exist")
    if path.is_file():
        return [_read_npz(path, modalities)]
    if (path / MANIFEST).is_file() or (path / "features").is_dir():
        names = sorted({p.stem for m in modalities for p in (path / "features" / m).glob("*.npy")})
        if not names:
            raise DataError(f"{path / 'features'}: no .npy files for modalities {modalities}")
        return [Sample(name=n, features=_read_features(path, n, modalities)) for n in names]
    files = sorted(path.glob("*.npz"))
    if not files:
        raise DataError(f"input directory '{path}' holds no .npz files and no features/ folder")
    return [_read_npz(f, modalities) for f in files]


def _read_npz(path: Path, modalities: list[str]) -> Sample:
    if path.suffix != ".npz":
        raise DataError(f"input file '{path}' must be a .npz archive with one array per modality")
    try:
        with np.load(path, allow_pickle=False) as archive:
            unknown = sorted(set(archive.files) - set(modalities))
            if unknown:
                raise DataError(f"{path}: key '{unknown[0]}' is not a modality of this model {modalities}")
            feats = {k: np.asarray(archive[k], dtype=np.float32) for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read archive, damaged or truncated ({err})") from None
    if not feats:
        raise DataError(f"{path}: holds no modality at all")
    return Sample(name=path.stem, features=feats)
