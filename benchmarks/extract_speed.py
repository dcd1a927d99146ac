"""Time `limssr extract` per minute of video on this machine, one extractor at a time, with the
full-size architectures randomly initialised (the cost does not depend on the weights' values).

    python benchmarks/extract_speed.py --seconds 16 --out benchmarks/extract-speed.json

Writes a synthetic 640x360, 25 fps video with an audio track, extracts it at the released
features' grid (25 fps, clips of 32 frames, 224 crops) and reports seconds per minute of video
for each extractor, with the library versions and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from limssr.extract.decode import Grid
from limssr.extract.pipeline import Plan, extract_videos
from limssr.extract.synth import write_video

CASES = [("video", "swin3d_b"), ("audio", "ast"), ("flow", "raft_small+i3d"), ("flow", "raft_large+i3d")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--only", help="comma-separated extractor names (default: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "performance.mp4", seconds=args.seconds, fps=25, size=(640, 360))
        for modality, name in CASES:
            if only and name not in only:
                continue
            plan = Plan(extractors={modality: name}, weights={modality: "random"}, grid=Grid(), device=args.device)
            out = Path(tmp) / name
            t0 = time.perf_counter()
            record = extract_videos([video], out, plan, show=False)
            wall = time.perf_counter() - t0
            info = record["videos"]["performance"]
            rows.append({"modality": modality, "extractor": name, "clips": info["clips"],
                         "video_seconds": info["seconds"], "wall_s": round(wall, 2),
                         "extract_s": info["wall_s"], "s_per_minute_of_video": round(info["wall_s"] / info["seconds"] * 60, 1)})
            print(f"{name:16s} {info['clips']:3d} clips  {info['wall_s']:7.1f} s  "
                  f"{rows[-1]['s_per_minute_of_video']:7.1f} s per minute of video")
    result = {"rows": rows, "device": args.device, "cpus": os.cpu_count(), "machine": platform.machine(),
              "libraries": record["libraries"], "grid": {"fps": 25, "clip": 32, "crop": 224}}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
