"""int8 against bf16 scoring on a trained run: test Spearman and MSE on every subset.

    python benchmarks/int8_check.py RUN_DIR --out benchmarks/scoring/int8-demo.json

Scores RUN_DIR's test split twice with `limssr.runs.evaluate` (the run's own precision, then
eval.quantize=int8), each into a new folder beside the JSON, and writes per subset both
Spearman values, their difference, both MSEs, and whether the difference is within --tolerance
(default 0.005, the speed issue's criterion). Needs the run's weights (model.safetensors).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from limssr.atomic import atomic_write_text
from limssr.runs import evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write")
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args(argv)
    if not (args.run_dir / "model.safetensors").is_file():
        print(f"error: '{args.run_dir}' has no model.safetensors (an archived run keeps no weights)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = evaluate(args.run_dir, out_dir=Path(tmp) / "bf16", show=False)
        int8, _ = evaluate(args.run_dir, out_dir=Path(tmp) / "int8", show=False, quantize="int8")
    rows = {}
    for name, b in base["subsets"].items():
        q = int8["subsets"][name]
        diff = q["spearman"] - b["spearman"]
        rows[name] = {"spearman": b["spearman"], "spearman_int8": q["spearman"], "diff": diff,
                      "mse": b["mse"], "mse_int8": q["mse"], "within": abs(diff) <= args.tolerance}
    report = {"run": str(args.run_dir), "tolerance": args.tolerance, "subsets": rows,
              "all_within": all(r["within"] for r in rows.values())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print("| subset | Spearman | int8 | difference | MSE | int8 MSE |\n|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['spearman']:.4f} | {r['spearman_int8']:.4f} | {r['diff']:+.4f} | {r['mse']:.2f} | "
              f"{r['mse_int8']:.2f} |")
    print(f"every subset within {args.tolerance}: {report['all_within']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
