"""R-l2 and the bootstrap intervals of Spearman: the metrics, results.json / results.csv / the tables,
and results written before these were added (no new keys) still reading."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from limssr import report
from limssr.aggregate import aggregate_seeds
from limssr.evaluation import Predictions, subset_results
from limssr.metrics import bootstrap_indices, fisher_z_mean, rl2, spearman, spearman_interval, spearman_replicates
from limssr.subsets import all_subsets, subset_name

MODS3 = ["video", "audio", "flow"]


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch):
    """The tables and JSON are under test here; the plots have tests/test_plots.py."""
    monkeypatch.setattr(report, "plot_results", lambda results, path: path)
    monkeypatch.setattr(report.plots, "plot_predictions", lambda data, out_dir, title=None: [])


def fake_preds(n: int = 60, seed: int = 0, noise=(2, 4, 5, 6, 8, 9, 12)) -> dict[str, Predictions]:
    rng = np.random.default_rng(seed)
    label = rng.uniform(20, 100, n)
    names = [f"s{i:03d}" for i in range(n)]
    preds = {}
    for subset, sd in zip(all_subsets(3), noise):
        key = subset_name(subset, MODS3)
        preds[key] = Predictions(names=list(names), label=label.tolist(),
                                 score=(label + rng.normal(0, sd, n)).tolist(), shown=[key] * n)
    return preds


# ------------------------------------------------------------------------------------------ R-l2


def test_rl2_against_a_hand_computed_value():
    # |y - p| = 1, 0, 2 over a range of 10: (0.1^2 + 0 + 0.2^2) / 3
    assert rl2([1.0, 2.0, 3.0], [2.0, 2.0, 5.0], 0.0, 10.0) == pytest.approx((0.01 + 0.0 + 0.04) / 3)
    assert rl2([3.0], [5.0], 1.0, 5.0) == pytest.approx(0.25)
    assert math.isnan(rl2([], [], 0.0, 1.0))
    assert math.isnan(rl2([1.0, 2.0], [1.0, 2.0], 3.0, 3.0))  # empty range
    with pytest.raises(ValueError):
        rl2([1.0], [1.0, 2.0], 0.0, 1.0)


def test_subset_results_normalise_rl2_by_the_test_labels_range():
    label = [10.0, 20.0, 30.0, 50.0]
    preds = {"vaf": Predictions(names=list("abcd"), label=label, score=[12.0, 20.0, 27.0, 50.0]),
             "v": Predictions(names=list("abcd"), label=label, score=[10.0, 24.0, 30.0, 46.0])}
    res = subset_results(preds, MODS3, train_mean=25.0)
    assert res["rl2_range"] == [10.0, 50.0]
    assert res["subsets"]["vaf"]["rl2"] == pytest.approx(((2 / 40) ** 2 + 0 + (3 / 40) ** 2 + 0) / 4)
    assert res["subsets"]["v"]["rl2"] == pytest.approx((0 + (4 / 40) ** 2 + 0 + (4 / 40) ** 2) / 4)
    assert res["average"]["rl2"] == pytest.approx(res["subsets"]["v"]["rl2"])  # the one incomplete subset
    # an explicit range (e.g. the dataset's possible scores) overrides it
    wide = subset_results(preds, MODS3, train_mean=25.0, label_range=(0.0, 100.0))
    assert wide["rl2_range"] == [0.0, 100.0]
    assert wide["subsets"]["vaf"]["rl2"] == pytest.approx(((2 / 100) ** 2 + (3 / 100) ** 2) / 4)


# ------------------------------------------------------------------------------ bootstrap intervals


def test_replicates_equal_spearman_on_each_resample_ties_included():
    rng = np.random.default_rng(3)
    label = np.round(rng.uniform(0, 10, 25))  # many ties
    pred = np.round(label + rng.normal(0, 2, 25))
    idx = bootstrap_indices(25, 40, seed=1)
    reps = spearman_replicates(pred, label, idx)
    assert reps == pytest.approx([spearman(pred[i], label[i]) for i in idx], abs=1e-12)
    present = rng.random(25) > 0.3
    reps = spearman_replicates(pred, label, idx, present)
    assert reps == pytest.approx([spearman(pred[i[present[i]]], label[i[present[i]]]) for i in idx], abs=1e-12)
    # a resample with a constant side counts 0.0, as spearman does
    assert spearman_replicates(np.ones(5), np.arange(5.0), bootstrap_indices(5, 10)).tolist() == [0.0] * 10


def test_interval_holds_the_estimate_is_deterministic_and_narrows_with_more_samples():
    def sample(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.normal(50, 10, n)
        return y + rng.normal(0, 8, n), y

    p, y = sample(80, 0)
    lo, hi = spearman_interval(p, y)
    assert lo <= spearman(p, y) <= hi
    assert spearman_interval(p, y) == [lo, hi]  # seed 0 by default: reproducible
    assert spearman_interval(p, y, seed=1) != [lo, hi]
    big_p, big_y = sample(1200, 0)
    big_lo, big_hi = spearman_interval(big_p, big_y)
    assert big_lo <= spearman(big_p, big_y) <= big_hi
    assert big_hi - big_lo < 0.5 * (hi - lo)
    assert spearman_interval([1.0, 2.0], [2.0, 1.0]) is None  # fewer than three samples


def test_subset_results_carry_intervals_and_the_average_interval():
    preds = fake_preds()
    res = subset_results(preds, MODS3, train_mean=60.0)
    for name, e in res["subsets"].items():
        lo, hi = e["spearman_ci"]
        assert lo <= e["spearman"] <= hi, name
        # one draw shared by every subset: with the same samples, the same as the subset alone
        assert e["spearman_ci"] == pytest.approx(spearman_interval(preds[name].score, preds[name].label))
    avg = res["average"]
    assert avg["spearman"] == pytest.approx(fisher_z_mean([res["subsets"][n]["spearman"] for n in res["average_over"]]))
    lo, hi = avg["spearman_ci"]
    assert lo <= avg["spearman"] <= hi
    # the average of correlated subsets is tighter than its widest subset
    assert hi - lo < max(e["spearman_ci"][1] - e["spearman_ci"][0] for e in res["subsets"].values())
    assert res["bootstrap"]["resamples"] == 2000 and res["bootstrap"]["seed"] == 0
    assert subset_results(preds, MODS3, train_mean=60.0) == res  # deterministic


def test_subsets_missing_samples_and_tiny_subsets():
    preds = fake_preds(30)
    p = preds["f"]
    preds["f"] = Predictions(names=p.names[:20], label=p.label[:20], score=p.score[:20], shown=p.shown[:20])
    res = subset_results(preds, MODS3, train_mean=60.0)
    assert res["subsets"]["f"]["n"] == 20 and res["subsets"]["f"]["spearman_ci"] is not None
    assert res["average"]["spearman_ci"] is not None
    preds["a"] = Predictions(names=p.names[:2], label=p.label[:2], score=p.score[:2], shown=p.shown[:2])
    res = subset_results(preds, MODS3, train_mean=60.0)
    assert res["subsets"]["a"]["spearman_ci"] is None and res["average"]["spearman_ci"] is None
    assert json.loads(json.dumps(res))["subsets"]["a"]["spearman_ci"] is None


# ------------------------------------------------------------------------------- files and tables


def _results(preds):
    res = subset_results(preds, MODS3, train_mean=60.0)
    res.update({"dataset": "fake", "modalities": MODS3, "seed": 0,
                "protocol": {"training_missingness": "strict", "selection": "last"}})
    return res


def test_results_json_csv_and_tables_hold_the_new_keys(tmp_path):
    preds = fake_preds()
    res = _results(preds)
    report.write_results(res, preds, tmp_path / "eval")
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    for e in list(saved["subsets"].values()) + [saved["average"]]:
        assert {"spearman", "spearman_ci", "mse", "rl2", "n"} <= set(e)
        assert len(e["spearman_ci"]) == 2
    assert saved["rl2_range"] == [min(preds["vaf"].label), max(preds["vaf"].label)]
    with open(tmp_path / "eval" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"spearman", "spearman_lo", "spearman_hi", "mse", "rl2"} <= set(rows[0])
    assert [r["key"] for r in rows] == list(saved["subsets"]) + ["average"]
    v = rows[[r["key"] for r in rows].index("v")]
    assert float(v["rl2"]) == pytest.approx(saved["subsets"]["v"]["rl2"])
    assert [float(v["spearman_lo"]), float(v["spearman_hi"])] == pytest.approx(saved["subsets"]["v"]["spearman_ci"])
    md = (tmp_path / "eval" / "results.md").read_text()
    lo, hi = saved["subsets"]["v"]["spearman_ci"]
    cell = f"{saved['subsets']['v']['spearman']:.4f} [{lo:.3f}, {hi:.3f}]"
    assert f"| {{v}} | {cell} | {saved['subsets']['v']['mse']:.2f} | {100 * saved['subsets']['v']['rl2']:.3f} |" in md
    assert "R-l2 x100" in md and "times 100" in md and "bootstrap" in md


def test_results_without_the_new_keys_still_read(tmp_path, capsys):
    preds = fake_preds()
    res = _results(preds)
    for e in list(res["subsets"].values()) + [res["average"]]:
        del e["spearman_ci"], e["rl2"]
    del res["rl2_range"], res["bootstrap"]
    md = report.markdown(res)
    assert f"| {{v}} | {res['subsets']['v']['spearman']:.4f} | {res['subsets']['v']['mse']:.2f} | - |" in md
    assert "R-l2:" not in md and "bootstrap" not in md
    report.print_table(res)
    assert "{v,a,f}" in capsys.readouterr().out
    report.write_results(res, preds, tmp_path / "eval")
    with open(tmp_path / "eval" / "results.csv", newline="") as fh:
        assert next(csv.DictReader(fh))["rl2"] == ""
    # seeds: R-l2 is averaged only when every run has it
    new = _results(fake_preds(seed=1))
    assert "rl2" not in aggregate_seeds([res, new])["subsets"]["v"]
    both = aggregate_seeds([_results(fake_preds(seed=2)), new])
    assert both["subsets"]["v"]["rl2"] == pytest.approx(
        (new["subsets"]["v"]["rl2"] + _results(fake_preds(seed=2))["subsets"]["v"]["rl2"]) / 2)
