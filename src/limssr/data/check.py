"""`limssr data check`: read a data directory the way training will, and report every problem.

Unlike the readers, which stop at the first error, the check keeps going and lists every problem it
finds, each with its file and key: malformed label lines, names in the labels without features (and
features without labels), arrays of the wrong rank or dim, T = 0, NaN or Inf, modality lengths that
differ by more than `max_length_mismatch`, scores above the divisor. It also prints counts per
split, T statistics, dims and score ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from limssr.data import labels as L
from limssr.data.generic import load_array, read_labels, read_manifest
from limssr.config import DataConfig
from limssr.data.released import (FS1000_FOLDERS, FS1000_LABELS, LAYOUTS, PAMFN_SUFFIX, SPECS, detect_layout,
                                  feature_file, feature_table, read_dataset)
from limssr.data.samples import DataError, array_problem, length_problem


@dataclass
class CheckReport:
    layout: str
    path: str
    stats: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what training accepts but a user should know

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Source:
    """One modality's features: names -> a loader of the array, and where each lives (for messages)."""

    names: set[str]
    load: Callable[[str], np.ndarray]
    where: Callable[[str], str]


def _table_source(table: dict[str, np.ndarray], location: str) -> _Source:
    return _Source(set(table), table.__getitem__, lambda n: f"{location} key '{n}'")


def _folder_source(folder: Path, transform=None) -> _Source:
    names = {p.stem for p in folder.glob("*.npy")} if folder.is_dir() else set()

    def load(name):
        arr = load_array(folder / f"{name}.npy")
        return transform(folder / f"{name}.npy", arr) if transform else arr

    return _Source(names, load, lambda n: f"{folder / (n + '.npy')}")


