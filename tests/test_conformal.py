"""Conformal score intervals: coverage where the true noise is known, per-pattern widths, too few
calibration samples, the head-scaled variant, and the intervals end to end (evaluate, predict, API)."""

import csv
import json

import numpy as np
import pytest
from conftest import DIMS, quick_train_args

from limssr.cli import run
from limssr.conformal import Calibration, ConformalError, apply, calibrate, interval_results, min_calibration
from limssr.evaluation import Predictions

Z90 = 1.6448536  # standard normal 95th percentile: a 90% two-sided interval is +- Z90 sigma


def _preds(rng, n: int, sigma: dict[str, float], heads_sigma: bool = False) -> dict[str, Predictions]:
    """An oracle model (score = the noise-free truth) on labels with known Gaussian noise, per
    pattern; with `heads_sigma` the noise of each sample is its heads' disagreement."""
    out = {}
    for pattern, s in sigma.items():
        truth = rng.uniform(20, 110, n)
        scale = rng.uniform(0.5, 4.0, n) if heads_sigma else np.full(n, s)
        label = truth + rng.standard_normal(n) * scale
        heads = {"main": list(truth + scale / 2), "aux": list(truth - scale / 2)} if heads_sigma else {}
        out[pattern] = Predictions(names=[f"{pattern}{i}" for i in range(n)], label=list(label), score=list(truth),
                                   heads=heads, shown=[pattern] * n)
    return out


def test_coverage_and_width_match_the_known_noise_per_pattern():
    rng = np.random.default_rng(0)
    sigma = {"vaf": 1.0, "v": 3.0}  # less shown, noisier
    cal = calibrate(_preds(rng, 400, sigma), coverage=0.9)
    test = _preds(rng, 4000, sigma)
    apply(cal, test)
    res = interval_results(cal, test)
    for pattern, s in sigma.items():
        entry = res["subsets"][pattern]
        assert entry["n_with_interval"] == 4000 and entry["n_calibration"] == {pattern: 400}
        assert abs(entry["coverage"] - 0.9) < 0.03
        assert entry["width"] == pytest.approx(2 * Z90 * s, rel=0.12)
    assert res["target"] == 0.9 and res["scale"] == "none"


def test_a_pattern_with_too_few_calibration_samples_gets_no_interval():
    rng = np.random.default_rng(1)
    assert min_calibration(0.9) == 9 and min_calibration(0.95) == 19 and min_calibration(0.8) == 4
    cal = calibrate(_preds(rng, 8, {"va": 1.0}) | _preds(rng, 9, {"v": 1.0}), coverage=0.9)
    assert cal.quantile("va") is None and cal.quantile("v") == max(cal.scores["v"])  # 9th of 9
    assert cal.quantile("f") is None  # never calibrated
    test = _preds(rng, 5, {"va": 1.0, "v": 1.0})
    apply(cal, test)
    res = interval_results(cal, test)
    assert res["subsets"]["va"]["coverage"] is None and "fewer than 9 calibration samples" in res["subsets"]["va"]["note"]
    assert test["va"].lo == [None] * 5 and all(lo < s < hi for lo, s, hi in zip(test["v"].lo, test["v"].score,
                                                                                test["v"].hi))


def test_head_scaled_intervals_cover_and_follow_the_difficulty():
    rng = np.random.default_rng(2)
    cal = calibrate(_preds(rng, 600, {"vaf": 0}, heads_sigma=True), coverage=0.9, scale="heads")
    test = _preds(rng, 4000, {"vaf": 0}, heads_sigma=True)
    apply(cal, test)
    p = test["vaf"]
    inside = [lo <= y <= hi for y, lo, hi in zip(p.label, p.lo, p.hi)]
    assert abs(np.mean(inside) - 0.9) < 0.03
    width = np.array(p.hi) - np.array(p.lo)
    disagreement = np.abs(np.array(p.heads["main"]) - np.array(p.heads["aux"]))
    assert np.corrcoef(width, disagreement)[0, 1] > 0.99  # wider where the heads disagree
    # scale="none" on the same heteroscedastic data: the same coverage on average, one width for all
    flat = calibrate(_preds(rng, 600, {"vaf": 0}, heads_sigma=True), coverage=0.9)
    apply(flat, test)
    assert np.ptp(np.array(test["vaf"].hi) - np.array(test["vaf"].lo)) < 1e-9


