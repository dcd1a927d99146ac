"""What `train.deterministic=true` costs, and how far two identical runs differ without it.

    .venv/bin/python benchmarks/deterministic.py [--epochs 2] [--rounds 2] [--out benchmarks/deterministic.json]

Trains the demo preset (default backbone, built-in data) `rounds` times in each mode, alternating,
each run in its own process; reads each run's training wall time (timing.json) and steps, and its
test results. Prints and writes (JSON) the seconds per step of each mode, their ratio, and the
largest difference in test MSE and Spearman between runs of one mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def train(out: Path, epochs: int, deterministic: bool) -> dict:
    cmd = [sys.executable, "-m", "limssr.cli", "train", "--preset", "demo", "--out", str(out),
           f"train.epochs={epochs}", f"train.deterministic={str(deterministic).lower()}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timing = json.loads((out / "timing.json").read_text())
    results = json.loads((out / "eval" / "results.json").read_text())
    with (out / "logs" / "metrics.csv").open() as fh:
        steps = max(int(line.split(",")[header_index(out, "step")]) for line in list(fh)[1:]) + 1
    return {"wall_seconds": timing["wall_seconds"], "steps": steps,
            "subsets": {k: {"mse": v["mse"], "spearman": v["spearman"]} for k, v in results["subsets"].items()}}


def header_index(out: Path, column: str) -> int:
    return (out / "logs" / "metrics.csv").read_text().splitlines()[0].split(",").index(column)


def spread(runs: list[dict], key: str) -> float:
    names = runs[0]["subsets"]
    return max(abs(a["subsets"][n][key] - b["subsets"][n][key]) for n in names for a in runs for b in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/deterministic.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"default": [], "deterministic": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in runs:
                res = train(Path(tmp) / f"{mode}-{r}", args.epochs, mode == "deterministic")
                runs[mode].append(res)
                print(f"round {r + 1} {mode}: {res['wall_seconds'] / res['steps']:.3f} s/step", flush=True)
    per_step = {m: min(x["wall_seconds"] / x["steps"] for x in rs) for m, rs in runs.items()}
    report = {
        "command": " ".join(["python", *sys.argv]), "epochs": args.epochs, "rounds": args.rounds,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "seconds_per_step_best": per_step,
        "deterministic_over_default": per_step["deterministic"] / per_step["default"],
        "max_test_mse_difference": {m: spread(rs, "mse") for m, rs in runs.items()},
        "max_test_spearman_difference": {m: spread(rs, "spearman") for m, rs in runs.items()},
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds_per_step_best", "deterministic_over_default",
                                             "max_test_mse_difference", "max_test_spearman_difference")}, indent=2))


if __name__ == "__main__":
    main()
