"""Keep finished runs' results across machines without their weights.

    python benchmarks/archive_runs.py pack ROOT ARCHIVE      # ROOT's evaluated runs -> ARCHIVE
    python benchmarks/archive_runs.py unpack ARCHIVE ROOT [--labels DATA_DIR]

`pack` copies, for every evaluated run under ROOT (a directory with config.yaml and
eval*/results.json), the small files that describe and score it: config, data fingerprint,
selection, timing, training masks, training log, each evaluation's results, per-sample predictions
and score-interval calibration, and `limssr trust` reports. Weights and checkpoints stay behind (megabytes each), so an archived run can be
reported, compared and paired, but not scored again. Files of ROOT outside any run (the ridge
probe's JSON, a benchmark's comparison) are copied too, replacing their older copies; a run's own
file is never overwritten by a differing one: such a clash stops the copy with the path named.

Labels of third-party datasets must not be copied into the project: for a run whose data is not
the built-in synthetic set, the `label` column of predictions.csv is left empty in the archive.
`unpack --labels DATA_DIR` refills it from DATA_DIR/test.csv (the generic layout the run was
trained on), so that the paired comparison works again.

`unpack` copies the archive into ROOT where ROOT lacks the file; a later `limssr benchmark`,
`limssr train --seeds` or the benchmarks/*.sh scripts then reuse those runs instead of
training them again (a run with results counts as finished even without its weights).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import yaml

RUN_FILES = ("config.yaml", "data.json", "env.json", "selection.json", "timing.json", "train_masks.csv",
             "logs/metrics.csv")
EVAL_FILES = ("results.json", "results.csv", "results.md", "predictions.csv", "conformal.json")
TRUST_FILES = ("trust.json", "trust.md")  # `limssr trust` reports (aggregates only: no per-sample label)
LOOSE_SUFFIXES = (".json", ".csv", ".md")


def evaluated_runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("config.yaml")
                  if list(p.parent.glob("eval*/results.json")) and ".failed" not in str(p.relative_to(root)))


def _synthetic(run: Path) -> bool:
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    return (cfg.get("data") or {}).get("source", "synthetic") == "synthetic"


def _blank_labels(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "label" not in rows[0]:
        return text
    i = rows[0].index("label")
    for row in rows[1:]:
        row[i] = ""
    return _csv(rows)


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _put(dest: Path, text: str, replace: bool = False) -> bool:
    """Write `text` to `dest` unless it is there already; a differing file there is an error
    unless `replace` (derived files such as a benchmark's comparison, rewritten as runs finish)."""
    if dest.exists():
        if dest.read_text(encoding="utf-8") == text:
            return False
        if not replace:
            raise SystemExit(f"error: '{dest}' exists with other content; not overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    return True


def pack(root: Path, archive: Path) -> int:
    runs = evaluated_runs(root)
    copied = 0
    for run in runs:
        rel = run.relative_to(root)
        names = [f for f in RUN_FILES if (run / f).is_file()]
        names += [str(p.relative_to(run)) for d in sorted(run.glob("eval*")) if d.is_dir()
                  for p in (d / f for f in EVAL_FILES) if p.is_file()]
        names += [str(p.relative_to(run)) for d in sorted(run.glob("trust*")) if d.is_dir()
                  for p in (d / f for f in TRUST_FILES) if p.is_file()]
        blank = not _synthetic(run)
        for name in names:
            text = (run / name).read_text(encoding="utf-8")
            if blank and name.endswith("predictions.csv"):
                text = _blank_labels(text)
            copied += _put(archive / rel / name, text)
    every_run = {c.parent for c in root.rglob("config.yaml")}  # unfinished runs too: their files stay behind
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in LOOSE_SUFFIXES and not any(r in p.parents for r in every_run) \
                and ".failed" not in str(p) and p.stat().st_size < 1_000_000:
            copied += _put(archive / p.relative_to(root), p.read_text(encoding="utf-8"), replace=True)
    print(f"{len(runs)} evaluated runs under '{root}'; {copied} files added to '{archive}'")
    return 0


def _labels(data_dir: Path, score_type: str) -> dict[str, str]:
    path = data_dir / "test.csv"
    if not path.is_file():
        raise SystemExit(f"error: '{path}' not found (--labels wants the generic layout's directory)")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or score_type not in rows[0]:
        raise SystemExit(f"error: '{path}' has no column '{score_type}'")
    return {r["name"]: r[score_type] for r in rows}


def _refill(text: str, labels: dict[str, str], source: Path) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    head = rows[0]
    i, n = head.index("label"), head.index("name")
    for row in rows[1:]:
        if row[i] == "":
            if row[n] not in labels:
                raise SystemExit(f"error: '{source}': sample '{row[n]}' is not in the --labels test.csv")
            row[i] = labels[row[n]]
    return _csv(rows)


def unpack(archive: Path, root: Path, labels_dir: Path | None) -> int:
    copied = 0
    for p in sorted(archive.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(archive)
        text = p.read_text(encoding="utf-8")
        if p.name == "predictions.csv" and ",label," in text.splitlines()[0] + ",":
            run = p.parent.parent
            if not _synthetic(run):
                if labels_dir is None:
                    raise SystemExit(f"error: '{p}' has its labels removed; pass --labels DATA_DIR")
                cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
                text = _refill(text, _labels(labels_dir, cfg["data"]["score_type"]), p)
        dest = root / rel
        if dest.exists():
            continue  # ROOT's own file wins; train_and_evaluate checks the run is the same one
        copied += _put(dest, text)
    print(f"{copied} files copied from '{archive}' into '{root}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack", help="copy ROOT's evaluated runs, without weights, into ARCHIVE")
    p.add_argument("root", type=Path)
    p.add_argument("archive", type=Path)
    u = sub.add_parser("unpack", help="copy ARCHIVE's runs into ROOT where ROOT lacks them")
    u.add_argument("archive", type=Path)
    u.add_argument("root", type=Path)
    u.add_argument("--labels", type=Path, help="generic-layout data directory to refill removed labels from")
    args = ap.parse_args(argv)
    if args.verb == "pack":
        if not args.root.is_dir():
            raise SystemExit(f"error: '{args.root}' is not a directory")
        return pack(args.root, args.archive)
    if not args.archive.is_dir():
        return 0  # nothing archived yet
    return unpack(args.archive, args.root, args.labels)


if __name__ == "__main__":
    sys.exit(main())
