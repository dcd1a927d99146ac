"""Writing results: a printed table, Markdown, CSV, JSON, per-sample predictions and plots.

Every file is written under a temporary name and renamed into place. The tables show R-l2 x 100
(results.json and results.csv hold it unscaled, key `rl2`) and the Spearman bootstrap interval
beside Spearman; results.json files from before those were added have neither, and their tables
show "-" for R-l2 and no interval.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from pathlib import Path

from matplotlib.figure import Figure
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from limssr import plots
from limssr.atomic import atomic_write_json, atomic_write_text, temp_sibling
from limssr.conformal import CALIBRATION_FILE, Calibration
from limssr.evaluation import Predictions, Results

RL2_SCALE = 100.0  # R-l2 is shown x 100 in the tables, as CoRe and FineDiving report it


def _rows(results: Results) -> list[dict]:
    """Table rows: the complete subset, each incomplete one, then the average over the incomplete."""
    ceiling = results.get("noise_ceiling")
    intervals = results.get("intervals", {}).get("subsets", {})
    rows = []
    for name, r in results["subsets"].items():
        iv = intervals.get(name, {})
        partial = r.get("n_exact", r["n"]) < r["n"]  # some samples lack a modality of the subset
        rows.append({"subset": "{" + ",".join(name) + "}" + ("*" if partial else ""), "key": name,
                     "spearman": r["spearman"],
                     **_ci(r), "mse": r["mse"], "rl2": r.get("rl2"),
                     "mse_train_mean": results["baseline_train_mean_mse"][name], "n": r["n"],
                     "interval_coverage": iv.get("coverage"), "interval_width": iv.get("width")})
    avg = results["average"]
    over = [intervals[n] for n in results["average_over"] if intervals.get(n, {}).get("coverage") is not None]
    rows.append({"subset": "Average (incomplete)", "key": "average", "spearman": avg["spearman"], **_ci(avg),
                 "mse": avg["mse"], "rl2": avg.get("rl2"),
                 "mse_train_mean": _mean([results["baseline_train_mean_mse"][n] for n in results["average_over"]]),
                 "n": avg["n"],
                 "interval_coverage": _mean([v["coverage"] for v in over]) if over else None,
                 "interval_width": _mean([v["width"] for v in over]) if over else None})
    for row in rows:
        row["noise_ceiling"] = ceiling
    return rows


def _ci(entry: dict) -> dict:
    ci = entry.get("spearman_ci")
    return {"spearman_lo": ci[0] if ci else None, "spearman_hi": ci[1] if ci else None}


def _spearman_cell(row: dict, digits: int = 3) -> str:
    """`0.7840 [0.712, 0.843]`: Spearman and its 95% bootstrap interval (none in older results)."""
    text = _fmt(row["spearman"], 4)
    if row.get("spearman_lo") is not None and row.get("spearman_hi") is not None:
        text += f" [{row['spearman_lo']:.{digits}f}, {row['spearman_hi']:.{digits}f}]"
    return text


def _rl2_cell(row: dict) -> str:
    return "-" if row.get("rl2") is None else _fmt(row["rl2"] * RL2_SCALE, 3)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt(x, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _title(results: Results) -> str:
    p = results.get("protocol", {})
    what = results.get("dataset", "data")
    if results.get("score_type") and results["score_type"] != "score":
        what += f" {results['score_type']}"
    method = results.get("method", "limssr")
    name = {"limssr": "LIMSSR", "mcmoe": "MCMoE", "momke": "MoMKE", "gcnet": "GCNet", "actionmae": "ActionMAE"}.get(
        method, method)
    return (f"{name} on {what} - trained with '{p.get('training_missingness', '?')}' "
            f"missingness, model: {p.get('selection', '?')}")


def _interval_header(results: Results) -> str | None:
    """`90% interval: coverage / width` when the results have calibrated intervals."""
    iv = results.get("intervals", {})
    return f"{100 * iv['target']:g}% interval cov. / width" if iv.get("subsets") else None


def _interval_cell(row: dict) -> str:
    if row.get("interval_coverage") is None:
        return "-"
    return f"{100 * row['interval_coverage']:.0f}% / {row['interval_width']:.1f}"


def markdown(results: Results) -> str:
    header = _interval_header(results)
    lines = [f"### {_title(results)}", "",
             "| Subset | Spearman [95% CI] | MSE | R-l2 x100 | MSE of train mean | n |" + (f" {header} |" if header else ""),
             "|---|---:|---:|---:|---:|---:|" + ("---:|" if header else "")]
    for r in _rows(results):
        lines.append(f"| {r['subset']} | {_spearman_cell(r)} | {_fmt(r['mse'], 2)} | {_rl2_cell(r)} | "
                     f"{_fmt(r['mse_train_mean'], 2)} | {r['n']} |" + (f" {_interval_cell(r)} |" if header else ""))
    lines.append("")
    lines.append(_footer(results))
    return "\n".join(lines) + "\n"


def _footer(results: Results) -> str:
    has_rl2 = any("rl2" in r for r in list(results["subsets"].values()) + [results["average"]])
    means = ", mean MSE and R-l2" if has_rl2 else " and mean MSE"
    parts = [f"Average: Fisher-z mean of Spearman{means} over the incomplete subsets; MSE in raw score units."]
    if has_rl2:
        span = results.get("rl2_range")
        parts.append("R-l2 x100: mean of (|label - score| / (max - min))^2, times 100; max and min of the test labels"
                     + (f" ({span[1]:.4g}, {span[0]:.4g})." if span else "."))
    partial = {n: r for n, r in results["subsets"].items() if r.get("n_exact", r["n"]) < r["n"]}
    if partial:
        parts.append("*: " + "; ".join(f"{r['n'] - r['n_exact']} of {r['n']} test samples lack a modality of "
                                       f"{{{','.join(n)}}} and are scored with the ones they have"
                                       for n, r in partial.items()) + ".")
    boot = results.get("bootstrap")
    if boot:
        parts.append(f"[lo, hi]: {100 * boot.get('level', 0.95):g}% percentile bootstrap over the test samples "
                     f"({boot.get('resamples')} resamples, seed {boot.get('seed')}); for the average, of the "
                     "Fisher-z mean, the samples drawn jointly for every subset.")
    iv = results.get("intervals", {})
    if iv.get("subsets"):
        parts.append(f"Intervals: split conformal, calibrated per pattern of shown modalities on the {iv['calibration_split']}"
                     f" (scale: {iv['scale']}); coverage = share of test labels inside, width in raw score units.")
    elif iv.get("why_none"):
        parts.append(f"No score intervals: {iv['why_none']}.")
    if results.get("noise_ceiling") is not None:
        parts.append(f"Noise ceiling (Spearman of the noise-free score with the label): "
                     f"{results['noise_ceiling']:.4f}.")
    return " ".join(parts)


def print_table(results: Results, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=escape(_title(results)), caption=escape(_footer(results)))
    header = _interval_header(results)
    for col, justify in [("Subset", "left"), ("Spearman [95% CI]", "right"), ("MSE", "right"),
                         ("R-l2 x100", "right"), ("MSE of train mean", "right"), ("n", "right")] + (
                            [(header, "right")] if header else []):
        table.add_column(col, justify=justify, no_wrap=col.startswith("Spearman"))
    for r in _rows(results):
        table.add_row(r["subset"], escape(_spearman_cell(r, 2)), _fmt(r["mse"], 2), _rl2_cell(r),
                      _fmt(r["mse_train_mean"], 2), str(r["n"]), *([_interval_cell(r)] if header else []),
                      end_section=r["key"] == results["complete_subset"])
    console.print(table)


def write_results(results: Results, preds: dict[str, Predictions], out_dir: Path,
                  calibration: Calibration | None = None) -> list[Path]:
    """results.json, results.md, results.csv, predictions.csv, results.png and the per-subset plots
    (scatter.png, residuals.png, calibration.png; see limssr.plots) in `out_dir`, plus curves.png when
    the run directory above it holds logs/metrics.csv, and with a calibration conformal.json and
    intervals.png (lo and hi in predictions.csv). Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / "results.json"
    atomic_write_json(path, results)
    written.append(path)
    path = out_dir / "results.md"
    atomic_write_text(path, markdown(results))
    written.append(path)

    buf = io.StringIO()
    rows = _rows(results)
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path = out_dir / "results.csv"
    atomic_write_text(path, buf.getvalue())
    written.append(path)

    buf = io.StringIO()
    writer = csv.writer(buf)
    heads = list(next(iter(preds.values())).heads) if preds else []
    bounds = calibration is not None
    writer.writerow(["subset", "name", "shown", "label", "score"] + heads + (["lo", "hi"] if bounds else []))
    for subset, p in preds.items():
        for i in range(len(p.names)):
            writer.writerow([subset, p.names[i], p.shown[i], f"{p.label[i]:.6g}", f"{p.score[i]:.6g}"]
                            + [f"{p.heads[h][i]:.6g}" for h in heads]
                            + ([_bound(p.lo[i]), _bound(p.hi[i])] if bounds else []))
    path = out_dir / "predictions.csv"
    atomic_write_text(path, buf.getvalue())
    written.append(path)
    if bounds:
        path = out_dir / CALIBRATION_FILE
        atomic_write_text(path, json.dumps(calibration.to_dict(), indent=1) + "\n")
        written.append(path)
        written.append(plots.plot_intervals(results, out_dir / plots.INTERVALS, _title(results)))
    written.append(plot_results(results, out_dir / "results.png"))
    written += plots.plot_predictions(plots.from_predictions(preds), out_dir, _title(results))
    log = out_dir.parent / plots.METRICS_FILE
    if log.is_file():
        try:  # a damaged training log costs the curves only, never the evaluation
            written.append(plots.plot_curves(plots.read_curves(log), out_dir / plots.CURVES, _title(results)))
        except (ValueError, OSError) as err:  # plots.PlotError is a ValueError
            warnings.warn(f"training curves not plotted: {err}", stacklevel=2)
    return written


