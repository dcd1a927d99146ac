"""Write the Fis-V Video-Swin features published with GDLT into limssr's generic layout.

    python benchmarks/export_fisv_vst.py GDLT_GIT_DIR LABELS_DIR OUT

GDLT_GIT_DIR is a clone (or bare mirror) of the public GDLT repository that holds
`fis-v/swintx_avg_fps25_clip32/<id>.npy` (float32 (T, 1024), one file per programme, T 124-302) at
COMMIT below; LABELS_DIR holds the Fis-V label files `train.txt` and `test.txt` (rows
`id TES PCS deductions`, no header). OUT gets `limssr-data.yaml` (one modality, `video`; TES / 45
and PCS / 40, the divisors MCMoE and LIMSSR use), `train.csv`, `test.csv` (all 400 / 100 rows) and
`features/video/<id>.npy`. Nothing is written inside the limssr project, and nothing of it is
redistributed: OUT is a local working copy. Rerunning skips files already exported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMMIT = "0f06f2bea7ae886f172bf4b6f20583562334073a"
FOLDER = "fis-v/swintx_avg_fps25_clip32"


def read_labels(path: Path) -> list[tuple[str, float, float]]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 3:
            sys.exit(f"{path}:{i}: expected 'id TES PCS deductions', got {line!r}")
        rows.append((fields[0], float(fields[1]), float(fields[2])))
    return rows


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    git_dir, labels, out = (Path(a) for a in argv)
    splits = {s: read_labels(labels / f"{s}.txt") for s in ("train", "test")}
    feats = out / "features" / "video"
    feats.mkdir(parents=True, exist_ok=True)
    (out / "limssr-data.yaml").write_text(
        "# Fis-V, Video Swin features (GDLT, swintx_avg_fps25_clip32), exported by benchmarks/export_fisv_vst.py\n"
        "modalities: [video]\nscore_ranges: {TES: 45, PCS: 40}\n")
    for split, rows in splits.items():
        (out / f"{split}.csv").write_text("name,TES,PCS\n" + "".join(f"{n},{t},{p}\n" for n, t, p in rows))
    todo = [n for rows in splits.values() for n, _, _ in rows if not (feats / f"{n}.npy").is_file()]
    for k, name in enumerate(todo, 1):
        blob = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{COMMIT}:{FOLDER}/{name}.npy"],
                              check=True, capture_output=True).stdout
        tmp = feats / f".{name}.npy.tmp"
        tmp.write_bytes(blob)
        tmp.replace(feats / f"{name}.npy")
        if k % 100 == 0 or k == len(todo):
            print(f"exported {k}/{len(todo)}", flush=True)
    print(f"{out}: {sum(len(r) for r in splits.values())} programmes "
          f"({len(splits['train'])} train, {len(splits['test'])} test)")


if __name__ == "__main__":
    main(sys.argv[1:])
