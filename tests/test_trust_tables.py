"""benchmarks/trust_tables.py: docs/trust.md's measured section from run trees (no training here)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ["va", "v", "a"]


def _tables():
    spec = importlib.util.spec_from_file_location("trust_tables", ROOT / "benchmarks" / "trust_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eval(run: Path, coverage: dict[str, float], name: str = "eval"):
    (run / name).mkdir(parents=True)
    iv = {s: {"coverage": c, "width": 10.0 * (3 - len(s)), "n": 100, "n_with_interval": 100} for s, c in coverage.items()}
    (run / name / "results.json").write_text(json.dumps({
        "subsets": {s: {"spearman": 0.5, "mse": 1.0, "n": 100} for s in SUBSETS}, "average_over": ["v", "a"],
        "intervals": {"target": 0.9, "scale": "none", "calibration_split": "validation split (64 samples)",
                      "subsets": iv}}))


def _trust(run: Path, gap: float):
    (run / "trust").mkdir(parents=True)
    shift = {s: {"n": 100, "shift": {"mean": 2.0, "median": 1.5, "p90": 4.0}, "shift_error_spearman": 0.3,
                 "extra_abs_error": 1.0} for s in ("v", "a")}
    fidelity = {"n": 100, "modalities": {m: {"fidelity": [0.0, 0.2 + gap], "control": [0.0, 0.2], "gap": [0.0, gap],
                                             "last_layer_gap": gap, "best_layer": 1} for m in ("video", "audio")}}
    (run / "trust" / "trust.json").write_text(json.dumps({
        "score_shift": shift, "fidelity": fidelity,
        "confidence": {"disagreement": {"va": {"heads": ["aux", "main"], "mean": 3.0, "spearman_with_abs_error": 0.4}},
                       "path2_confidence": {"video": {"confidence_when_missing": 0.6,
                                                      "mean_abs_error_of_subsets_missing_it": 5.0}}}}))


def test_tables_average_seeds_and_replace_the_measured_section(tmp_path):
    root = tmp_path / "bench"
    for seed, cov in ((1, 0.88), (2, 0.92), (3, 0.90)):
        _eval(root / "limssr" / "strict" / f"seed-{seed}", {s: cov for s in SUBSETS})
    _eval(root / "zero-fill" / "strict" / "seed-1", {s: 0.80 for s in SUBSETS})
    _eval(root / "zero-fill" / "strict" / "seed-1", {s: 0.95 for s in SUBSETS}, name="eval-2")  # the newest counts
    _trust(root / "limssr" / "strict" / "seed-1", gap=0.1)
    _trust(root / "limssr-no-pcmi" / "strict" / "seed-1", gap=0.0)
    doc = tmp_path / "trust.md"
    doc.write_text("# Trust\n\nintro\n\n## Measured on the built-in data\n\nold text\n")
    out_json = tmp_path / "t.json"
    assert _tables().main([str(root), "--doc", str(doc), "--json", str(out_json), "--preface", "At abc."]) == 0
    text = doc.read_text()
    assert text.startswith("# Trust\n\nintro\n") and "old text" not in text and "At abc." in text
    assert "| {v,a} | 90.0 +- 1.6 / 10.0 | 95.0 / 10.0 |" in text  # one seed: no spread
    assert "LIMSSR 0.0 points" in text and "zero-fill 5.0 points" in text
    assert "0.300 / 0.200 / +0.100 (max +0.100 at 1)" in text and "LIMSSR without PCMI" in text
    data = json.loads(out_json.read_text())
    assert data["intervals"]["methods"]["limssr"]["va"]["coverage"] == [0.88, 0.92, 0.90]
    assert set(data["trust"]) == {"limssr", "limssr-no-pcmi"}


def test_no_runs_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _tables().main([str(tmp_path / "empty")]) == 2
    assert "no calibrated evaluations or trust reports" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["heading"])
def test_a_doc_without_the_heading_is_refused(tmp_path, capsys, missing):
    root = tmp_path / "bench"
    _eval(root / "limssr" / "strict" / "seed-1", {s: 0.9 for s in SUBSETS})
    doc = tmp_path / "d.md"
    doc.write_text("# nothing here\n")
    assert _tables().main([str(root), "--doc", str(doc)]) == 2
    assert "has no heading" in capsys.readouterr().err and doc.read_text() == "# nothing here\n"
