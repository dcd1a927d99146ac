"""Honest evaluation: validation-split selection, the labelled paper protocol, seeds, score-type averages,
and the released-layout flow synth -> train -> evaluate through the CLI."""

import csv
import json

import numpy as np
import pytest
from conftest import tiny_run_config

from limssr import runs
from limssr.aggregate import across_score_types, aggregate_seeds
from limssr.cli import run
from limssr.config import load_config, preset_names
from limssr.data.loaders import balanced_masks, carve_validation
from limssr.metrics import fisher_z_mean

PUBLISHED = {  # (epochs, alpha_mse, alpha, alpha_con, dropout, decay_rate, seed, clip_num)
    "fs1000-tes": (160, 10, 1, 1, 0.15, 0.1, 42, 95), "fs1000-pcs": (100, 1, 1, 1, 0.15, 0.1, 42, 95),
    "fs1000-ss": (130, 10, 1, 1, 0.15, 0.1, 42, 95), "fs1000-tr": (90, 10, 1, 10, 0.15, 0.1, 42, 95),
    "fs1000-pe": (130, 1, 1, 1, 0.15, 0.1, 42, 95), "fs1000-co": (200, 10, 1, 10, 0.15, 0.1, 42, 95),
    "fs1000-in": (290, 1, 0.5, 1, 0.15, 0.1, 42, 95),
    "fisv-tes": (270, 10, 1, 1, 0.15, 0.1, 42, 124), "fisv-pcs": (140, 10, 1, 1, 0.15, 0.1, 42, 124),
    "rg-ball": (80, 10, 1, 1, 0.35, 0.1, 6, 68), "rg-clubs": (410, 10, 2, 1, 0.35, 0.1, 113, 68),
    "rg-hoop": (100, 10, 1, 2, 0.3, 0.01, 42, 68), "rg-ribbon": (270, 10, 1, 1, 0.35, 0.1, 42, 68),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_presets_carry_the_published_hyper_parameters(name):
    assert name in preset_names()
    cfg = load_config(preset=name, overrides=["data.path=/data"])
    got = (cfg.train.epochs, cfg.loss.alpha_mse, cfg.loss.alpha, cfg.loss.alpha_con, cfg.model.dropout,
           cfg.train.decay_rate, cfg.seed, cfg.data.clip_num)
    assert got == PUBLISHED[name]
    assert (cfg.train.lr, cfg.train.warmup, cfg.train.batch_size) == (2e-4, 5, 8)
    assert cfg.data.source == name.split("-")[0] and cfg.data.score_type.lower() == name.split("-")[1]


def test_validation_split_is_fixed_and_masks_cover_every_subset():
    samples = list(range(50))
    a, b = carve_validation(samples, 0.2, seed=0), carve_validation(samples, 0.2, seed=0)
    assert a == b and len(a[1]) == 10 and not set(a[0]) & set(a[1])
    masks = balanced_masks(np.ones((70, 3), dtype=bool), seed=0)
    assert len({tuple(m) for m in masks}) == 7 and all(masks.sum(0) == 40)
    with pytest.raises(ValueError, match="val_fraction"):
        carve_validation(samples[:2], 0.1, seed=0)


def test_paper_protocol_is_labelled_in_every_output(tmp_path):
    cfg = tiny_run_config(["train.selection=paper"])
    run_dir, module, data = runs.train(cfg, out=tmp_path / "p", progress=False)
    results, out_dir = runs.evaluate(run_dir, show=False)
    assert "PAPER PROTOCOL: best epoch chosen on the TEST set" in results["protocol"]["selection"]
    assert "PAPER PROTOCOL" in (out_dir / "results.md").read_text()
    assert "PAPER PROTOCOL" in json.loads((run_dir / "selection.json").read_text())["label"]


def test_dynamic_protocol_masks_are_recorded(tmp_path):
    cfg = tiny_run_config(["train.missing=rate", "train.missing_rate=0.4", "train.selection=last"])
    run_dir, _, _ = runs.train(cfg, out=tmp_path / "r", progress=False)
    with open(run_dir / "train_masks.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 48 and {r["epoch"] for r in rows} == {"0", "1"}
    assert all(r["shown"] for r in rows)


def test_seeds_mean_std_and_resume(tmp_path, capsys):
    cfg = tiny_run_config(["train.epochs=1", "train.selection=last"])
    root = runs.train_seeds(cfg, [1, 2], out=tmp_path / "s", progress=False, show=False)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["seeds"] == [1, 2] and summary["n_runs"] == 2
    per_seed = [json.loads((root / f"seed-{s}" / "eval" / "results.json").read_text()) for s in (1, 2)]
    vaf = [r["subsets"]["vaf"]["spearman"] for r in per_seed]
    assert summary["subsets"]["vaf"]["spearman"] == pytest.approx(np.mean(vaf))
    assert summary["subsets"]["vaf"]["spearman_std"] == pytest.approx(np.std(vaf, ddof=1))
    assert "+-" in (root / "summary.md").read_text()
    mtime = (root / "seed-1" / "model.safetensors").stat().st_mtime
    runs.train_seeds(cfg, [1, 2], out=root, progress=False, show=False)  # finished seeds are not redone
    assert (root / "seed-1" / "model.safetensors").stat().st_mtime == mtime


def test_average_over_score_types_is_fisher_z_and_labelled():
    def res(r):
        return {"subsets": {"vaf": {"spearman": r, "mse": 1.0, "n": 5}, "v": {"spearman": r / 2, "mse": 2.0, "n": 5}},
                "average": {"spearman": r / 2, "mse": 2.0, "n": 5}}

    summary = across_score_types({"TES": res(0.8), "PCS": res(0.6)})
    assert summary["average_over_score_types"]["vaf"] == pytest.approx(fisher_z_mean([0.8, 0.6]))
    assert aggregate_seeds([res(0.5), res(0.7)])["subsets"]["vaf"]["spearman"] == pytest.approx(0.6)


def test_released_layout_flow_through_the_cli(tmp_path, capsys):
    data, out = tmp_path / "rg", tmp_path / "run"
    assert run(["data", "synth", "--layout", "rg", "--small", str(data)]) == 0
    assert run(["train", "--preset", "rg-ball", "--data", str(data), "--backbone", "tiny", "--epochs", "2",
                "--out", str(out), "data.clip_num=8"]) == 0
    assert run(["evaluate", str(out)]) == 0
    assert "Spearman" in capsys.readouterr().out
    title = (out / "eval-2" / "results.md").read_text().splitlines()[0]
    assert "LIMSSR on rg Ball" in title and "best epoch on a validation split" in title
    results = json.loads((out / "eval-2" / "results.json").read_text())
    assert list(results["subsets"]) == ["vaf", "va", "vf", "af", "v", "a", "f"]
    assert results["score_type"] == "Ball" and results["score_range"] == 25.0
    assert run(["summarize", str(out), "--out", str(tmp_path / "sum")]) == 0
    assert "Average over score types (Fisher-z)" in (tmp_path / "sum" / "score_types.md").read_text()
