"""benchmarks/paper.sh and `limssr paper-tables`: the paper's tables from benchmark trees.

Fast tests build fake run trees (results.json + selection.json, as `limssr benchmark` leaves them);
one test runs the script's smoke mode end to end (synthetic released layouts, tiny backbone, 1 epoch,
both selection protocols, all five methods), then again to check that it reuses every run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from limssr.aggregate import across_score_types, aggregate_seeds
from limssr.metrics import fisher_z_mean
from limssr.paper_tables import PAPER_LABEL, build, write_tables

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ["vaf", "va", "vf", "af", "v", "a", "f"]
LABELS = ["{v,a,f}", "{v,a}", "{v,f}", "{a,f}", "{v}", "{a}", "{f}", "Avg"]
METHODS = ["limssr", "actionmae", "gcnet", "momke", "mcmoe"]


def fake_results(dataset: str, score_type: str, seed: int, protocol: str, base: float) -> dict:
    rng = np.random.default_rng([seed, len(score_type), int(base * 100)])
    subsets = {s: {"spearman": float(np.clip(base + rng.normal(0, 0.05), -0.99, 0.99)),
                   "mse": float(10 + rng.uniform(0, 5)), "n": 8} for s in SUBSETS}
    inc = SUBSETS[1:]
    label = PAPER_LABEL if protocol == "paper" else "best epoch on a validation split"
    return {"subsets": subsets,
            "average": {"spearman": fisher_z_mean(subsets[s]["spearman"] for s in inc),
                        "mse": float(np.mean([subsets[s]["mse"] for s in inc])), "n": 48},
            "dataset": dataset, "score_type": score_type, "seed": seed,
            "protocol": {"training_missingness": "strict", "selection": label}}


def fake_run(run_dir: Path, results: dict, selection: str) -> None:
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "eval" / "results.json").write_text(json.dumps(results))
    (run_dir / "selection.json").write_text(json.dumps({"selection": selection}))


PRESETS = {"fisv-tes": ("fisv", "TES"), "fisv-pcs": ("fisv", "PCS"), "rg-ball": ("rg", "Ball")}


@pytest.fixture()
def tree(tmp_path):
    """Two protocols x three presets x {limssr, mcmoe} x seeds 1, 2; mcmoe lacks fisv-pcs under val."""
    out = tmp_path / "paper-out"
    for protocol in ("val", "paper"):
        for preset, (dataset, score_type) in PRESETS.items():
            for method, base in (("limssr", 0.7), ("mcmoe", 0.5)):
                if protocol == "val" and method == "mcmoe" and preset == "fisv-pcs":
                    continue
                for seed in (1, 2):
                    fake_run(out / protocol / preset / method / "strict" / f"seed-{seed}",
                             fake_results(dataset, score_type, seed, protocol, base), protocol)
    (out / "data").mkdir()  # other directories under OUT (smoke data, logs) are not protocols
    return out


def test_tables_from_fake_runs(tree):
    doc, target = write_tables(tree)
    assert target == tree / "tables"
    assert list(doc["protocols"]) == ["val", "paper"]
    assert doc["subsets"] == SUBSETS
    for protocol in ("val", "paper"):
        ds = doc["protocols"][protocol]["datasets"]
        assert list(ds) == ["fisv", "rg"]
        assert [t["score_type"] for t in ds["fisv"]["score_types"]] == ["TES", "PCS"]
        # rows: baselines first, LIMSSR last, as in the paper
        assert [r["method"] for r in ds["fisv"]["score_types"][0]["rows"]] == ["mcmoe", "limssr"]
        # cells: mean and std over the seeds, as `limssr benchmark` aggregates them
        row = ds["rg"]["score_types"][0]["rows"][1]
        runs = [json.loads((tree / protocol / "rg-ball" / "limssr" / "strict" / f"seed-{s}" / "eval"
                            / "results.json").read_text()) for s in (1, 2)]
        agg = aggregate_seeds(runs)
        assert row["seeds"] == [1, 2]
        for s in SUBSETS:
            assert row["spearman"][s] == pytest.approx(agg["subsets"][s]["spearman"])
            assert row["mse_std"][s] == pytest.approx(agg["subsets"][s]["mse_std"])
        assert row["spearman"]["average"] == pytest.approx(agg["average"]["spearman"])
        # the average over score types is aggregate.across_score_types of the seed means
        over = {r["method"]: r for r in ds["fisv"]["average_over_score_types"]["rows"]}
        by_type = {}
        for preset, st in (("fisv-tes", "TES"), ("fisv-pcs", "PCS")):
            res = [json.loads(p.read_text()) for p in
                   sorted((tree / protocol / preset / "limssr" / "strict").glob("seed-*/eval/results.json"))]
            by_type[st] = aggregate_seeds(res)
        want = across_score_types(by_type)["average_over_score_types"]
        assert over["limssr"]["score_types"] == ["TES", "PCS"]
        for c in SUBSETS + ["average"]:
            assert over["limssr"]["spearman"][c] == pytest.approx(want[c])
    # mcmoe has no fisv-pcs runs under val: its average covers TES only, and says so
    mc = next(r for r in doc["protocols"]["val"]["datasets"]["fisv"]["average_over_score_types"]["rows"]
              if r["method"] == "mcmoe")
    assert mc["score_types"] == ["TES"]
    val_md = (target / "val" / "fisv.md").read_text()
    assert "| mcmoe * | 1/2 |" in val_md and "| limssr | 2/2 |" in val_md

    md = (target / "tables.md").read_text()
    for label in LABELS:
        assert label in md
    for m in ("limssr", "mcmoe"):
        assert f"| {m} |" in md
    assert "+-" in md  # two seeds: mean +- std
    paper_part = md[md.index(f"## Model selection: {PAPER_LABEL}"):]
    val_part = md[:md.index(f"## Model selection: {PAPER_LABEL}")]
    headings = [line for line in paper_part.splitlines() if line.startswith("#### ")]
    assert len(headings) == 2 * 3 + 2  # Spearman + MSE per score type, one average per dataset
    assert all(PAPER_LABEL in h for h in headings)
    assert not any("PAPER" in line for line in val_part.splitlines() if line.startswith("#"))
    for path in (target / "paper").glob("*.md"):
        assert all(PAPER_LABEL in line for line in path.read_text().splitlines() if line.startswith("#### "))
    # CSV: every row names its protocol
    files = sorted(p.name for p in (target / "paper").glob("*.csv"))
    assert files == sorted(["fisv-tes_spearman.csv", "fisv-tes_mse.csv", "fisv-pcs_spearman.csv",
                            "fisv-pcs_mse.csv", "rg-ball_spearman.csv", "rg-ball_mse.csv",
                            "fisv_average_over_score_types.csv", "rg_average_over_score_types.csv"])
    for protocol in ("val", "paper"):
        for path in (target / protocol).glob("*.csv"):
            rows = list(csv.DictReader(path.open()))
            assert rows and all((r["protocol"] == PAPER_LABEL) == (protocol == "paper") for r in rows)
    spear = list(csv.DictReader((target / "paper" / "rg-ball_spearman.csv").open()))
    assert [r["method"] for r in spear] == ["mcmoe", "limssr"]
    assert {f"{s}{x}" for s in SUBSETS + ["average"] for x in ("", "_std")} <= set(spear[0])
    assert json.loads((target / "tables.json").read_text())["protocols"]["paper"]["label"] == PAPER_LABEL


def test_methods_choose_and_order_rows(tree):
    doc = build(tree, methods=["limssr"])
    rows = doc["protocols"]["paper"]["datasets"]["fisv"]["score_types"][0]["rows"]
    assert [r["method"] for r in rows] == ["limssr"]
    doc = build(tree, methods=["limssr", "mcmoe"])
    rows = doc["protocols"]["paper"]["datasets"]["rg"]["score_types"][0]["rows"]
    assert [r["method"] for r in rows] == ["limssr", "mcmoe"]


def test_a_run_under_the_wrong_protocol_is_refused(tree):
    from limssr.runs import RunError

    run = tree / "paper" / "rg-ball" / "gcnet" / "strict" / "seed-1"
    fake_run(run, fake_results("rg", "Ball", 1, "val", 0.3), "val")
    with pytest.raises(RunError, match="'val'.*'paper'"):
        build(tree)


def test_unfinished_runs_are_left_out_and_tables_are_rewritten_whole(tree):
    write_tables(tree)
    (tree / "paper" / "rg-ball" / "limssr" / "strict" / "seed-3" / "checkpoints").mkdir(parents=True)
    stale = tree / "tables" / "paper" / "rg-ball_mse.csv"
    assert stale.is_file()
    shutil.rmtree(tree / "paper" / "rg-ball")
    doc, target = write_tables(tree)
    assert list(doc["protocols"]["paper"]["datasets"]) == ["fisv"]
    assert not stale.exists() and (target / "paper" / "fisv-tes_mse.csv").is_file()
    assert not [p for p in tree.iterdir() if p.name.startswith(".tables")]


def test_no_runs_is_an_error(tmp_path):
    from limssr.runs import RunError

    with pytest.raises(RunError, match="no finished benchmark runs"):
        build(tmp_path)


def test_cli_verb(tree, capsys):
    from limssr.cli import run

    assert run(["paper-tables", str(tree), "--methods", "limssr,mcmoe"]) == 0
    printed = capsys.readouterr().out
    assert PAPER_LABEL in printed and (tree / "tables" / "tables.md").is_file()


def test_smoke_mode_end_to_end_then_reuses_every_run(tmp_path):
    out = tmp_path / "paper"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIMSSR", "SEEDS", "METHODS", "PRESETS", "PROTOCOLS", "EXTRA", "BASELINE_EXTRA",
                        "BACKBONE", "JOBS", "FS1000", "FISV", "RG")}
    env.update(SMOKE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    cmd = ["bash", str(ROOT / "benchmarks" / "paper.sh"), str(out)]

    def run():
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        return proc

    run()
    presets = ["fs1000-tes", "fisv-tes", "fisv-pcs", "rg-ball"]
    for layout in ("fs1000", "fisv", "rg"):
        assert (out / "data" / layout).is_dir()
    weights = sorted(out.glob("*/*/*/strict/seed-1/model.safetensors"))
    assert len(weights) == 2 * len(presets) * len(METHODS)
    for protocol in ("val", "paper"):
        for preset in presets:
            for m in METHODS:
                run_dir = out / protocol / preset / m / "strict" / "seed-1"
                assert json.loads((run_dir / "selection.json").read_text())["selection"] == protocol
    tables = out / "tables"
    md = (tables / "tables.md").read_text()
    for label in LABELS:
        assert label in md
    for m in METHODS:
        assert md.count(f"| {m} |") == 2 * (2 * len(presets) + 3)  # per protocol: 2 per preset, 1 per dataset
    for name in ("FS1000", "Fis-V", "RG"):
        assert f"### {name}" in md
    assert "Spearman averaged over score types (TES, PCS; Fisher-z)" in md
    paper_part = md[md.index(f"## Model selection: {PAPER_LABEL}"):]
    headings = [line for line in paper_part.splitlines() if line.startswith("#### ")]
    assert len(headings) == 2 * len(presets) + 3 and all(PAPER_LABEL in h for h in headings)
    for protocol in ("val", "paper"):
        for preset in presets:
            for metric in ("spearman", "mse"):
                rows = list(csv.DictReader((tables / protocol / f"{preset}_{metric}.csv").open()))
                assert [r["method"] for r in rows] == ["actionmae", "gcnet", "momke", "mcmoe", "limssr"]
                assert all((r["protocol"] == PAPER_LABEL) == (protocol == "paper") for r in rows)
        for dataset in ("fs1000", "fisv", "rg"):
            assert (tables / protocol / f"{dataset}.md").is_file()
            assert (tables / protocol / f"{dataset}_average_over_score_types.csv").is_file()

    # a rerun (of one preset under one protocol, to keep the test short) trains nothing: `limssr
    # benchmark` reuses every run (each model file stays as it was, and it names no run to train),
    # and the tables are written again
    before = {p: p.stat().st_mtime_ns for p in weights}
    tables_before = (tables / "tables.json").stat().st_mtime_ns
    env.update(PRESETS="fisv-tes", PROTOCOLS="val")
    run()
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/*/strict/seed-1/model.safetensors")} == before
    (log,) = [p for p in (out / "logs").glob("*-*-*.log") if "fisv-tes" in p.name and "val" in p.name]
    assert "[benchmark]" not in log.read_text(), log  # limssr benchmark names each run it trains
    assert (tables / "tables.json").stat().st_mtime_ns != tables_before
    assert json.loads((tables / "tables.json").read_text())["protocols"]["paper"]["label"] == PAPER_LABEL
