"""`limssr paper-tables OUT`: the paper's tables from the benchmark trees of `benchmarks/paper.sh`.

Reads the finished runs of

    OUT/<protocol>/<preset>/<method>/<regime>/seed-<N>/eval*/results.json

where <protocol> is the model selection (`val`: best epoch on a validation split; `paper`: best
epoch on the test set, as the published code; `last`: fixed epoch count) and <preset> one of the
published (dataset, score type) presets (fs1000-tes, ..., rg-ribbon), each written by one
`limssr benchmark` call. Runs without an evaluation are left out; every run's own selection.json
must agree with the <protocol> directory it sits in.

Lays them out as the paper does, per selection protocol and per dataset:

* per score type, Spearman and MSE tables: rows = methods, columns = the 7 test-time modality
  subsets {v,a,f} ... {f} and Avg (Fisher-z mean of Spearman / mean MSE over the 6 incomplete
  subsets, as in every limssr results table), mean +- std over seeds;
* the Spearman averaged over the dataset's score types (Fisher-z, as `limssr summarize` and
  `aggregate.across_score_types`; MSE is not averaged across score types, their units differ).

Every table under the paper protocol carries PAPER_LABEL. Writes OUT/tables/ as a whole (the
previous one is replaced): tables.md (everything), tables.json, and per protocol
<protocol>/<dataset>.md, <protocol>/<preset>_{spearman,mse}.csv and
<protocol>/<dataset>_average_over_score_types.csv.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from limssr.aggregate import across_score_types, aggregate_seeds, latest_results
from limssr.atomic import json_text
from limssr.runs import RunError

PAPER_LABEL = "PAPER PROTOCOL (best epoch chosen on the test set)"
PROTOCOLS = {  # directory name -> label; the order tables are written in
    "val": "validation protocol (best epoch chosen on a validation split of the training set)",
    "last": "fixed epoch count (the last epoch evaluated)",
    "paper": PAPER_LABEL,
}
DATASETS = {"fs1000": "FS1000", "fisv": "Fis-V", "rg": "RG"}
PRESETS = ("fs1000-tes", "fs1000-pcs", "fs1000-ss", "fs1000-tr", "fs1000-pe", "fs1000-co", "fs1000-in",
           "fisv-tes", "fisv-pcs", "rg-ball", "rg-clubs", "rg-hoop", "rg-ribbon")
BASELINE_ORDER = ("actionmae", "gcnet", "momke", "mcmoe")  # the paper's rows; LIMSSR last
REGIMES = ("strict", "complete")


def _error(message: str) -> Exception:
    return RunError(message)


def run_selection(run_dir: Path) -> str | None:
    """`val`, `paper` or `last`: how a finished run chose its model (selection.json, else results.json)."""
    path = run_dir / "selection.json"
    if path.is_file():
        return json.loads(path.read_text()).get("selection")

    label = str((latest_results(run_dir).get("protocol") or {}).get("selection", ""))
    if label.startswith("PAPER PROTOCOL"):
        return "paper"
    if "validation" in label:
        return "val"
    if label.startswith("fixed epoch"):
        return "last"
    return None


def collect_preset(preset_dir: Path, protocol: str) -> dict | None:
    """Mean +- std over seeds per (method, regime) of one `limssr benchmark` tree, or None if none finished."""
    rows, dataset, score_type = {}, None, None
    for regime_dir in sorted(preset_dir.glob("*/*")):
        if not regime_dir.is_dir() or regime_dir.name not in REGIMES:
            continue
        done = [d for d in sorted(regime_dir.glob("seed-*")) if list(d.glob("eval*/results.json"))]
        results = []
        for d in done:
            selection = run_selection(d)
            if selection != protocol:
                raise _error(f"'{d}' chose its model by '{selection}' but sits under the '{protocol}' protocol "
                             f"directory; move it, or rerun it with train.selection={protocol}")
            results.append(latest_results(d))
        if not results:
            continue
        agg = aggregate_seeds(results)
        rows[(regime_dir.parent.name, regime_dir.name)] = agg
        dataset = dataset or agg.get("dataset")
        score_type = score_type or agg.get("score_type")
    if not rows:
        return None
    if dataset not in DATASETS:  # e.g. a generic-layout path: fall back on the preset name
        dataset = preset_dir.name.split("-")[0]
    return {"preset": preset_dir.name, "dataset": dataset,
            "score_type": score_type or preset_dir.name.split("-", 1)[-1].upper(), "rows": rows}


def _preset_rank(name: str) -> tuple:
    return (PRESETS.index(name), "") if name in PRESETS else (len(PRESETS), name)


def _dataset_rank(name: str) -> tuple:
    keys = list(DATASETS)
    return (keys.index(name), "") if name in keys else (len(keys), name)


def _row_rank(key: tuple[str, str]) -> tuple:
    method, regime = key
    if method in BASELINE_ORDER:
        group, sub = 0, BASELINE_ORDER.index(method)
    elif not method.startswith("limssr"):
        group, sub = 1, 0
    elif method != "limssr":
        group, sub = 2, 0
    else:
        group, sub = 3, 0
    return group, sub, method, REGIMES.index(regime) if regime in REGIMES else len(REGIMES)


def _row_keys(keys, methods: list[str] | None) -> list[tuple[str, str]]:
    keys = sorted(set(keys), key=_row_rank)
    if methods is None:
        return keys
    return [k for m in methods for k in keys if k[0] == m]


def build(out: str | Path, methods: list[str] | None = None) -> dict:
    """The tables as one JSON-able document (see the module docstring for what is read)."""
    out = Path(out)
    doc = {"source": str(out), "subsets": None, "protocols": {}}
    for protocol, label in PROTOCOLS.items():
        pdir = out / protocol
        if not pdir.is_dir():
            continue
        trees = [t for d in sorted(pdir.iterdir(), key=lambda p: _preset_rank(p.name))
                 if d.is_dir() and not d.name.startswith(".") and (t := collect_preset(d, protocol))]
        if not trees:
            continue
        datasets = {}
        for tree in trees:
            subsets = list(next(iter(tree["rows"].values()))["subsets"])
            if doc["subsets"] is None:
                doc["subsets"] = subsets
            if any(list(a["subsets"]) != doc["subsets"] for a in tree["rows"].values()):
                raise _error(f"'{pdir / tree['preset']}' was scored on other modality subsets than "
                             f"{doc['subsets']}; its runs cannot share a table with the others")
            datasets.setdefault(tree["dataset"], []).append(tree)
        entry = {"label": label, "datasets": {}}
        for dataset in sorted(datasets, key=_dataset_rank):
            counts = {}
            for tree in datasets[dataset]:
                counts[tree["score_type"]] = counts.get(tree["score_type"], 0) + 1
            for tree in datasets[dataset]:  # two trees of one score type (e.g. another divisor): name them apart
                tree["title"] = (tree["score_type"] if counts[tree["score_type"]] == 1
                                 else f"{tree['score_type']} ({tree['preset']})")
            types = []
            for tree in datasets[dataset]:
                rows = []
                for key in _row_keys(tree["rows"], methods):
                    agg = tree["rows"][key]
                    row = {"method": key[0], "regime": key[1], "seeds": agg["seeds"]}
                    for metric in ("spearman", "mse"):
                        for stat in (metric, f"{metric}_std"):
                            row[stat] = {s: agg["subsets"][s][stat] for s in doc["subsets"]}
                            row[stat]["average"] = agg["average"][stat]
                    rows.append(row)
                types.append({"preset": tree["preset"], "score_type": tree["score_type"], "title": tree["title"],
                              "rows": rows})
            names = [t["title"] for t in types]
            over = []
            for key in _row_keys({k for tree in datasets[dataset] for k in tree["rows"]}, methods):
                by_type = {tree["title"]: tree["rows"][key] for tree in datasets[dataset] if key in tree["rows"]}
                avg = across_score_types(by_type)["average_over_score_types"]
                over.append({"method": key[0], "regime": key[1], "score_types": list(by_type),
                             "spearman": {s: avg[s] for s in doc["subsets"] + ["average"]}})
            entry["datasets"][dataset] = {"name": DATASETS.get(dataset, dataset), "score_types": types,
                                          "average_over_score_types": {"score_types": names, "rows": over}}
        doc["protocols"][protocol] = entry
    if not doc["protocols"]:
        raise _error(f"no finished benchmark runs under '{out}/<protocol>/<preset>/' (protocol: "
                     f"{', '.join(PROTOCOLS)}); run benchmarks/paper.sh first")
    return doc


# ---------------------------------------------------------------------------------------------- output


def _label(subset: str) -> str:
    return "Avg" if subset == "average" else "{" + ",".join(subset) + "}"


def _method(row: dict) -> str:
    return row["method"] if row["regime"] == "strict" else f"{row['method']} (complete data)"


def _cells(rows: list[dict], metric: str, cols: list[str], fmt: str, best) -> list[list[str]]:
    top = {c: best(r[metric][c] for r in rows) for c in cols}
    out = []
    for r in rows:
        cells = []
        for c in cols:
            text = format(r[metric][c], fmt)
            if len(r["seeds"]) > 1:
                text += " +- " + format(r[f"{metric}_std"][c], fmt)
            cells.append(f"**{text}**" if len(rows) > 1 and r[metric][c] == top[c] else text)
        out.append(cells)
    return out


def _md_table(head: list[str], align: str, body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", align] + ["| " + " | ".join(cells) + " |" for cells in body]


def dataset_markdown(doc: dict, protocol: str, dataset: str) -> str:
    entry = doc["protocols"][protocol]
    label, ds = entry["label"], entry["datasets"][dataset]
    cols = doc["subsets"] + ["average"]
    head = [_label(c) for c in cols]
    align = "|---|:-:|" + "---:|" * len(cols)
    lines = [f"### {ds['name']}", ""]
    for t in ds["score_types"]:
        rows = t["rows"]
        names = [[_method(r), str(len(r["seeds"]))] for r in rows]
        for metric, title, fmt, best in (("spearman", "Spearman", ".3f", max),
                                         ("mse", "MSE (raw score units)", ".2f", min)):
            body = [n + c for n, c in zip(names, _cells(rows, metric, cols, fmt, best))]
            lines += [f"#### {ds['name']} {t['title']}: {title} - {label}", "",
                      *_md_table(["Method", "Seeds"] + head, align, body), ""]
    over = ds["average_over_score_types"]
    n_all = len(over["score_types"])
    body = []
    for r in over["rows"]:
        partial = len(r["score_types"]) < n_all
        body.append([_method(r) + (" *" if partial else ""), f"{len(r['score_types'])}/{n_all}"]
                    + [format(r["spearman"][c], ".3f") for c in cols])
    top = {c: max(r["spearman"][c] for r in over["rows"]) for c in cols}
    if len(over["rows"]) > 1:
        for cells, r in zip(body, over["rows"]):
            for i, c in enumerate(cols):
                if r["spearman"][c] == top[c]:
                    cells[2 + i] = f"**{cells[2 + i]}**"
    lines += [f"#### {ds['name']}: Spearman averaged over score types ({', '.join(over['score_types'])}; "
              f"Fisher-z) - {label}", "",
              *_md_table(["Method", "Score types"] + head, "|---|:-:|" + "---:|" * len(cols), body), "",
              "Each cell: the Fisher-z mean over score types of the seed-mean Spearman in that column (Avg: of "
              "each score type's Avg). MSE is not averaged across score types: their units differ."
              + (" *: over the score types that method has finished runs for." if any(
                  len(r["score_types"]) < n_all for r in over["rows"]) else ""), ""]
    return "\n".join(lines) + "\n"


def markdown(doc: dict) -> str:
    lines = ["# Paper tables", "",
             f"From the finished benchmark runs under `{doc['source']}` (`limssr paper-tables`). Rows: methods, "
             "trained under strict T-Miss (every training sample misses at least one modality) unless marked "
             "'complete data'. Columns: the test-time modality subsets (v: video, a: audio, f: flow) and Avg, the "
             "Fisher-z mean of Spearman (for MSE, the mean) over the 6 incomplete subsets. Cells: mean +- std over "
             "the seeds counted in 'Seeds'; the best value of each column in bold. MSE in raw score units "
             "(FS1000 PCS divided by its factor).", ""]
    for protocol, entry in doc["protocols"].items():
        lines += [f"## Model selection: {entry['label']}", ""]
        for dataset in entry["datasets"]:
            lines.append(dataset_markdown(doc, protocol, dataset))
    return "\n".join(lines)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def csv_files(doc: dict) -> dict[str, str]:
    """Relative path -> CSV text; every row names its protocol (PAPER_LABEL under the paper protocol)."""
    cols = doc["subsets"] + ["average"]
    files = {}
    for protocol, entry in doc["protocols"].items():
        for dataset, ds in entry["datasets"].items():
            for t in ds["score_types"]:
                for metric in ("spearman", "mse"):
                    header = ["protocol", "dataset", "score_type", "method", "regime", "n_seeds"] + [
                        f"{c}{s}" for c in cols for s in ("", "_std")]
                    rows = [[entry["label"], ds["name"], t["title"], r["method"], r["regime"], len(r["seeds"])]
                            + [f"{r[m][c]:.6g}" for c in cols for m in (metric, f"{metric}_std")] for r in t["rows"]]
                    name = f"{protocol}/{_slug(t['preset'])}_{metric}.csv"
                    files[name] = _csv_text(header, rows)
            over = ds["average_over_score_types"]
            header = ["protocol", "dataset", "method", "regime", "score_types"] + [f"{c}_spearman" for c in cols]
            rows = [[entry["label"], ds["name"], r["method"], r["regime"], " ".join(r["score_types"])]
                    + [f"{r['spearman'][c]:.6g}" for c in cols] for r in over["rows"]]
            files[f"{protocol}/{_slug(dataset)}_average_over_score_types.csv"] = _csv_text(header, rows)
    return files


def write_tables(out: str | Path, methods: list[str] | None = None) -> tuple[dict, Path]:
    """Build the tables from the runs under `out` and write OUT/tables/ (replacing a previous one)."""
    out = Path(out)
    doc = build(out, methods)
    files = {"tables.md": markdown(doc), "tables.json": json_text(doc)}
    for protocol, entry in doc["protocols"].items():
        for dataset in entry["datasets"]:
            files[f"{protocol}/{_slug(dataset)}.md"] = dataset_markdown(doc, protocol, dataset)
    files.update(csv_files(doc))
    target = out / "tables"
    tmp = Path(tempfile.mkdtemp(prefix=".tables.", dir=out))
    try:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".tables-old.", dir=out))
            os.replace(target, old / "tables")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return doc, target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
