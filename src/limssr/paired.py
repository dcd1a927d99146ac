"""Paired comparison of two sets of runs on the same test samples: differences with bootstrap intervals.

Runs are paired by seed (the `seed` in each run's newest evaluation): the same seed number means
the same test samples, which is checked sample by sample. The point estimate for each subset and
for the average is the mean over the paired seeds of (ref metric - other metric), taken from the
runs' results.json (the numbers the results tables show). The interval is a percentile bootstrap
over TEST SAMPLES: one replicate draws the test samples with replacement once and applies the same
draw to both methods, every seed (when the seeds share their test samples) and every subset, so a
replicate's average over the incomplete subsets is that of one resampled test set.

Signs: Spearman difference > 0 and MSE difference < 0 favour the reference (LIMSSR in the
benchmark). "Ahead" means the whole interval lies on the reference's side of 0, "behind" the
whole interval on the other side.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from limssr.aggregate import latest_eval_dir
from limssr.atomic import read_results_json, temp_sibling
from limssr.metrics import FISHER_CLIP

FIELDS = ("spearman_diff", "spearman_lo", "spearman_hi", "mse_diff", "mse_lo", "mse_hi")
_CHUNK = 1_000_000  # replicates x samples per block, to bound memory on large test sets


def _load_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    eval_dir = latest_eval_dir(run_dir)
    results = read_results_json(eval_dir / "results.json")
    path = eval_dir / "predictions.csv"
    if not path.is_file():
        raise FileNotFoundError(f"'{eval_dir}' has results.json but no predictions.csv; "
                                f"run `limssr evaluate {run_dir}` again")
    preds: dict[str, dict[str, tuple[float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            subset = preds.setdefault(row["subset"], {})
            if row["name"] in subset:
                raise ValueError(f"'{path}': sample '{row['name']}' appears twice in subset {row['subset']}")
            subset[row["name"]] = (float(row["label"]), float(row["score"]))
    return {"dir": run_dir, "results": results, "preds": preds}


def seed_runs(root: str | Path) -> list[Path]:
    """The evaluated seed-* runs under `root` (OUT/seed-N from `limssr train --seeds`, or a benchmark's
    OUT/<method>/<regime>)."""
    root = Path(root)
    return [d for d in sorted(root.glob("seed-*")) if d.is_dir() and list(d.glob("eval*/results.json"))]


def _by_seed(runs: list[dict], which: str) -> dict:
    out = {}
    for r in runs:
        seed = r["results"].get("seed")
        if seed in out:
            raise ValueError(f"{which} runs '{out[seed]['dir']}' and '{r['dir']}' both evaluated seed {seed}")
        out[seed] = r
    return out


def _pair_arrays(ref: dict, other: dict) -> tuple[list[str], dict]:
    """Sample names (sorted) and, per subset, presence, label, ref score and other score over them."""
    a, b = ref["preds"], other["preds"]
    where = f"'{ref['dir']}' and '{other['dir']}'"
    if set(a) != set(b):
        raise ValueError(f"{where} were evaluated on different subsets: {sorted(a)} vs {sorted(b)}")
    for subset in a:
        if set(a[subset]) != set(b[subset]):
            only = sorted(set(a[subset]) ^ set(b[subset]))
            raise ValueError(f"{where} have different test samples in subset {subset} "
                             f"({len(only)} differ, e.g. '{only[0]}'); pair runs evaluated on the same test split")
    names = sorted({n for s in a.values() for n in s})
    pos = {n: i for i, n in enumerate(names)}
    arrays = {}
    for subset in a:
        present = np.zeros(len(names), dtype=bool)
        label, ref_score, other_score = (np.full(len(names), np.nan) for _ in range(3))
        other_label = np.full(len(names), np.nan)
        for n, (lab, sc) in a[subset].items():
            present[pos[n]], label[pos[n]], ref_score[pos[n]] = True, lab, sc
        for n, (lab, sc) in b[subset].items():
            other_label[pos[n]], other_score[pos[n]] = lab, sc
        if not np.allclose(label[present], other_label[present], rtol=1e-5, atol=1e-6):
            raise ValueError(f"{where} give the same test samples different labels in subset {subset}; "
                             f"pair runs evaluated on the same data and score type")
        arrays[subset] = (present, label, ref_score, other_score)
    return names, arrays


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Samples x replicates: how many times each of the `n` samples is drawn in each row of `idx`."""
    rows = len(idx)
    flat = (idx * rows + np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=n * rows).reshape(n, rows).astype(float)