def test_heads_scale_needs_two_heads_and_a_bad_calibration_file_is_named():
    rng = np.random.default_rng(3)
    with pytest.raises(ConformalError, match="needs a method with two heads"):
        calibrate(_preds(rng, 20, {"v": 1.0}), scale="heads")
    with pytest.raises(ConformalError, match="coverage must be a number strictly between 0 and 1"):
        calibrate(_preds(rng, 20, {"v": 1.0}), coverage=1.5)
    with pytest.raises(ConformalError, match="cal.json: not a limssr calibration"):
        Calibration.from_dict({"coverage": 0.9}, "cal.json")
    cal = calibrate(_preds(rng, 20, {"v": 1.0}))
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.scores == cal.scores and again.quantile("v", 0.8) == cal.quantile("v", 0.8)


QUICK = quick_train_args(n_train=60, n_test=12)


@pytest.mark.parametrize("method", ["limssr", "zero-fill"])
def test_evaluate_and_predict_carry_intervals(tmp_path, method):
    out = tmp_path / "run"
    assert run(["train", "--out", str(out), "--method", method, *QUICK, "train.selection=val"]) == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    iv = results["intervals"]
    assert iv["target"] == 0.9 and set(iv["subsets"]) == set(results["subsets"])
    for entry in iv["subsets"].values():  # 12 validation samples >= 9: every pattern has intervals
        assert entry["n_with_interval"] == entry["n"] == 12 and 0 <= entry["coverage"] <= 1 and entry["width"] > 0
    assert (out / "eval" / "conformal.json").is_file() and (out / "eval" / "intervals.png").stat().st_size > 0
    with open(out / "eval" / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert all(float(r["lo"]) <= float(r["score"]) <= float(r["hi"]) for r in rows)
    assert "interval cov. / width" in (out / "eval" / "results.md").read_text()

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    np.savez(inputs / "only_flow.npz", flow=rng.standard_normal((9, DIMS["flow"])).astype(np.float32))
    np.savez(inputs / "complete.npz", **{m: rng.standard_normal((8, d)).astype(np.float32) for m, d in DIMS.items()})
    csv_out = tmp_path / "p.csv"
    assert run(["predict", str(out), str(inputs), "--out", str(csv_out)]) == 0
    with open(csv_out) as fh:
        pred = {r["name"]: r for r in csv.DictReader(fh)}
    cal = Calibration.from_dict(json.loads((out / "eval" / "conformal.json").read_text()))
    for name, pattern in (("only_flow", "f"), ("complete", "vaf")):
        r = pred[name]
        assert float(r["hi"]) - float(r["lo"]) == pytest.approx(2 * cal.quantile(pattern), abs=2e-3)
    wide = tmp_path / "p99.csv"
    assert run(["predict", str(out), str(inputs / "complete.npz"), "--out", str(wide), "--coverage", "0.5"]) == 0
    narrow = next(csv.DictReader(open(wide)))
    assert float(narrow["hi"]) - float(narrow["lo"]) <= float(pred["complete"]["hi"]) - float(pred["complete"]["lo"])

    import limssr

    scorer = limssr.load(out)
    score, lo, hi = scorer.intervals({"flow": rng.standard_normal((9, DIMS["flow"])).astype(np.float32)})
    assert lo[0] < score[0] < hi[0]


def test_a_run_without_a_validation_split_says_why_it_has_no_intervals(tmp_path):
    out = tmp_path / "run"
    assert run(["train", "--out", str(out), *QUICK, "train.selection=last"]) == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert "train.selection=last holds out no calibration split" in results["intervals"]["why_none"]
    assert "No score intervals" in (out / "eval" / "results.md").read_text()
    import limssr

    with pytest.raises(ConformalError, match="no calibration"):
        limssr.load(out).intervals({"flow": np.zeros((4, DIMS["flow"]), np.float32)})


def test_a_calibration_split_of_its_own_is_never_trained_or_selected_on(tmp_path):
    from limssr.data import load_data
    from limssr.data.loaders import training_parts
    from limssr.runs import read_run_config

    out = tmp_path / "run"
    assert run(["train", "--out", str(out), *QUICK, "train.selection=val", "data.calibration_fraction=0.25"]) == 0
    iv = json.loads((out / "eval" / "results.json").read_text())["intervals"]
    assert iv["calibration_split"].startswith("calibration split (15 samples held out from training and model selection")
    cfg = read_run_config(out)
    train, val, cal = training_parts(cfg, load_data(cfg).split("train"))
    assert len(cal) == 15 and len(val) == 9 and len(train) == 36
    names = {s.name for s in cal}
    assert not names & {s.name for s in train + val}
    with open(out / "train_masks.csv") as fh:
        assert not names & {row[0] for row in csv.reader(fh)}
    with open(out / "eval" / "predictions.csv") as fh:  # 15 calibration samples >= 9: every pattern has intervals
        assert all(r["lo"] and r["hi"] for r in csv.DictReader(fh))
