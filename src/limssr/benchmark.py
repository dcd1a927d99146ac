"""`limssr benchmark`: methods x training regimes x seeds on one dataset, one comparison table.

Method names are registry names (`limssr methods`) or LIMSSR ablations:

    limssr-no-pcmi         no prompt; missing spans zero-filled instead of learned placeholders
    limssr-no-lmrf         no fusion tokens; Path 1 reads the mean hidden state
    limssr-no-path1        Path 2 alone scores
    limssr-no-path2        Path 1 alone scores
    limssr-no-consistency  loss.alpha_con = 0
    limssr-no-regularizer  loss.alpha = 0 (no token triplet loss)
    limssr-k<N>            N fusion tokens

Training regimes (the paper's T-Miss column):

    strict     every training sample misses at least one modality, fixed once (T-Miss checked);
               a method's own modality dropout works inside what the data shows
    complete   the data shows every modality; each method simulates missingness its own way
               (LIMSSR: one subset per batch, as the reference code; baselines: their own dropout)

Each run lives in OUT/<method>/<regime>/seed-<N>; finished runs are reused, interrupted ones resumed.
The comparison covers every finished run under OUT, so several invocations can fill one table.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from matplotlib.figure import Figure

from limssr import runs
from limssr.aggregate import aggregate_seeds, latest_results
from limssr.config import ConfigSource, RunConfig
from limssr.data import load_data
from limssr.methods import method_names
from limssr.paired import benchmark_paired, paired_csv, paired_markdown, plot_paired
from limssr.atomic import atomic_write_json, atomic_write_text

ABLATIONS = {
    "limssr-no-pcmi": ["model.pcmi=false"],
    "limssr-no-lmrf": ["model.lmrf=false"],
    "limssr-no-path1": ["model.path1=false"],
    "limssr-no-path2": ["model.path2=false"],
    "limssr-no-consistency": ["loss.alpha_con=0"],
    "limssr-no-regularizer": ["loss.alpha=0"],
}
REGIMES = ("strict", "complete")


def method_overrides(name: str) -> list[str]:
    """`method=...` plus the ablation's keys for a benchmark method name."""
    if name in ABLATIONS:
        return ["method=limssr"] + ABLATIONS[name]
    k = re.fullmatch(r"limssr-k(\d+)", name)
    if k:
        return ["method=limssr", f"model.num_fusion_tokens={int(k.group(1))}"]
    if name in method_names():
        return [f"method={name}"]
    raise ValueError(f"unknown benchmark method '{name}'; choose from {', '.join(method_names())}, "
                     f"{', '.join(ABLATIONS)} or limssr-k<N>")


def regime_overrides(regime: str, name: str) -> list[str]:
    if regime == "strict":
        return ["train.missing=strict"]
    if regime == "complete":
        return ["train.missing=per-batch"] if name.startswith("limssr") else ["train.missing=complete"]
    raise ValueError(f"unknown training regime '{regime}'; choose one of {', '.join(REGIMES)}")


def run_config(base: RunConfig | ConfigSource, name: str, regime: str, seed: int,
               baseline_overrides: list[str]) -> RunConfig:
    """The config of one benchmark run: the user's, with the method's own defaults for the dataset
    (a preset's `method_defaults`) beneath the user's settings, then the method, regime and seed."""
    extra = method_overrides(name) + regime_overrides(regime, name) + [f"seed={seed}", f"name={name}"]
    if not name.startswith("limssr"):
        extra += baseline_overrides
    source = base if isinstance(base, ConfigSource) else ConfigSource(base=base.to_dict())
    return source.load(extra)


def run_benchmark(base: RunConfig | ConfigSource, methods: list[str], regimes: list[str], seeds: list[int],
                  out: str | Path, baseline_overrides: list[str] | None = None, progress: bool = True,
                  command: str = "") -> dict:
    """Train and evaluate what is not done yet, then write the comparison of everything under `out`.
    A finished run is reused only when its config and data are the ones requested (else RunError)."""
    out = Path(out)
    for name in methods:  # refuse bad names and configs before hours of training
        method_overrides(name)
    for regime in regimes:
        regime_overrides(regime, "limssr")
    plan = [(name, regime, seed, run_config(base, name, regime, seed, baseline_overrides or []))
            for name in methods for regime in regimes for seed in seeds]
    data_cache: dict[str, object] = {}
    for name, regime, seed, cfg in plan:
        run_dir = out / name / regime / f"seed-{seed}"
        key = json.dumps([cfg.to_dict()["data"], cfg.model.modalities], sort_keys=True,
                         default=str)
        if key not in data_cache:
            data_cache = {key: load_data(cfg)}  # one dataset in memory at a time
        if runs.run_state(run_dir) != "evaluated":
            print(f"[benchmark] {name} / {regime} / seed {seed} -> {run_dir}", flush=True)
        runs.train_and_evaluate(cfg, run_dir, data_cache[key], progress=progress, show=False)
    return write_comparison(out, command)