def _bound(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def plot_results(results: Results, path: Path) -> Path:
    """Spearman and MSE per subset, with the noise ceiling and the train-mean MSE for scale."""
    names = list(results["subsets"])
    rho = [results["subsets"][n]["spearman"] for n in names]
    err = [results["subsets"][n]["mse"] for n in names]
    base = [results["baseline_train_mean_mse"][n] for n in names]
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(names, rho, color="#3b7dd8")
    if results.get("noise_ceiling") is not None:
        ax1.axhline(results["noise_ceiling"], color="k", ls="--", lw=1, label="noise ceiling")
        ax1.legend(loc="lower right", fontsize=8)
    ax1.set_ylim(min(0.0, min(rho) - 0.05), 1.0)
    ax1.set_ylabel("Spearman")
    ax1.set_title("Rank correlation per subset")
    ax2.bar(names, err, color="#d8833b", label="model")
    ax2.plot(names, base, "k_", ms=18, mew=2, label="train mean")
    ax2.set_ylabel("MSE (raw score units)")
    ax2.set_title("Error per subset")
    ax2.legend(fontsize=8)
    fig.suptitle(_title(results), fontsize=9)
    fig.tight_layout()
    tmp = temp_sibling(path, ".png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def print_check(report, console: Console | None = None) -> None:
    """The `limssr data check` report: statistics per group, then every problem."""
    console = console or Console()
    console.print(f"[bold]{report.path}[/bold]: layout {report.layout}")
    for group, st in report.stats.items():
        table = Table(title=f"{group}: " + ", ".join(f"{k} {v}" for k, v in st["splits"].items()))
        for col in ("modality", "dim", "T min", "T median", "T max"):
            table.add_column(col, justify="left" if col == "modality" else "right")
        for m, t in st["T"].items():
            table.add_row(m, str(st["dims"].get(m, "-")), str(t["min"]), f"{t['median']:g}", str(t["max"]))
        console.print(table)
        for key, r in st["scores"].items():
            console.print(f"  {key}: min {r['min']:.2f}, max {r['max']:.2f}, mean {r['mean']:.2f}")
        if st.get("missing"):
            console.print("  samples without a modality: " + ", ".join(f"{m} {n}" for m, n in st["missing"].items()))
    for note in report.notes:
        console.print(f"  note: {note}", markup=False, highlight=False, style="yellow")
    if report.ok:
        console.print("[green]no problems found[/green]")
        return
    console.print(f"[red]{len(report.problems)} problem(s):[/red]")
    for p in report.problems:
        console.print(f"  - {p}", markup=False, highlight=False)
