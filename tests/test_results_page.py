"""benchmarks/results_page.py: the tables of docs/results.md from run trees (no training here)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]


def _page():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "benchmarks" / "results_page.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(run: Path, seed: int, labels: np.ndarray, scores: dict[str, np.ndarray], cpu: float = 3600.0):
    """A run directory as `limssr evaluate` leaves it: results.json, predictions.csv, timing.json."""
    (run / "eval").mkdir(parents=True)
    subsets = {}
    lines = ["subset,name,shown,label,score"]
    for subset, s in scores.items():
        subsets[subset] = {"spearman": float(spearmanr(labels, s)[0]), "mse": float(np.mean((labels - s) ** 2)),
                           "n": len(labels)}
        lines += [f"{subset},p{i},{subset},{labels[i]:.6f},{s[i]:.6f}" for i in range(len(labels))]
    incomplete = [c for c in scores if len(c) < max(len(k) for k in scores)]
    average = {"spearman": float(np.tanh(np.mean([np.arctanh(subsets[c]["spearman"]) for c in incomplete])))
               if incomplete else float("nan"),
               "mse": float(np.mean([subsets[c]["mse"] for c in incomplete])) if incomplete else float("nan"),
               "n": len(labels)}
    (run / "eval" / "results.json").write_text(json.dumps(
        {"subsets": subsets, "average": average, "average_over": incomplete, "seed": seed}))
    (run / "eval" / "predictions.csv").write_text("\n".join(lines) + "\n")
    (run / "config.yaml").write_text("data: {source: synthetic}\n")
    (run / "timing.json").write_text(json.dumps({"wall_seconds": cpu / 2, "cpu_seconds": cpu, "epochs": 1}))


def test_tables_rank_pair_and_give_a_verdict(tmp_path):
    page = _page()
    rng = np.random.default_rng(0)
    labels = rng.normal(size=200)
    for seed in (1, 2):
        near = {c: labels + 0.1 * rng.normal(size=200) for c in ("va", "v", "a")}
        far = {c: labels + 2.0 * rng.normal(size=200) for c in ("va", "v", "a")}
        mid = {c: labels + 0.1 * rng.normal(size=200) for c in ("va", "v", "a")}
        _run(tmp_path / "results" / "limssr" / "strict" / f"seed-{seed}", seed, labels, near, cpu=7200.0)
        _run(tmp_path / "results" / "zero-fill" / "strict" / f"seed-{seed}", seed, labels, far)
        _run(tmp_path / "results" / "gcnet" / "complete" / f"seed-{seed}", seed, labels, mid)
        # one modality (Fis-V): the headline is the only subset
        _run(tmp_path / "fisv-vst" / "tes" / "limssr" / "complete" / f"seed-{seed}", seed, labels,
             {"v": labels + 2.0 * rng.normal(size=200)})
        _run(tmp_path / "fisv-vst" / "tes" / "zero-fill" / "complete" / f"seed-{seed}", seed, labels,
             {"v": labels + 0.1 * rng.normal(size=200)})
        # the factors' base row is the benchmark's LIMSSR; the interaction rows pair with its own LIMSSR
        _run(tmp_path / "factors" / "random-init" / f"seed-{seed}", seed, labels, far)
        _run(tmp_path / "interaction" / "limssr" / "strict" / f"seed-{seed}", seed, labels, far)
        _run(tmp_path / "factors" / "interaction-random-init" / f"seed-{seed}", seed, labels, near)
        _run(tmp_path / "fisv-vst" / "factors-tes" / "random-init" / "limssr" / "complete" / f"seed-{seed}", seed,
             labels, {"v": labels + 0.1 * rng.normal(size=200)})
    (tmp_path / "fisv-vst" / "ridge-tes.json").write_text(json.dumps({"test_spearman": 0.5, "test_mse": 3.0}))

    md, data = page.build(tmp_path)
    builtin = {(r["method"], r["regime"]): r for r in data["builtin"]["rows"]}
    assert list(builtin)[0] == ("limssr", "strict") and builtin[("limssr", "strict")]["reference"]
    assert page.verdict(builtin[("zero-fill", "strict")]["paired"]) == "LIMSSR ahead"
    assert page.verdict(builtin[("gcnet", "complete")]["paired"]) == "within noise"
    fisv = {r["method"]: r for r in data["fisv-tes"]["rows"]}
    assert page.verdict(fisv["zero-fill"]["paired"]) == "LIMSSR behind"
    assert np.isfinite(fisv["limssr"]["spearman"])  # the single subset, not the nan average
    head = {h["benchmark"]: h for h in data["headline"]}
    assert head["Built-in data (additive score), T-Miss"]["strongest"]["method"] == "gcnet"
    assert head["Fis-V TES (video only)"]["verdict"] == "LIMSSR behind"
    factors = {r["row"]: r for r in data["factors"]}
    assert factors["base"]["cpu_hours"] == 2.0 and factors["random-init"]["paired"]["spearman_hi"] < 0
    assert factors["base"]["dir"].endswith("results/limssr/strict")
    assert factors["interaction-base"]["dir"].endswith("interaction/limssr/strict")
    assert factors["interaction-random-init"]["paired"]["spearman_lo"] > 0  # against interaction-base
    fisv_factors = {r["row"]: r for r in data["factors-fisv"]}  # base: the Fis-V TES LIMSSR runs
    assert fisv_factors["base"]["dir"].endswith("tes/limssr/complete")
    assert fisv_factors["random-init"]["paired"]["spearman_lo"] > 0
    assert "ridge probe" in md and "GDLT, published | - | - | 0.685" in md
    assert md.index("### Headline") < md.index("### Fis-V TES")


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert _page().main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: no finished runs under '{tmp_path}'"