def collect(out: Path) -> dict[tuple[str, str], dict]:
    """Mean +- std over seeds for every (method, regime) with finished runs under `out`."""
    found = {}
    for regime_dir in sorted(out.glob("*/*")):
        if not regime_dir.is_dir() or regime_dir.name not in REGIMES:
            continue
        results = [latest_results(d) for d in sorted(regime_dir.glob("seed-*")) if list(d.glob("eval*/results.json"))]
        if results:
            found[(regime_dir.parent.name, regime_dir.name)] = aggregate_seeds(results)
    return found


def _order(key: tuple[str, str]) -> tuple:
    name, regime = key
    rank = 0 if name == "limssr" else 1 if name.startswith("limssr") else 2
    return rank, name, REGIMES.index(regime)


def write_comparison(out: Path, command: str = "") -> dict:
    found = collect(out)
    if not found:
        raise FileNotFoundError(f"no finished runs under '{out}'")
    keys = sorted(found, key=_order)
    subsets = list(next(iter(found.values()))["subsets"])
    table = {"command": command, "rows": []}
    for key in keys:
        agg = found[key]
        row = {"method": key[0], "regime": key[1], "seeds": agg["seeds"]}
        for name in subsets + ["average"]:
            e = agg["subsets"][name] if name != "average" else agg["average"]
            row[name] = {k: e[k] for k in ("spearman", "spearman_std", "mse", "mse_std")}
        table["rows"].append(row)
    table["versus_limssr"] = versus_limssr(table, subsets)
    table["paired"] = benchmark_paired(out, table["rows"])  # LIMSSR strict minus each row, bootstrap intervals
    atomic_write_json(out / "comparison.json", table)
    atomic_write_text(out / "comparison.md", comparison_markdown(table, subsets))
    atomic_write_text(out / "comparison.csv", _csv(table, subsets))
    plot_comparison(table, subsets, out / "comparison.png")
    if table["paired"]:
        atomic_write_text(out / "comparison_paired.csv", paired_csv(table["paired"]))
        plot_paired(table["paired"], out / "comparison_paired.png")
    return table


def versus_limssr(table: dict, subsets: list[str]) -> list[dict]:
    """LIMSSR under strict T-Miss against every other row, subset by subset: where its mean Spearman
    is higher and its mean MSE lower, and where the gap is larger than both rows' seed std."""
    ref = next((r for r in table["rows"] if r["method"] == "limssr" and r["regime"] == "strict"), None)
    if ref is None:
        return []
    out = []
    for r in table["rows"]:
        if r is ref:
            continue
        entry = {"method": r["method"], "regime": r["regime"]}
        for metric, better in (("spearman", 1.0), ("mse", -1.0)):
            gaps = {c: better * (ref[c][metric] - r[c][metric]) for c in subsets + ["average"]}
            noise = {c: max(ref[c][f"{metric}_std"], r[c][f"{metric}_std"]) for c in gaps}
            entry[metric] = {"limssr_better": [c for c in subsets if gaps[c] > 0],
                             "limssr_worse": [c for c in subsets if gaps[c] < 0],
                             "beyond_seed_std_better": [c for c in subsets if gaps[c] > noise[c]],
                             "beyond_seed_std_worse": [c for c in subsets if -gaps[c] > noise[c]],
                             "average_gap": gaps["average"]}
        out.append(entry)
    return out


def _label(name: str) -> str:
    return "{" + ",".join(name) + "}" if name != "average" else "Avg"


def _columns(table: dict, subsets: list[str]) -> list[str]:
    """The subsets and, where there are incomplete subsets to average (more than one modality), Avg."""
    has_average = any(r["average"]["spearman"] == r["average"]["spearman"] for r in table["rows"])  # not nan
    return subsets + (["average"] if has_average else [])


