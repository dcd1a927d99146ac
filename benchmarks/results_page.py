"""The tables of docs/results.md, from the evidence runs.

    python benchmarks/results_page.py benchmarks/evidence --out /tmp/tables   # tables.md + tables.json

Reads the trees that benchmarks/evidence.sh fills (a runs root, or its archive in
benchmarks/evidence/ after `archive_runs.py unpack` has refilled third-party labels):

    fisv-vst/{tes,pcs}/<method>/complete/seed-N    Fis-V Video Swin features, video only
    fisv-vst/ridge-{tes,pcs}.json                   the ridge probe on the same split
    fisv-vst/factors-tes/<row>/limssr/complete/seed-N   LIMSSR factors on Fis-V TES
    results/<method>/<regime>/seed-N                the built-in (additive) benchmark
    interaction/<method>/<regime>/seed-N            the built-in interaction benchmark
    factors/<row>/seed-N                            LIMSSR factors on the built-in data (base row:
                                                    results/limssr/strict)

Every figure is a mean over seeds of the headline metric: the Fisher-z average of Spearman over the
incomplete subsets (the single subset where there is only one modality) and the mean MSE. Paired
differences are LIMSSR's reference row minus the other row on the same test samples, with a 95%
percentile bootstrap interval over test samples (`limssr.paired`); "ahead"/"behind" mean the
whole interval lies on one side of 0. CPU hours are per run (training, from timing.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from limssr.aggregate import latest_results
from limssr.atomic import atomic_write_text
from limssr.paired import paired_differences, seed_runs

# Published video-only figures of GDLT (CVPR 2022) on the same Fis-V features, Spearman.
GDLT_PUBLISHED = {"TES": 0.685, "PCS": 0.820}
FACTOR_ROWS = {  # row name -> what it changes from the base recipe
    "base": "default recipe: SmolLM2-135M pretrained, K = 4, 8 epochs (strict T-Miss on built-in data)",
    "random-init": "same architecture, randomly initialised",
    "tiny": "tiny random backbone (4 layers, hidden 256)",
    "gemma-3-270m": "Gemma-3-270M pretrained",
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B pretrained",
    "epochs-4": "4 epochs", "epochs-16": "16 epochs",
    "per-batch": "per-batch training masks (not strict)",
    "k2": "K = 2 fusion tokens", "k3": "K = 3 (the paper's best)", "k8": "K = 8",
    "no-shared-prompt": "every prompt computed per sample (reference LoRA-dropout draws)",
    "interaction-base": "interaction data, default recipe",
    "interaction-random-init": "interaction data, random initialisation",
}


def headline(results: dict) -> tuple[float, float]:
    """(Spearman, MSE) a run is ranked by: its average over incomplete subsets, or its only subset."""
    if results.get("average_over"):
        return results["average"]["spearman"], results["average"]["mse"]
    (only,) = results["subsets"].values()
    return only["spearman"], only["mse"]


def _timing(run: Path) -> tuple[float, float]:
    path = run / "timing.json"
    if not path.is_file():
        return float("nan"), float("nan")
    t = json.loads(path.read_text())
    return t["cpu_seconds"] / 3600, t["wall_seconds"] / 3600


def summarise(root: Path) -> dict | None:
    """Seeds, mean/std of the headline metrics and CPU hours of the seed-* runs under `root`."""
    found = seed_runs(root)
    if not found:
        return None
    results = [latest_results(d) for d in found]
    heads = np.array([headline(r) for r in results])
    times = np.array([_timing(d) for d in found])
    std = heads.std(0, ddof=1) if len(found) > 1 else np.zeros(2)
    return {"dir": str(root), "seeds": [r.get("seed") for r in results],
            "spearman": float(heads[:, 0].mean()), "spearman_std": float(std[0]),
            "mse": float(heads[:, 1].mean()), "mse_std": float(std[1]),
            "cpu_hours": float(np.nanmean(times[:, 0])), "wall_hours": float(np.nanmean(times[:, 1]))}


def paired(ref_root: Path, other_root: Path) -> dict | None:
    """LIMSSR's reference runs minus the other runs, on the headline metric, or None if unpaired."""
    ref, other = seed_runs(ref_root), seed_runs(other_root)
    if not ref or not other:
        return None
    try:
        p = paired_differences(ref, other)
    except ValueError as exc:
        return {"error": str(exc)}
    e = p["average"] if p["average"] is not None else next(iter(p["subsets"].values()))
    return {"seeds": p["seeds"], **{k: e[k] for k in ("spearman_diff", "spearman_lo", "spearman_hi",
                                                      "mse_diff", "mse_lo", "mse_hi")},
            "ahead": e["ahead"], "behind": e["behind"], "counts": p["counts"]}