def _fs1000_video(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 3:
        raise DataError(f"{path}: FS1000 video must be 3-D (T, N, 768), got shape {arr.shape}")
    return arr.mean(axis=1)


def _groups(root: Path, layout: str, report: CheckReport):
    """(group name, {split: label rows}, {modality: _Source}, divisors) per independent part."""
    if layout == "fs1000":
        rows = {}
        for split, name in FS1000_LABELS.items():
            try:
                rows[split] = L.parse_fs1000(root / name)
            except DataError as err:
                report.problems.append(str(err))
        sources = {m: _folder_source(root / f, _fs1000_video if m == "video" else None)
                   for m, f in FS1000_FOLDERS.items()}
        yield "fs1000", rows, sources, SPECS["fs1000"].divisors
        return
    if layout == "generic":
        manifest = read_manifest(root)
        rows = {}
        for split in ("train", "test"):
            try:
                rows[split] = read_labels(root / f"{split}.csv")
            except DataError as err:
                report.problems.append(str(err))
        sources = {m: _folder_source(root / "features" / m) for m in manifest["modalities"]}
        yield "generic", rows, sources, manifest["score_ranges"]
        return
    groups = ["FISV"] if layout == "fisv" else [a for a in L.RG_APPARATUS
                                                if list(root.glob(f"{a}_*.np[yz]")) + list(root.glob(f"RG-feature/{a}_*.np[yz]"))]
    sub = "Fis-feature" if layout == "fisv" else "RG-feature"
    for group in groups:
        rows = {}
        for split in ("train", "test"):
            try:
                rows[split] = (L.parse_fisv(root / f"{split}.txt") if layout == "fisv"
                               else [(n, {group: v["Total"]}) for n, v in L.parse_rg(root / f"{split}.txt", group)])
            except DataError as err:
                report.problems.append(str(err))
        sources = {}
        for m, suffix in PAMFN_SUFFIX.items():
            stem = f"{group}_{suffix}"
            try:
                sources[m] = _table_source(feature_table(root, sub, stem), str(feature_file(root, sub, stem)))
            except DataError as err:
                report.problems.append(str(err))
        divisors = SPECS["fisv"].divisors if layout == "fisv" else {group: SPECS["rg"].divisors[group]}
        yield group, rows, sources, divisors


def check_directory(path: str | Path, dataset: str | None = None, max_length_mismatch: int = 1) -> CheckReport:
    root = Path(path)
    if not root.is_dir():
        return CheckReport("?", str(root), problems=[f"'{root}' is not a directory"])
    try:
        layout = dataset or detect_layout(root)
    except DataError as err:
        return CheckReport("?", str(root), problems=[str(err)])
    report = CheckReport(layout, str(root))
    if layout not in LAYOUTS:
        report.problems.append(f"unknown dataset '{layout}'; choose {', '.join(LAYOUTS)}")
        return report
    try:
        for group, rows, sources, divisors in _groups(root, layout, report):
            _check_group(group, rows, sources, divisors, max_length_mismatch, report, natural_ok=layout == "generic",
                         own_length=read_manifest(root)["own_length"] if layout == "generic" else [])
            initials = [m[0] for m in sources]
            if len(set(initials)) != len(initials):
                report.problems.append(f"{group}: modality names {list(sources)} share an initial; subsets are "
                                       "named by initials, so each modality needs its own first letter")
    except DataError as err:
        report.problems.append(str(err))
    # and what training would refuse, read by the very reader it uses: the two cannot disagree
    try:
        read_dataset(DataConfig(source=layout, path=str(root), max_length_mismatch=max_length_mismatch))
    except DataError as err:
        if not any(str(err) in p or p in str(err) for p in report.problems):
            report.problems.append(f"training would refuse it: {err}")
    return report


def _check_group(group, rows, sources, divisors, max_mismatch, report: CheckReport, natural_ok: bool,
                 own_length: list[str]) -> None:
    """`natural_ok`: a sample missing some (not all) modalities is natural missingness (generic
    layout), counted but not a problem; the released datasets are complete, so there it is one."""
    seen: dict[str, list[tuple[int, int, str]]] = {m: [] for m in sources}  # (T, dim, where) per file
    labelled = set()
    stats = report.stats.setdefault(group, {"splits": {}, "scores": {}, "T": {}, "dims": {}, "missing": {}})
    for split, split_rows in rows.items():
        stats["splits"][split] = len(split_rows)
        for name, values in split_rows:
            labelled.add(name)
            for key, value in values.items():
                if key in divisors:
                    stats["scores"].setdefault(key, []).append(value)
                    if value > divisors[key]:
                        report.problems.append(f"{group} {split}: '{name}' {key} {value} exceeds the divisor "
                                               f"{divisors[key]} (scores are divided by it and must lie in [0, 1])")
            sample_len = {}
            absent = [m for m, src in sources.items() if name not in src.names]
            for m in absent:
                stats["missing"][m] = stats["missing"].get(m, 0) + 1
                text = f"{group} {split}: '{name}' has a label but no {m} features (expected {sources[m].where(name)})"
                if len(absent) == len(sources):
                    report.problems.append(text)
                elif not natural_ok:  # the released sets are complete: a gap is worth a look, and training
                    report.notes.append(text + "; training reads it as a missing modality")  # treats it as missing
            for m, src in sources.items():
                if m in absent:
                    continue
                try:
                    arr = src.load(name)
                except DataError as err:
                    report.problems.append(str(err))
                    continue
                where = src.where(name)
                problem = array_problem(arr)  # dims are compared across files below
                if problem:
                    report.problems.append(f"{where}: {problem}")
                    if arr.ndim != 2 or arr.shape[0] == 0:
                        continue
                seen[m].append((arr.shape[0], arr.shape[1], where))
                sample_len[m] = arr.shape[0]
            problem = length_problem(sample_len, max_mismatch, own_length)
            if problem:
                report.problems.append(f"{group} {split}: '{name}' {problem}")
    for m, files in seen.items():
        if not files:
            continue
        found = [dim for _, dim, _ in files]
        major = max(set(found), key=found.count)
        stats["dims"][m] = major
        for _, dim, where in files:
            if dim != major:
                report.problems.append(f"{where}: dim {dim}, but most '{m}' files have dim {major}")
        t = np.array([length for length, _, _ in files])
        stats["T"][m] = {"min": int(t.min()), "median": float(np.median(t)), "max": int(t.max())}
    for m, src in sources.items():
        for name in sorted(src.names - labelled):
            report.problems.append(f"{src.where(name)}: features without a label in the label files")
    stats["scores"] = {k: {"min": min(v), "max": max(v), "mean": float(np.mean(v))}
                       for k, v in stats["scores"].items()}
