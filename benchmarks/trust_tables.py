"""The measured part of docs/trust.md, from the runs of benchmarks/trust.sh.

    python benchmarks/trust_tables.py OUT [--doc docs/trust.md] [--json FILE]

OUT is a `limssr benchmark` tree (OUT/METHOD/REGIME/seed-N). Two tables:
1. conformal intervals: per subset, test coverage (mean and standard deviation over the seeds) and
   mean width, for every method with calibrated evaluations (each seed's newest eval*/results.json);
2. the hallucination measures of `limssr trust` (seed-1/trust*/trust.json, the newest) for LIMSSR
   and its ablations.
With --doc, everything after the heading "## Measured on the built-in data" is replaced.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

HEADING = "## Measured on the built-in data"
NAMES = {"limssr": "LIMSSR", "limssr-no-pcmi": "LIMSSR without PCMI", "limssr-no-path2": "LIMSSR without Path 2",
         "zero-fill": "zero-fill", "late-fusion": "late fusion", "gcnet": "GCNet", "mcmoe": "MCMoE", "momke": "MoMKE",
         "actionmae": "ActionMAE"}


def _newest(run: Path, prefix: str, file: str) -> Path | None:
    found = []
    for d in run.glob(f"{prefix}*"):
        m = re.fullmatch(rf"{prefix}(?:-(\d+))?", d.name)
        if m and (d / file).is_file():
            found.append((int(m.group(1) or 1), d / file))
    return max(found)[1] if found else None


def _subset(name: str) -> str:
    return "{" + ",".join(name) + "}" if name != "average" else "Average (incomplete)"


def coverage_table(root: Path, regime: str) -> tuple[str, dict]:
    data: dict[str, dict] = {}
    for method_dir in sorted(p for p in root.iterdir() if (p / regime).is_dir()):
        per_seed = []
        for seed in sorted((method_dir / regime).glob("seed-*")):
            path = _newest(seed, "eval", "results.json")
            if path is None:
                continue
            res = json.loads(path.read_text())
            iv = res.get("intervals", {})
            if not iv.get("subsets"):
                continue
            rows = {n: (v["coverage"], v["width"]) for n, v in iv["subsets"].items() if v["coverage"] is not None}
            over = [rows[n] for n in res["average_over"] if n in rows]
            rows["average"] = (float(np.mean([c for c, _ in over])), float(np.mean([w for _, w in over])))
            per_seed.append({"seed": seed.name, "rows": rows, "target": iv["target"],
                             "split": iv["calibration_split"]})
        if per_seed:
            data[method_dir.name] = per_seed
    if not data:
        return "", {}
    methods = list(data)
    subsets = list(data[methods[0]][0]["rows"])
    target = data[methods[0]][0]["target"]
    lines = [f"Test coverage of the {100 * target:g}% intervals (mean +- sd over seeds) / mean width in score "
             "units, per subset:", "",
             "| Subset | " + " | ".join(f"{NAMES.get(m, m)} ({len(data[m])} seed{'s' * (len(data[m]) > 1)})"
                                        for m in methods) + " |",
             "|---|" + "---:|" * len(methods)]
    summary: dict = {"target": target, "methods": {}}
    for name in subsets:
        cells = []
        for m in methods:
            cov = [s["rows"][name][0] for s in data[m] if name in s["rows"]]
            wid = [s["rows"][name][1] for s in data[m] if name in s["rows"]]
            summary["methods"].setdefault(m, {})[name] = {"coverage": cov, "width": wid}
            spread = f" +- {100 * np.std(cov):.1f}" if len(cov) > 1 else ""
            cells.append(f"{100 * np.mean(cov):.1f}{spread} / {np.mean(wid):.1f}" if cov else "-")
        lines.append(f"| {_subset(name)} | " + " | ".join(cells) + " |")
    worst = {m: max(abs(np.mean(v["coverage"]) - target) for n, v in summary["methods"][m].items() if v["coverage"])
             for m in methods}
    summary["largest_gap"] = worst
    lines += ["", "Largest gap between a subset's mean coverage and the target: "
              + ", ".join(f"{NAMES.get(m, m)} {100 * g:.1f} points" for m, g in worst.items()) + "."]
    lines.append(f"Calibration split: {data[methods[0]][0]['split']}.")
    return "\n".join(lines) + "\n", summary


def trust_table(root: Path, regime: str, variants: list[str]) -> tuple[str, dict]:
    reports = {}
    for m in variants:
        path = _newest(root / m / regime / "seed-1", "trust", "trust.json")
        if path is not None:
            reports[m] = json.loads(path.read_text())
    if not reports:
        return "", {}
    names = list(reports)
    subsets = list(next(iter(reports.values()))["score_shift"])
    lines = ["Score shift from the complete-input score (seed 1, 100 test samples): mean shift / Spearman(shift, "
             "abs error) / extra abs error:", "",
             "| Subset | " + " | ".join(NAMES.get(m, m) for m in names) + " |", "|---|" + "---:|" * len(names)]
    for s in subsets:
        cells = []
        for m in names:
            r = reports[m]["score_shift"].get(s, {})
            cells.append(f"{r['shift']['mean']:.2f} / {r['shift_error_spearman']:+.2f} / {r['extra_abs_error']:+.2f}"
                         if "shift" in r else "-")
        lines.append(f"| {_subset(s)} | " + " | ".join(cells) + " |")
    lines += ["", "Heads' disagreement against absolute error (Spearman over the test samples, per subset; LIMSSR "
              "variants with both heads):", "",
              "| Subset | " + " | ".join(NAMES.get(m, m) for m in names) + " |", "|---|" + "---:|" * len(names)]
    for s in ["vaf", *subsets]:
        cells = []
        for m in names:
            d = reports[m]["confidence"]["disagreement"].get(s)
            cells.append(f"{d['spearman_with_abs_error']:+.2f} (mean {d['mean']:.1f})" if d else "-")
        lines.append(f"| {_subset(s)} | " + " | ".join(cells) + " |")
    fid = {m: r["fidelity"] for m, r in reports.items() if r.get("fidelity") and "modalities" in r["fidelity"]}
    if fid:
        mods = list(next(iter(fid.values()))["modalities"])
        lines += ["", "Imputation fidelity, last layer: fidelity / shuffled control / gap (and the largest gap, at "
                  "its layer):", "",
                  "| Modality hidden | " + " | ".join(NAMES.get(m, m) for m in fid) + " |", "|---|" + "---:|" * len(fid)]
        for mod in mods:
            cells = []
            for m in fid:
                r = fid[m]["modalities"][mod]
                k = r["best_layer"]
                cells.append(f"{r['fidelity'][-1]:.3f} / {r['control'][-1]:.3f} / {r['last_layer_gap']:+.3f} "
                             f"(max {r['gap'][k]:+.3f} at {k})")
            lines.append(f"| {mod} | " + " | ".join(cells) + " |")
    conf = {m: r["confidence"]["path2_confidence"] for m, r in reports.items() if r["confidence"].get("path2_confidence")}
    if conf:
        lines += ["", "Path 2's confidence of a missing modality (sigmoid(lambda_m); its initial value is "
                  "sigmoid(model.confidence_init)) / mean absolute error of the subsets that miss it:", "",
                  "| Modality | " + " | ".join(NAMES.get(m, m) for m in conf) + " |", "|---|" + "---:|" * len(conf)]
        for mod in next(iter(conf.values())):
            lines.append(f"| {mod} | " + " | ".join(
                f"{c[mod]['confidence_when_missing']:.3f} / {c[mod]['mean_abs_error_of_subsets_missing_it']:.2f}"
                for c in conf.values()) + " |")
    return "\n".join(lines) + "\n", {m: {k: r[k] for k in ("score_shift", "confidence", "fidelity")}
                                     for m, r in reports.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--regime", default="strict")
    ap.add_argument("--doc", type=Path, help="replace the measured section of this Markdown file")
    ap.add_argument("--json", type=Path, help="write the numbers behind the tables here")
    ap.add_argument("--preface", default="", help="text put before the tables (commands, commit)")
    args = ap.parse_args(argv)
    cov, cov_data = coverage_table(args.root, args.regime)
    tru, tru_data = trust_table(args.root, args.regime, ["limssr", "limssr-no-pcmi", "limssr-no-path2", "zero-fill"])
    if not cov and not tru:
        print(f"error: no calibrated evaluations or trust reports under {args.root}/*/{args.regime}/", file=sys.stderr)
        return 2
    body = "\n".join(x.rstrip("\n") + "\n" for x in (args.preface, cov, tru) if x)
    if args.doc:
        text = args.doc.read_text(encoding="utf-8")
        if HEADING not in text:
            print(f"error: {args.doc} has no heading '{HEADING}'", file=sys.stderr)
            return 2
        args.doc.write_text(text.split(HEADING)[0] + HEADING + "\n\n" + body, encoding="utf-8")
    else:
        print(body)
    if args.json:
        args.json.write_text(json.dumps({"intervals": cov_data, "trust": tru_data}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