def _weighted_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average rank of each sample in every replicate's resample (sample i repeated counts[i] times):
    the count of drawn values below it plus half of (the drawn values equal to it + 1), as
    scipy.stats.rankdata gives on the expanded resample. One sort of `values`, none per replicate."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    new = np.r_[True, v[1:] != v[:-1]]
    ranks = np.empty_like(counts)
    if new.all():  # no ties: below = drawn values before it, equal = its own copies
        drawn = counts[order]
        ranks[order] = np.cumsum(drawn, axis=0) - (drawn - 1.0) / 2.0
        return ranks
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(v)]
    cum = np.concatenate([np.zeros((1, counts.shape[1])), np.cumsum(counts[order], axis=0)], axis=0)
    below, upto = cum[starts], cum[ends]
    group_rank = below + (upto - below + 1.0) / 2.0
    ranks[order] = group_rank[np.cumsum(new) - 1]
    return ranks


def _boot_stats(counts: np.ndarray, present: np.ndarray, label: np.ndarray, scores: list[np.ndarray]):
    """Per replicate (column of `counts`, from `_counts`): Spearman and MSE of each score vector against
    the label on the resampled samples present in the subset, as limssr.metrics computes them on
    the expanded resample. Same conventions: Spearman is 0.0 with fewer than 3 samples or a
    constant side; MSE is NaN with no sample."""
    w = counts[present]
    lab = label[present]
    m = w.sum(axis=0)
    centre = (m + 1.0) / 2.0
    dl = _weighted_ranks(lab, w) - centre
    wdl = w * dl
    vl = (wdl * dl).sum(axis=0)
    out = []
    for score in scores:
        sc = score[present]
        ds = _weighted_ranks(sc, w) - centre
        vs = (w * ds * ds).sum(axis=0)
        ok = (m >= 3) & (vl > 0) & (vs > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(ok, (wdl * ds).sum(axis=0) / np.sqrt(vl * vs), 0.0)
            err = ((sc - lab) ** 2 @ w) / m
        out.append((np.clip(rho, -1.0, 1.0), err))
    return out


def _fisher_z_rows(rs: np.ndarray) -> np.ndarray:
    """metrics.fisher_z_mean of each row (same clip and rounding), vectorised over replicates."""
    z = np.arctanh(np.clip(rs, -FISHER_CLIP, FISHER_CLIP))
    return np.clip(np.round(np.tanh(z.mean(axis=1)), 10), -1.0, 1.0)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def paired_differences(ref_runs, other_runs, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Reference minus other, per subset and for the average over the incomplete subsets, with a
    percentile bootstrap interval over test samples. See the module docstring for the layout."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    ref_runs, other_runs = [Path(d) for d in ref_runs], [Path(d) for d in other_runs]
    ref = _by_seed([_load_run(d) for d in ref_runs], "reference")
    other = _by_seed([_load_run(d) for d in other_runs], "other")
    seeds = [s for s in ref if s in other]
    if not seeds:
        raise ValueError(f"no seed in common between the reference runs (seeds {sorted(ref, key=str)}: "
                         f"{', '.join(map(str, ref_runs)) or 'none'}) and the other runs (seeds "
                         f"{sorted(other, key=str)}: {', '.join(map(str, other_runs)) or 'none'})")
    seeds.sort(key=lambda s: (s is None, s))
    pairs = [(ref[s], other[s]) for s in seeds]
    arrays = [_pair_arrays(r, o) for r, o in pairs]
    subsets = list(pairs[0][0]["results"]["subsets"])
    for (r, o), (_, arr) in zip(pairs, arrays):
        for run in (r, o):
            if list(run["results"]["subsets"]) != subsets or set(arr) != set(subsets):
                raise ValueError(f"'{run['dir']}' reports subsets {list(run['results']['subsets'])} and "
                                 f"predictions for {sorted(arr)}; expected {subsets} as in '{pairs[0][0]['dir']}'")
    incomplete = list(pairs[0][0]["results"]["average_over"])

    # One draw of test samples per replicate, shared by all seeds when they share their test samples.
    rng = np.random.default_rng(seed)
    shared = all(names == arrays[0][0] for names, _ in arrays)
    draws = [rng.integers(0, len(arrays[0][0]), size=(n_boot, len(arrays[0][0])))] if shared else \
        [rng.integers(0, len(names), size=(n_boot, len(names))) for names, _ in arrays]

    boot = {c: {"spearman": np.zeros(n_boot), "mse": np.zeros(n_boot)} for c in subsets + ["average"]}
    for k, (names, arr) in enumerate(arrays):
        idx_all = draws[0 if shared else k]
        step = max(1, _CHUNK // max(1, len(names)))
        per = {c: {key: np.empty(n_boot) for key in ("rs", "os", "rm", "om")} for c in subsets}
        for start in range(0, n_boot, step):
            counts = _counts(idx_all[start:start + step], len(names))
            for c in subsets:
                present, label, rs, os_ = arr[c]
                (r_rho, r_err), (o_rho, o_err) = _boot_stats(counts, present, label, [rs, os_])
                sl = slice(start, start + counts.shape[1])
                per[c]["rs"][sl], per[c]["os"][sl], per[c]["rm"][sl], per[c]["om"][sl] = r_rho, o_rho, r_err, o_err
        for c in subsets:
            boot[c]["spearman"] += per[c]["rs"] - per[c]["os"]
            boot[c]["mse"] += per[c]["rm"] - per[c]["om"]
        if incomplete:
            for side, sign in (("rs", 1.0), ("os", -1.0)):
                rhos = np.stack([per[c][side] for c in incomplete], axis=1)
                boot["average"]["spearman"] += sign * _fisher_z_rows(rhos)
            for side, sign in (("rm", 1.0), ("om", -1.0)):
                boot["average"]["mse"] += sign * np.mean(np.stack([per[c][side] for c in incomplete], axis=1), 1)

    def metrics_of(run: dict, c: str) -> dict:
        return run["results"]["average"] if c == "average" else run["results"]["subsets"][c]

    def entry(c: str) -> dict:
        e = {}
        for metric in ("spearman", "mse"):
            e[f"{metric}_diff"] = float(np.mean([metrics_of(r, c)[metric] - metrics_of(o, c)[metric]
                                                 for r, o in pairs]))
            e[f"{metric}_lo"], e[f"{metric}_hi"] = _interval(boot[c][metric] / len(pairs), level)
        e["n"] = int(metrics_of(pairs[0][0], c)["n"])
        e["ahead"] = {"spearman": e["spearman_lo"] > 0, "mse": e["mse_hi"] < 0}
        e["behind"] = {"spearman": e["spearman_hi"] < 0, "mse": e["mse_lo"] > 0}
        return e

    table = {c: entry(c) for c in subsets}
    counts = {m: {"ahead": sum(table[c]["ahead"][m] for c in incomplete),
                  "behind": sum(table[c]["behind"][m] for c in incomplete), "of": len(incomplete)}
              for m in ("spearman", "mse")}
    return {"ref": [str(r["dir"]) for r, _ in pairs], "other": [str(o["dir"]) for _, o in pairs],
            "seeds": seeds, "n_boot": n_boot, "level": level, "bootstrap_seed": seed,
            "shared_draws": shared, "subsets": table, "average": entry("average") if incomplete else None,
            "incomplete": incomplete, "counts": counts}


def paired_from_dirs(ref_dir, other_dir, **kwargs) -> dict:
    """`paired_differences` on the evaluated seed-* runs of two directories (OUT/seed-N layouts)."""
    ref, other = seed_runs(ref_dir), seed_runs(other_dir)
    for d, runs in ((ref_dir, ref), (other_dir, other)):
        if not runs:
            raise FileNotFoundError(f"'{d}' holds no evaluated seed-* run (seed-N/eval*/results.json)")
    return paired_differences(ref, other, **kwargs)


# --- the benchmark's paired section -------------------------------------------------------------


def _label(name: str) -> str:
    return "{" + ",".join(name) + "}" if name != "average" else "Avg"


def benchmark_paired(out: Path, rows: list[dict], ref_method: str = "limssr", ref_regime: str = "strict",
                     **kwargs) -> list[dict]:
    """Every (method, regime) row of a benchmark against the reference row, paired by seed. A row that
    cannot be paired (no common seed, different test samples) carries its reason under "error"."""
    ref_dir = Path(out) / ref_method / ref_regime
    ref = seed_runs(ref_dir)
    if not ref:
        return []
    result = []
    for r in rows:
        if (r["method"], r["regime"]) == (ref_method, ref_regime):
            continue
        entry = {"method": r["method"], "regime": r["regime"]}
        try:
            entry.update(paired_differences(ref, seed_runs(Path(out) / r["method"] / r["regime"]), **kwargs))
        except (ValueError, FileNotFoundError) as e:
            entry["error"] = str(e).replace(f"{Path(out)}/", "")  # run paths relative to the benchmark
        result.append(entry)
    return result


def _ci(e: dict, metric: str, digits: int) -> str:
    return f"{e[f'{metric}_diff']:+.{digits}f} [{e[f'{metric}_lo']:+.{digits}f}, {e[f'{metric}_hi']:+.{digits}f}]"


def paired_markdown(paired: list[dict]) -> str:
    """The Markdown section: per row, the average difference with its interval and the subset counts."""
    if not paired:
        return ""
    level = next((p["level"] for p in paired if "level" in p), 0.95)
    pct = f"{100 * level:g}%"
    lines = [f"#### LIMSSR (T-Miss) minus each row, paired by seed on the same test samples ({pct} bootstrap "
             f"intervals over test samples)", "",
             f"| Method | T-Miss | Paired seeds | Avg Spearman diff [{pct}] | Avg MSE diff [{pct}] "
             f"| Spearman | MSE |", "|---|:-:|:-:|---:|---:|---|---|"]
    for p in paired:
        tmiss = "yes" if p["regime"] == "strict" else "no"
        if "error" in p:
            lines.append(f"| {p['method']} | {tmiss} | - | - | - | not paired: {p['error']} | |".replace("\n", " "))
            continue
        avg = p["average"]
        cells = []
        for metric in ("spearman", "mse"):
            c = p["counts"][metric]
            cells.append(f"ahead beyond the interval on {c['ahead']} of {c['of']} incomplete subsets / "
                         f"behind on {c['behind']}")
        lines.append(f"| {p['method']} | {tmiss} | {len(p['seeds'])} | "
                     f"{_ci(avg, 'spearman', 3) if avg else '-'} | {_ci(avg, 'mse', 1) if avg else '-'} | "
                     f"{cells[0]} | {cells[1]} |")
    lines += ["", "Differences are LIMSSR minus the row, averaged over the seeds both have (Spearman: positive "
              "favours LIMSSR; MSE in raw score units: negative favours LIMSSR). Each bootstrap replicate "
              "resamples the test samples once, for both methods, every seed and every subset. Ahead: the "
              "whole interval favours LIMSSR; behind: the whole interval favours the row. Per-subset "
              "intervals: comparison_paired.csv and comparison.json (\"paired\")."]
    return "\n".join(lines) + "\n"


def paired_csv(paired: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "regime", "n_seeds", "subset", *FIELDS, "n", "spearman_ahead", "spearman_behind",
                     "mse_ahead", "mse_behind"])
    for p in paired:
        if "error" in p:
            continue
        entries = list(p["subsets"].items()) + ([("average", p["average"])] if p["average"] else [])
        for name, e in entries:
            writer.writerow([p["method"], p["regime"], len(p["seeds"]), name, *(f"{e[f]:.6g}" for f in FIELDS),
                             e["n"], int(e["ahead"]["spearman"]), int(e["behind"]["spearman"]),
                             int(e["ahead"]["mse"]), int(e["behind"]["mse"])])
    return buf.getvalue()


def plot_paired(paired: list[dict], path: Path) -> Path | None:
    """Per subset (and the average), each row's Spearman difference with its interval; a line at 0."""
    done = [p for p in paired if "error" not in p]
    if not done:
        return None
    cols = list(done[0]["subsets"]) + (["average"] if done[0]["average"] else [])
    fig = Figure(figsize=(6.5, 0.9 + 0.16 * len(cols) * len(done) + 0.25 * len(cols)))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(done)
    colors = [f"C{i % 10}" for i in range(len(done))]
    for j, p in enumerate(done):
        y, x, lo, hi = [], [], [], []
        for i, c in enumerate(cols):
            e = p["subsets"][c] if c != "average" else p["average"]
            y.append(i - 0.4 + width * (j + 0.5))
            x.append(e["spearman_diff"])
            lo.append(max(0.0, e["spearman_diff"] - e["spearman_lo"]))
            hi.append(max(0.0, e["spearman_hi"] - e["spearman_diff"]))
        ax.errorbar(x, y, xerr=[lo, hi], fmt="o", ms=3, capsize=2, lw=1, color=colors[j],
                    label=f"{p['method']}{'' if p['regime'] == 'strict' else ' (complete)'}")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(cols)))
    ax.set_yticklabels([_label(c) if c != "average" else "Avg (incomplete)" for c in cols], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("Spearman: LIMSSR (T-Miss) minus the row", fontsize=8)
    ax.set_title(f"Paired differences, {100 * done[0]['level']:g}% bootstrap intervals over test samples "
                 f"(right of 0 favours LIMSSR)", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    tmp = temp_sibling(path, ".png")
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


__all__ = ["paired_differences", "paired_from_dirs", "seed_runs", "benchmark_paired", "paired_markdown",
           "paired_csv", "plot_paired"]
