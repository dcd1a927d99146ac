"""Spearman, MSE and the guarded Fisher-z average."""

import math

import pytest

from limssr.evaluation import Predictions, subset_results
from limssr.metrics import fisher_z_mean, mse, spearman


def test_fisher_z_mean():
    assert fisher_z_mean([0.5]) == pytest.approx(0.5)
    assert fisher_z_mean([0.5, 0.7]) == pytest.approx(math.tanh((math.atanh(0.5) + math.atanh(0.7)) / 2))
    assert fisher_z_mean([1.0, 1.0]) == 1.0
    assert fisher_z_mean([-1.0]) == -1.0
    assert fisher_z_mean([1.0, -1.0]) == 0.0
    assert math.isfinite(fisher_z_mean([1.0, 0.2]))
    with pytest.raises(ValueError):
        fisher_z_mean([float("nan")])


def test_spearman_edge_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
    assert spearman([5, 5, 5, 5], [1, 2, 3, 4]) == 0.0  # constant predictions: no ranking
    assert spearman([1, 2], [2, 1]) == 0.0  # fewer than three samples


def test_mse_raw_units():
    assert mse([10.0, 20.0], [12.0, 16.0]) == pytest.approx((4 + 16) / 2)


def test_summary_average_excludes_the_complete_subset():
    def preds(shift):
        labels = [float(i) for i in range(10)]
        return Predictions(names=[str(i) for i in range(10)], label=labels,
                           score=[x + shift * (i % 3) for i, x in enumerate(labels)])

    all_preds = {"vaf": preds(0.0), "va": preds(1.0), "v": preds(3.0)}
    res = subset_results(all_preds, ["video", "audio", "flow"], train_mean=4.5)
    assert res["complete_subset"] == "vaf" and res["average_over"] == ["va", "v"]
    assert res["average"]["mse"] == pytest.approx((res["subsets"]["va"]["mse"] + res["subsets"]["v"]["mse"]) / 2)
    assert res["average"]["spearman"] == pytest.approx(
        fisher_z_mean([res["subsets"]["va"]["spearman"], res["subsets"]["v"]["spearman"]]))
    assert res["baseline_train_mean_mse"]["vaf"] == pytest.approx(sum((4.5 - i) ** 2 for i in range(10)) / 10)
    assert set(res["subsets"]["va"]) == {"spearman", "spearman_ci", "mse", "rl2", "n", "n_exact"}