def verdict(p: dict | None) -> str:
    if not p or "error" in p:
        return "-"
    if p["ahead"]["spearman"]:
        return "LIMSSR ahead"
    if p["behind"]["spearman"]:
        return "LIMSSR behind"
    return "within noise"


def _f(x: float, digits: int) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def _pm(s: dict | None, metric: str, digits: int) -> str:
    if s is None:
        return "-"
    return f"{s[metric]:.{digits}f} +- {s[metric + '_std']:.{digits}f}"


def _diff(p: dict | None, metric: str, digits: int) -> str:
    if not p:
        return "-"
    if "error" in p:
        return "unpaired"
    return f"{p[metric + '_diff']:+.{digits}f} [{p[metric + '_lo']:+.{digits}f}, {p[metric + '_hi']:+.{digits}f}]"


def method_rows(tree: Path, ref: tuple[str, str]) -> list[dict]:
    """Every <method>/<regime> of a benchmark tree, with its paired difference to the reference."""
    rows = []
    ref_dir = tree / ref[0] / ref[1]
    for regime_dir in sorted(tree.glob("*/*")):
        s = summarise(regime_dir) if regime_dir.is_dir() else None
        if s is None:
            continue
        method, regime = regime_dir.parent.name, regime_dir.name
        is_ref = (method, regime) == ref
        rows.append({"method": method, "regime": regime, **s, "reference": is_ref,
                     "paired": None if is_ref else paired(ref_dir, regime_dir)})
    rows.sort(key=lambda r: (not r["method"].startswith("limssr"), r["method"] != ref[0], r["method"], r["regime"]))
    return rows


def methods_table(rows: list[dict], extra: list[tuple[str, float | None, float | None]] = ()) -> str:
    lines = ["| Method | Regime | Seeds | Spearman | MSE | LIMSSR minus row: Spearman [95% CI] | MSE [95% CI] "
             "| Verdict | Subsets ahead / behind (Spearman) | CPU h / run |",
             "|---|---|:-:|---:|---:|---:|---:|---|:-:|---:|"]
    for r in rows:
        p = r["paired"]
        # counted over the incomplete subsets; data of one modality has none (its headline is the one subset)
        counts = "-" if not p or "error" in p or not p["counts"]["spearman"]["of"] else \
            f"{p['counts']['spearman']['ahead']} / {p['counts']['spearman']['behind']} of {p['counts']['spearman']['of']}"
        lines.append(f"| {r['method']} | {r['regime']} | {len(r['seeds'])} | {_pm(r, 'spearman', 3)} | "
                     f"{_pm(r, 'mse', 1)} | {_diff(p, 'spearman', 3)} | {_diff(p, 'mse', 1)} | "
                     f"{'reference' if r['reference'] else verdict(p)} | {counts} | {_f(r['cpu_hours'], 2)} |")
    for name, sp, mse in extra:
        lines.append(f"| {name} | - | - | {_f(sp, 3)} | {_f(mse, 1)} | - | - | - | - | - |")
    return "\n".join(lines) + "\n"


def _runs_dir(row_dir: Path) -> Path:
    """A factor row's seed-* directory: OUT/<row> (limssr train --seeds) or a benchmark's tree."""
    return row_dir / "limssr" / "complete" if (row_dir / "limssr").is_dir() else row_dir


def factor_rows(tree: Path, base_dir: Path | None = None, interaction_base: Path | None = None) -> list[dict]:
    """Every row under `tree` against its base row: `tree`/base, or `base_dir` when given; rows named
    interaction-* against `interaction_base` (LIMSSR of the interaction benchmark), shown as the
    row interaction-base."""
    found = {p.name: _runs_dir(p) for p in sorted(tree.iterdir()) if p.is_dir()} if tree.is_dir() else {}
    if found and base_dir is not None:
        found = {"base": base_dir, **found}
    if found and interaction_base is not None:
        found["interaction-base"] = interaction_base
    rows = []
    for name, runs_dir in found.items():
        s = summarise(runs_dir)
        if s is None:
            continue
        base = found.get("interaction-base" if name.startswith("interaction-") else "base")
        # the row minus its base: positive Spearman favours the row
        p = None if name in ("base", "interaction-base") or base is None else paired(runs_dir, base)
        rows.append({"row": name, "change": FACTOR_ROWS.get(name, name), **s, "paired": p})
    order = list(FACTOR_ROWS)
    rows.sort(key=lambda r: (order.index(r["row"]) if r["row"] in order else len(order), r["row"]))
    return rows


