"""Plots of one evaluation and of its run's training, from the files a run directory holds.

    scatter.png       predicted against true score, one panel per subset, identity line, Spearman
    residuals.png     residual (prediction - label) against the label per subset, zero line and the
                      fitted slope (a negative slope: predictions pulled towards the mean)
    calibration.png   mean prediction against mean label in label-quantile bins, every subset on
                      one axes, identity line
    intervals.png     conformal intervals per subset: test coverage against the target, mean width
                      (only when the evaluation was calibrated; see limssr.conformal)
    curves.png        training loss per epoch, and validation Spearman / MSE per epoch when the run
                      validated (from logs/metrics.csv, Lightning's CSV logger)

Inputs: EVAL_DIR/predictions.csv (columns subset, name, shown, label, score, then the method's
heads; rows with an empty label, as archived third-party runs have, are left out) and
RUN_DIR/logs/metrics.csv. `plot_run` writes all four; `report.write_results` writes the first three
(and the curves when the log is there) into every new evaluation directory.

Matplotlib's object API only (Figure, savefig): importing this module leaves the process's
backend alone. A missing or malformed input file is a PlotError naming the file, one of the CLI's
user errors: `limssr plot` prints it as one line and exits 2.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from limssr.atomic import temp_sibling
from limssr.metrics import spearman

PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = Path("logs") / "metrics.csv"
SCATTER, RESIDUALS, CALIBRATION, CURVES = "scatter.png", "residuals.png", "calibration.png", "curves.png"
INTERVALS = "intervals.png"
SHIFT, FIDELITY = "shift.png", "fidelity.png"  # `limssr trust` (limssr.trust)
DPI = 80  # small files: a 7-panel figure is well under 150 KB
CALIBRATION_BINS = 5
_EVAL_DIR = re.compile(r"^eval(?:-(\d+))?$")

# subset -> (labels, predictions), raw score units
SubsetArrays = dict[str, tuple[np.ndarray, np.ndarray]]


class PlotError(ValueError):
    """A run directory, predictions.csv or training log cannot be plotted; the message names the file."""


# ------------------------------------------------------------------------------------------- inputs


def read_predictions(path: str | Path) -> SubsetArrays:
    """Per subset, (labels, predictions) of the labelled rows of a predictions.csv, in file order."""
    path = Path(path)
    if not path.is_file():
        raise PlotError(f"'{path}' is missing: no per-sample predictions to plot (run `limssr evaluate` first)")
    rows: dict[str, tuple[list[float], list[float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("subset", "label", "score") if c not in (reader.fieldnames or [])]
            if missing:
                raise PlotError(f"'{path}' is not a limssr predictions file: no column {', '.join(missing)} "
                             f"(header: {','.join(reader.fieldnames or []) or 'empty'})")
            for line, row in enumerate(reader, start=2):
                label, score = (row.get("label") or "").strip(), (row.get("score") or "").strip()
                if not label:
                    continue
                try:
                    y, p = float(label), float(score)
                except ValueError:
                    raise PlotError(f"'{path}' line {line}: label {label!r} / score {score!r} is not a number") from None
                if not (math.isfinite(y) and math.isfinite(p)):
                    raise PlotError(f"'{path}' line {line}: label {label!r} / score {score!r} is not finite")
                ys, ps = rows.setdefault(row["subset"] or "?", ([], []))
                ys.append(y)
                ps.append(p)
    except UnicodeDecodeError:
        raise PlotError(f"'{path}' is not UTF-8 text") from None
    except csv.Error as err:
        raise PlotError(f"'{path}' is not a readable CSV file ({err})") from None
    if not rows:
        raise PlotError(f"'{path}' holds no labelled predictions (archived runs of third-party data have their "
                     "labels blanked; refill them with `benchmarks/archive_runs.py unpack --labels`)")
    return {k: (np.asarray(ys), np.asarray(ps)) for k, (ys, ps) in rows.items()}


def from_predictions(preds: dict) -> SubsetArrays:
    """The same arrays from evaluation.Predictions objects (as report.write_results holds them)."""
    out = {}
    for name, p in preds.items():
        y, s = np.asarray(p.label, dtype=float), np.asarray(p.score, dtype=float)
        keep = np.isfinite(y) & np.isfinite(s)
        if keep.any():
            out[name] = (y[keep], s[keep])
    return out


def read_curves(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-epoch curves of a Lightning CSV log: 'train loss' (loss_epoch, else the mean of loss_step
    per epoch), 'val Spearman' and 'val MSE' when logged; (epochs, values), the last row of an
    epoch winning (a resumed run repeats epochs). Non-finite values are left out."""
    path = Path(path)
    if not path.is_file():
        raise PlotError(f"'{path}' is missing: no training log to plot")
    per: dict[str, dict[int, list[float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if "epoch" not in (reader.fieldnames or []):
                raise PlotError(f"'{path}' is not a training log: no 'epoch' column "
                             f"(header: {','.join(reader.fieldnames or []) or 'empty'})")
            for line, row in enumerate(reader, start=2):
                try:
                    epoch = int(float(row["epoch"]))
                except (TypeError, ValueError):
                    raise PlotError(f"'{path}' line {line}: epoch {row.get('epoch')!r} is not a number") from None
                for col, key in (("loss_epoch", "loss_epoch"), ("loss_step", "loss_step"),
                                 ("val/spearman", "val Spearman"), ("val/mse", "val MSE")):
                    text = (row.get(col) or "").strip()
                    if not text:
                        continue
                    try:
                        value = float(text)
                    except ValueError:
                        raise PlotError(f"'{path}' line {line}: {col} {text!r} is not a number") from None
                    if math.isfinite(value):
                        per.setdefault(key, {}).setdefault(epoch, []).append(value)
    except UnicodeDecodeError:
        raise PlotError(f"'{path}' is not UTF-8 text") from None
    except csv.Error as err:
        raise PlotError(f"'{path}' is not a readable CSV file ({err})") from None
    curves = {}
    if "loss_epoch" in per:
        curves["train loss"] = {e: v[-1] for e, v in per["loss_epoch"].items()}
    elif "loss_step" in per:
        curves["train loss"] = {e: float(np.mean(v)) for e, v in per["loss_step"].items()}
    for key in ("val Spearman", "val MSE"):
        if key in per:
            curves[key] = {e: v[-1] for e, v in per[key].items()}
    if not curves:
        raise PlotError(f"'{path}' holds no loss or validation values to plot")
    return {k: (np.array(sorted(c)), np.array([c[e] for e in sorted(c)])) for k, c in curves.items()}


# ---------------------------------------------------------------------------------------- figures


def _label(subset: str) -> str:
    return "{" + ",".join(subset) + "}" if subset.isalpha() and subset.islower() else subset


def _grid(n: int) -> tuple[Figure, list]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.0 * cols, 2.9 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, path: Path, title: str | None) -> Path:
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = temp_sibling(path, ".png")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _limits(data: SubsetArrays) -> tuple[float, float]:
    values = np.concatenate([np.r_[y, p] for y, p in data.values()])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.04 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def plot_scatter(data: SubsetArrays, path: str | Path, title: str | None = None) -> Path:
    """Predicted against true score per subset, with the identity line and the subset's Spearman."""
    fig, axes = _grid(len(data))
    lo, hi = _limits(data)
    for ax, (name, (y, p)) in zip(axes, data.items()):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
        ax.scatter(y, p, s=10, alpha=0.7, color="#3b7dd8", edgecolors="none")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{_label(name)}  Spearman {spearman(p, y):.3f}  (n={len(y)})", fontsize=8)
        ax.set_xlabel("true score", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.tick_params(labelsize=7)
    return _save(fig, path, title)


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def plot_residuals(data: SubsetArrays, path: str | Path, title: str | None = None) -> Path:
    """Residual (prediction - label) against the label per subset, with the zero line and the
    least-squares slope (negative: regression to the mean)."""
    fig, axes = _grid(len(data))
    res_all = np.concatenate([p - y for y, p in data.values()])
    bound = float(np.abs(res_all).max()) * 1.08 or 1.0
    for ax, (name, (y, p)) in zip(axes, data.items()):
        r = p - y
        ax.axhline(0.0, color="0.5", lw=1, ls="--")
        ax.scatter(y, r, s=10, alpha=0.7, color="#d8833b", edgecolors="none")
        fit = _slope(y, r)
        text = ""
        if fit is not None:
            xs = np.array([y.min(), y.max()])
            ax.plot(xs, fit[0] * xs + fit[1], color="k", lw=1.2)
            text = f"  slope {fit[0]:+.2f}"
        ax.set_ylim(-bound, bound)
        ax.set_title(f"{_label(name)}{text}", fontsize=8)
        ax.set_xlabel("true score", fontsize=8)
        ax.set_ylabel("prediction - true", fontsize=8)
        ax.tick_params(labelsize=7)
    return _save(fig, path, title)


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(mean label, mean prediction) in `bins` label-quantile bins of (nearly) equal counts."""
    order = np.argsort(y, kind="stable")
    parts = [part for part in np.array_split(order, min(bins, len(y))) if len(part)]
    return np.array([y[i].mean() for i in parts]), np.array([p[i].mean() for i in parts])


def plot_calibration(data: SubsetArrays, path: str | Path, title: str | None = None,
                     bins: int = CALIBRATION_BINS) -> Path:
    """Mean prediction per label-quantile bin against the bin's mean label, every subset on one axes."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    lo, hi = _limits(data)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="identity")
    for name, (y, p) in data.items():
        my, mp = calibration_bins(y, p, bins)
        ax.plot(my, mp, marker="o", ms=4, lw=1.2, label=_label(name))
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"mean true score ({bins} label-quantile bins)", fontsize=8)
    ax.set_ylabel("mean prediction", fontsize=8)
    ax.set_title("Calibration by label bin", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _save(fig, path, title)


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                title: str | None = None) -> Path:
    """One panel per curve of `read_curves`: training loss, and validation Spearman / MSE if logged."""
    names = [k for k in ("train loss", "val Spearman", "val MSE") if k in curves]
    fig = Figure(figsize=(3.4 * len(names), 3.0))
    axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False)).ravel()
    colours = {"train loss": "#3b7dd8", "val Spearman": "#2a9d5b", "val MSE": "#d8833b"}
    for ax, name in zip(axes, names):
        epochs, values = curves[name]
        ax.plot(epochs, values, marker="o", ms=3, lw=1.2, color=colours[name])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(name + (" (raw score units)" if name == "val MSE" else ""), fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    if "val Spearman" not in curves and "val MSE" not in curves:
        axes[0].set_title("train loss (no validation in this run)", fontsize=9)
    return _save(fig, path, title)


def plot_intervals(results: dict, path: str | Path, title: str | None = None) -> Path:
    """Conformal intervals per subset (results["intervals"]): test coverage with the target line, and
    the mean interval width in raw score units. A subset without intervals is left blank."""
    iv = results["intervals"]
    names = list(iv["subsets"])
    cov = [np.nan if iv["subsets"][n]["coverage"] is None else 100 * iv["subsets"][n]["coverage"] for n in names]
    width = [np.nan if iv["subsets"][n]["width"] is None else iv["subsets"][n]["width"] for n in names]
    labels = [_label(n) for n in names]
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(labels, cov, color="#3b7dd8")
    ax1.axhline(100 * iv["target"], color="k", ls="--", lw=1, label=f"target {100 * iv['target']:g}%")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("test coverage (%)", fontsize=8)
    ax1.legend(loc="lower right", fontsize=7)
    ax2.bar(labels, width, color="#d8833b")
    ax2.set_ylabel("mean width (score units)", fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
    return _save(fig, Path(path), title)


def plot_shift(report: dict, path: str | Path, title: str | None = None) -> Path:
    """Score shift from the complete-input score per subset (mean bar, median and 90th percentile
    marks), and the Spearman of the shift with the subset's absolute error."""
    rows = {n: r for n, r in report["score_shift"].items() if "shift" in r}
    labels = [_label(n) for n in rows]
    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(labels, [r["shift"]["mean"] for r in rows.values()], color="#3b7dd8", label="mean")
    ax1.plot(labels, [r["shift"]["median"] for r in rows.values()], "k_", ms=16, mew=2, label="median")
    ax1.plot(labels, [r["shift"]["p90"] for r in rows.values()], "v", color="#d8833b", label="90th percentile")
    ax1.set_ylabel("|score(subset) - score(complete)|", fontsize=8)
    ax1.legend(fontsize=7)
    ax2.bar(labels, [r["shift_error_spearman"] for r in rows.values()], color="#d8833b")
    ax2.axhline(0, color="0.5", lw=1)
    ax2.set_ylim(-1, 1)
    ax2.set_ylabel("Spearman(shift, abs error)", fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
    return _save(fig, Path(path), title)


def plot_fidelity(report: dict, path: str | Path, title: str | None = None) -> Path:
    """Imputation fidelity per layer and modality (solid) against the shuffled-sample control (dotted)."""
    fid = report["fidelity"]["modalities"]
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.subplots()
    for (m, r), color in zip(fid.items(), ("#3b7dd8", "#d8833b", "#3bb273", "#8e44ad", "#7f8c8d")):
        ax.plot(r["fidelity"], color=color, label=f"{m} hidden")
        ax.plot(r["control"], color=color, ls=":", lw=1)
    ax.axhline(0, color="0.5", lw=1)
    ax.set_xlabel("layer (0: input embeddings)", fontsize=8)
    ax.set_ylabel("centred cosine, hidden vs shown", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, title="dotted: another sample", title_fontsize=7)
    ax.tick_params(labelsize=7)
    return _save(fig, Path(path), title)


def plot_predictions(data: SubsetArrays, out_dir: str | Path, title: str | None = None) -> list[Path]:
    """scatter.png, residuals.png and calibration.png in `out_dir` (nothing without labelled data)."""
    if not data:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_scatter(data, out_dir / SCATTER, title), plot_residuals(data, out_dir / RESIDUALS, title),
            plot_calibration(data, out_dir / CALIBRATION, title)]


# ------------------------------------------------------------------------------------------ a run


def latest_eval_dir(run_dir: Path) -> Path | None:
    """The run's newest evaluation directory (eval, eval-2, ... as runs.evaluate names them), or None."""
    found = [(int(m.group(1) or 1), d) for d in run_dir.iterdir()
             if d.is_dir() and (m := _EVAL_DIR.match(d.name))
             and ((d / PREDICTIONS_FILE).is_file() or (d / "results.json").is_file())]
    return max(found)[1] if found else None


def plot_run(run_dir: str | Path, out: str | Path | None = None, eval_dir: str | Path | None = None) -> list[Path]:
    """The four plots of a run: 1-3 from `eval_dir`'s predictions.csv (default the newest eval*
    directory; RUN_DIR may also be an eval directory itself), the curves from RUN_DIR/logs/metrics.csv
    (left out when the run has no log). Written into `out` (default the evaluation directory);
    returns the paths written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"'{run_dir}' is not a directory")
    if eval_dir is None and (run_dir / PREDICTIONS_FILE).is_file() and _EVAL_DIR.match(run_dir.name):
        run_dir, eval_dir = run_dir.parent, run_dir
    if eval_dir is None:
        eval_dir = latest_eval_dir(run_dir)
        if eval_dir is None:
            raise PlotError(f"'{run_dir}' holds no evaluation (eval*/{PREDICTIONS_FILE}); "
                         f"run `limssr evaluate {run_dir}` first")
    eval_dir = Path(eval_dir)
    data = read_predictions(eval_dir / PREDICTIONS_FILE)
    out = Path(out) if out is not None else eval_dir
    if out.exists() and not out.is_dir():
        raise PlotError(f"'{out}' exists and is not a directory; pass another --out")
    title = f"{run_dir.resolve().name}/{eval_dir.name}"
    written = plot_predictions(data, out, title)
    log = run_dir / METRICS_FILE
    if log.is_file():
        written.append(plot_curves(read_curves(log), out / CURVES, title))
    return written