def comparison_markdown(table: dict, subsets: list[str]) -> str:
    cols = _columns(table, subsets)
    head = "| Method | T-Miss | Seeds | " + " | ".join(_label(c) for c in cols) + " |"
    sep = "|---|:-:|:-:|" + "---:|" * len(cols)
    lines = ["#### Spearman (mean +- std over seeds)", "", head, sep]
    for r in table["rows"]:
        tmiss = "yes" if r["regime"] == "strict" else "no"
        lines.append(f"| {r['method']} | {tmiss} | {len(r['seeds'])} | "
                     + " | ".join(f"{r[c]['spearman']:.3f} +- {r[c]['spearman_std']:.3f}" for c in cols) + " |")
    lines += ["", "#### MSE in raw score units (mean +- std over seeds)", "", head, sep]
    for r in table["rows"]:
        tmiss = "yes" if r["regime"] == "strict" else "no"
        lines.append(f"| {r['method']} | {tmiss} | {len(r['seeds'])} | "
                     + " | ".join(f"{r[c]['mse']:.1f} +- {r[c]['mse_std']:.1f}" for c in cols) + " |")
    if table.get("versus_limssr"):
        def listed(names):
            return " ".join(names) if names else "-"

        lines += ["", "#### LIMSSR (T-Miss) against each row, subset by subset", "",
                  "| Method | T-Miss | LIMSSR higher Spearman on | lower Spearman on | lower MSE on | higher MSE on "
                  "| Avg Spearman gap | Avg MSE gap |", "|---|:-:|---|---|---|---|---:|---:|"]
        for v in table["versus_limssr"]:
            sp, ms = v["spearman"], v["mse"]
            lines.append(f"| {v['method']} | {'yes' if v['regime'] == 'strict' else 'no'} | "
                         f"{listed(sp['limssr_better'])} | {listed(sp['limssr_worse'])} | "
                         f"{listed(ms['limssr_better'])} | {listed(ms['limssr_worse'])} | "
                         f"{sp['average_gap']:+.3f} | {-ms['average_gap']:+.1f} |")
        lines += ["", "Subsets by modality initials. Gaps are LIMSSR minus the row (Spearman: positive favours "
                  "LIMSSR; MSE: negative favours LIMSSR). comparison.json also lists the subsets where the gap is "
                  "larger than the seed std of both rows."]
    if table.get("paired"):
        lines += [""] + paired_markdown(table["paired"]).rstrip("\n").split("\n")
    lines += ["", "T-Miss yes: trained with every sample missing at least one modality (strict); no: trained on "
              "complete data (each method's own missingness simulation). Avg: Fisher-z mean of Spearman and mean "
              "MSE over the incomplete subsets."]
    return "\n".join(lines) + "\n"


def _csv(table: dict, subsets: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = _columns(table, subsets)
    writer.writerow(["method", "regime", "n_seeds"] + [f"{c}_{m}" for c in cols
                                                       for m in ("spearman", "spearman_std", "mse", "mse_std")])
    for r in table["rows"]:
        writer.writerow([r["method"], r["regime"], len(r["seeds"])]
                        + [f"{r[c][m]:.6g}" for c in cols for m in ("spearman", "spearman_std", "mse", "mse_std")])
    return buf.getvalue()


def plot_comparison(table: dict, subsets: list[str], path: Path) -> Path:
    """One panel per subset (and the average): Spearman per method and regime, with std error bars."""
    cols = _columns(table, subsets)
    rows = table["rows"]
    labels = [f"{r['method']}{'' if r['regime'] == 'strict' else ' (complete)'}" for r in rows]
    colors = ["#1f5fbf" if r["method"] == "limssr" else "#7fa6e0" if r["method"].startswith("limssr")
              else "#d8833b" if r["regime"] == "strict" else "#f2c18f" for r in rows]
    ncol = 4
    nrow = (len(cols) + ncol - 1) // ncol
    fig = Figure(figsize=(4.2 * ncol, 0.28 * len(rows) * nrow + 1.5 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax, c in zip(axes.flat, cols):
        y = range(len(rows))
        ax.barh(list(y), [r[c]["spearman"] for r in rows], xerr=[r[c]["spearman_std"] for r in rows],
                color=colors, capsize=2)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels if c == cols[0] or ax in axes[:, 0] else [], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(_label(c) if c != "average" else "Avg (incomplete)", fontsize=9)
        ax.set_xlim(min(0.0, min(r[c]["spearman"] for r in rows) - 0.05), 1.0)
        ax.axvline(0, color="k", lw=0.5)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle("Spearman per subset (mean +- std over seeds); dark blue: LIMSSR (strict T-Miss), light blue: "
                 "ablations, orange: baselines (dark: strict T-Miss, light: complete training data)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