def factors_table(rows: list[dict]) -> str:
    lines = ["| Row | Change from the base recipe | Seeds | Spearman | MSE | Row minus base: Spearman [95% CI] "
             "| MSE [95% CI] | CPU h / run |", "|---|---|:-:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['change']} | {len(r['seeds'])} | {_pm(r, 'spearman', 3)} | "
                     f"{_pm(r, 'mse', 1)} | {_diff(r['paired'], 'spearman', 3)} | {_diff(r['paired'], 'mse', 1)} | "
                     f"{_f(r['cpu_hours'], 2)} |")
    return "\n".join(lines) + "\n"


def headline_rows(sections: dict[str, list[dict]], ref: dict[str, tuple[str, str]]) -> list[dict]:
    """Per benchmark: LIMSSR against the strongest baseline (highest mean Spearman, not an ablation)."""
    out = []
    for name, rows in sections.items():
        limssr = next((r for r in rows if (r["method"], r["regime"]) == ref[name]), None)
        others = [r for r in rows if not r["method"].startswith("limssr")]
        if limssr is None or not others:
            continue
        best = max(others, key=lambda r: r["spearman"])
        out.append({"benchmark": name, "limssr": limssr, "strongest": best, "verdict": verdict(best["paired"])})
    return out


def headline_table(rows: list[dict]) -> str:
    lines = ["| Benchmark | LIMSSR Spearman | Strongest baseline | its Spearman | LIMSSR minus it [95% CI] "
             "| MSE: LIMSSR / it | Verdict |", "|---|---:|---|---:|---:|---:|---|"]
    for h in rows:
        l, b = h["limssr"], h["strongest"]
        lines.append(f"| {h['benchmark']} | {_pm(l, 'spearman', 3)} | {b['method']} ({b['regime']}) | "
                     f"{_pm(b, 'spearman', 3)} | {_diff(b['paired'], 'spearman', 3)} | "
                     f"{l['mse']:.1f} / {b['mse']:.1f} | {h['verdict']} |")
    return "\n".join(lines) + "\n"


def build(root: Path) -> tuple[str, dict]:
    sections, refs, md, data = {}, {}, [], {}
    for key, title, tree, ref in (
            ("fisv-tes", "Fis-V TES (video only)", root / "fisv-vst" / "tes", ("limssr", "complete")),
            ("fisv-pcs", "Fis-V PCS (video only)", root / "fisv-vst" / "pcs", ("limssr", "complete")),
            ("builtin", "Built-in data (additive score), T-Miss", root / "results", ("limssr", "strict")),
            ("interaction", "Built-in interaction data, T-Miss", root / "interaction", ("limssr", "strict"))):
        if not tree.is_dir():
            continue
        rows = method_rows(tree, ref)
        if not rows:
            continue
        sections[title], refs[title] = rows, ref
        extra = []
        if key.startswith("fisv"):
            t = key.split("-")[1]
            ridge = root / "fisv-vst" / f"ridge-{t}.json"
            if ridge.is_file():
                r = json.loads(ridge.read_text())
                extra.append(("ridge probe (time-averaged features)", r["test_spearman"], r["test_mse"]))
            extra.append(("GDLT, published", GDLT_PUBLISHED[t.upper()], None))
        md += [f"### {title}", "", methods_table(rows, extra)]
        data[key] = {"rows": rows, "extra": extra}
    head = headline_rows(sections, refs)
    if head:
        md = ["### Headline: LIMSSR against the strongest baseline", "", headline_table(head)] + md
        data["headline"] = head
    for key, title, tree, base, interaction in (
            ("factors", "What LIMSSR depends on: built-in data", root / "factors",
             root / "results" / "limssr" / "strict", root / "interaction" / "limssr" / "strict"),
            ("factors-fisv", "What LIMSSR depends on: Fis-V TES", root / "fisv-vst" / "factors-tes",
             root / "fisv-vst" / "tes" / "limssr" / "complete", None)):
        rows = factor_rows(tree, base, interaction)
        if rows:
            md += [f"### {title}", "", factors_table(rows)]
            data[key] = rows
    return "\n".join(md), data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="the runs root (or an unpacked archive)")
    ap.add_argument("--out", type=Path, help="directory for tables.md and tables.json (default: print only)")
    args = ap.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: '{args.root}' is not a directory", file=sys.stderr)
        return 2
    md, data = build(args.root)
    if not md:
        print(f"error: no finished runs under '{args.root}'", file=sys.stderr)
        return 2
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "tables.md", md + "\n")
        atomic_write_text(args.out / "tables.json", json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
