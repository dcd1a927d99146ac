"""Combining results: mean +- std over seeds, and averages across the score types of a dataset.

Two different averages, kept apart and labelled:
* across subsets ("Average" in every results table): Fisher-z mean of Spearman over the incomplete
  subsets of one run;
* across score types ("Average over score types"): Fisher-z mean of each column's Spearman over the
  score types of a dataset (TES and PCS of Fis-V, the four RG apparatus, ...), as PAMFN's
  call_avg_coef does. MSE is not averaged across score types: their units differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limssr.atomic import read_results_json
from limssr.evaluation import Results
from limssr.metrics import fisher_z_mean


def aggregate_seeds(results: list[Results]) -> dict:
    """Mean and (sample) std over runs that differ only in their seed."""
    if not results:
        raise ValueError("no results to aggregate")
    names = list(results[0]["subsets"])
    out = {"seeds": [r.get("seed") for r in results], "n_runs": len(results), "subsets": {},
           "protocol": results[0].get("protocol"), "score_type": results[0].get("score_type"),
           "dataset": results[0].get("dataset"), "noise_ceiling": results[0].get("noise_ceiling")}
    for key in names + ["average"]:
        rows = [r["subsets"][key] if key != "average" else r["average"] for r in results]
        entry = {}
        for metric in ("spearman", "mse", "rl2"):
            if metric == "rl2" and not all("rl2" in row for row in rows):
                continue  # results.json from before R-l2 was reported
            values = np.array([row[metric] for row in rows], dtype=float)
            entry[metric] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        entry["n"] = rows[0]["n"]
        if key == "average":
            out["average"] = entry
        else:
            out["subsets"][key] = entry
    return out


def across_score_types(by_type: dict[str, dict]) -> dict:
    """Per subset (and for the subset average), the Fisher-z mean of Spearman over score types."""
    types = list(by_type)
    names = list(next(iter(by_type.values()))["subsets"])
    table = {t: {n: by_type[t]["subsets"][n]["spearman"] for n in names} for t in types}
    for t in types:
        table[t]["average"] = by_type[t]["average"]["spearman"]
    overall = {n: fisher_z_mean([table[t][n] for t in types]) for n in names + ["average"]}
    return {"score_types": types, "spearman": table, "average_over_score_types": overall}


def latest_eval_dir(run_dir: str | Path) -> Path:
    """A run's newest evaluation directory (eval, eval-2, ...)."""
    run_dir = Path(run_dir)
    evals = sorted(run_dir.glob("eval*/results.json"),
                   key=lambda p: int(p.parent.name.split("-")[1]) if "-" in p.parent.name else 1)
    if not evals:
        raise FileNotFoundError(f"'{run_dir}' holds no evaluation (eval*/results.json); "
                                f"run `limssr evaluate {run_dir}` first")
    return evals[-1].parent


def latest_results(run_dir: str | Path) -> Results:
    """A run's newest evaluation (eval, eval-2, ...) or a multi-seed directory's summary.json."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file():
        return read_results_json(run_dir / "summary.json")
    return read_results_json(latest_eval_dir(run_dir) / "results.json")


def seeds_markdown(summary: dict) -> str:
    lines = [f"### Mean +- std over {summary['n_runs']} seeds {summary['seeds']}"
             + (f" - {summary['score_type']}" if summary.get("score_type") else ""), "",
             f"Protocol: {summary.get('protocol')}", "",
             "| Subset | Spearman | MSE | n |", "|---|---:|---:|---:|"]
    for name, e in list(summary["subsets"].items()) + [("Average (incomplete)", summary["average"])]:
        label = "{" + ",".join(name) + "}" if name in summary["subsets"] else name
        lines.append(f"| {label} | {e['spearman']:.4f} +- {e['spearman_std']:.4f} | "
                     f"{e['mse']:.2f} +- {e['mse_std']:.2f} | {e['n']} |")
    return "\n".join(lines) + "\n"


def score_types_markdown(summary: dict) -> str:
    names = [n for n in next(iter(summary["spearman"].values())) if n != "average"]
    head = "| Score type | " + " | ".join("{" + ",".join(n) + "}" for n in names) + " | Average (incomplete) |"
    lines = ["### Spearman per score type", "", head, "|---|" + "---:|" * (len(names) + 1)]
    for t, row in summary["spearman"].items():
        lines.append(f"| {t} | " + " | ".join(f"{row[n]:.4f}" for n in names) + f" | {row['average']:.4f} |")
    avg = summary["average_over_score_types"]
    lines.append("| **Average over score types (Fisher-z)** | " + " | ".join(f"{avg[n]:.4f}" for n in names)
                 + f" | {avg['average']:.4f} |")
    lines += ["", "Rows: one model per score type. Last column: the average over the incomplete subsets of "
              "that row. Last row: Fisher-z average over score types (not over subsets); MSE is not "
              "averaged across score types because their units differ."]
    return "\n".join(lines) + "\n"
