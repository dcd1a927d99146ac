"""Paired bootstrap of one set of runs against another on the same test samples (limssr.paired).

Fake runs: eval/results.json and eval/predictions.csv written by report.write_results from
evaluation.subset_results, exactly as `limssr evaluate` writes them (the plots are skipped).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from limssr import report
from limssr.evaluation import Predictions, subset_results
from limssr.metrics import fisher_z_mean, mse, spearman
from limssr.paired import _boot_stats, _counts, _fisher_z_rows, paired_differences, paired_from_dirs
from limssr.subsets import all_subsets, subset_name

MODS3 = ["video", "audio", "flow"]


@pytest.fixture(autouse=True)
def _no_results_plot(monkeypatch):
    monkeypatch.setattr(report, "plot_results", lambda results, path: path)
    monkeypatch.setattr(report.plots, "plot_predictions", lambda data, out_dir, title=None: [])


def sample_names(n: int) -> list[str]:
    return [f"s{i:03d}" for i in range(n)]


def write_run(run_dir, seed: int, label, scores: dict, modalities=MODS3, names=None):
    """A run directory whose eval/ holds one evaluation: per subset, `scores[subset]` for the samples."""
    names = names or sample_names(len(label))
    preds = {}
    for subset in all_subsets(len(modalities)):
        key = subset_name(subset, modalities)
        preds[key] = Predictions(names=list(names), label=[float(x) for x in label],
                                 score=[float(x) for x in scores[key]], shown=[key] * len(names))
    results = subset_results(preds, modalities, float(np.mean(label)))
    results.update({"dataset": "fake", "modalities": modalities, "seed": seed,
                    "protocol": {"training_missingness": "strict", "selection": "last"}})
    report.write_results(results, preds, run_dir / "eval")
    return run_dir


def noisy(label, sd: float, rng, modalities=MODS3) -> dict:
    return {subset_name(s, modalities): label + rng.normal(0, sd, len(label))
            for s in all_subsets(len(modalities))}


def test_identical_predictions_give_zero_with_zero_width(tmp_path):
    rng = np.random.default_rng(0)
    refs, others = [], []
    for seed in (0, 1, 2):
        label = rng.normal(50, 10, 40)
        scores = noisy(label, 5.0, rng)
        refs.append(write_run(tmp_path / "a" / f"seed-{seed}", seed, label, scores))
        others.append(write_run(tmp_path / "b" / f"seed-{seed}", seed, label, scores))
    res = paired_differences(refs, others, n_boot=300)
    assert res["seeds"] == [0, 1, 2] and res["incomplete"] == ["va", "vf", "af", "v", "a", "f"]
    for e in list(res["subsets"].values()) + [res["average"]]:
        for f in ("spearman_diff", "spearman_lo", "spearman_hi", "mse_diff", "mse_lo", "mse_hi"):
            assert e[f] == 0.0, (f, e)
        assert not any(e["ahead"].values()) and not any(e["behind"].values())
    assert res["subsets"]["vaf"]["n"] == 40 and res["average"]["n"] == 6 * 40
    assert res["counts"]["spearman"] == {"ahead": 0, "behind": 0, "of": 6}
    # paired_from_dirs finds the same seed-* runs
    again = paired_from_dirs(tmp_path / "a", tmp_path / "b", n_boot=300)
    assert again["subsets"] == res["subsets"] and again["average"] == res["average"]


def test_small_noise_is_ahead_beyond_the_interval_everywhere(tmp_path):
    rng = np.random.default_rng(1)
    for seed in (0, 1, 2):
        label = rng.normal(50, 10, 100)
        write_run(tmp_path / "good" / f"seed-{seed}", seed, label, noisy(label, 1.0, rng))
        write_run(tmp_path / "bad" / f"seed-{seed}", seed, label, noisy(label, 10.0, rng))
    res = paired_from_dirs(tmp_path / "good", tmp_path / "bad")
    for name, e in list(res["subsets"].items()) + [("average", res["average"])]:
        assert e["spearman_lo"] > 0 and e["ahead"]["spearman"] and not e["behind"]["spearman"], name
        assert e["mse_hi"] < 0 and e["ahead"]["mse"] and not e["behind"]["mse"], name
        assert e["spearman_lo"] <= e["spearman_diff"] <= e["spearman_hi"]
        assert e["mse_lo"] <= e["mse_diff"] <= e["mse_hi"]
    assert res["counts"] == {"spearman": {"ahead": 6, "behind": 0, "of": 6}, "mse": {"ahead": 6, "behind": 0, "of": 6}}
    # the point estimate is the mean over seeds of the results.json differences
    by = lambda d: [json.loads((tmp_path / d / f"seed-{s}" / "eval" / "results.json").read_text()) for s in (0, 1, 2)]
    good, bad = by("good"), by("bad")
    assert res["average"]["mse_diff"] == pytest.approx(np.mean([g["average"]["mse"] - b["average"]["mse"]
                                                                for g, b in zip(good, bad)]))
    assert res["subsets"]["v"]["spearman_diff"] == pytest.approx(
        np.mean([g["subsets"]["v"]["spearman"] - b["subsets"]["v"]["spearman"] for g, b in zip(good, bad)]))
    # the other way round, it is behind everywhere
    rev = paired_from_dirs(tmp_path / "bad", tmp_path / "good", n_boot=300)
    assert rev["counts"]["spearman"] == {"ahead": 0, "behind": 6, "of": 6}
    assert rev["counts"]["mse"] == {"ahead": 0, "behind": 6, "of": 6}


def test_interval_covers_the_true_difference_and_has_the_right_width(tmp_path):
    """ref = y + c + e1, other = y + c + e2 with an error c both share: the true MSE difference is
    sd1^2 - sd2^2 and a paired per-sample difference (c+e1)^2 - (c+e2)^2 has variance
    2 sd1^4 + 2 sd2^4 + 4 sd_c^2 (sd1^2 + sd2^2). Over 40 fresh test sets (2 seeds of 100 samples),
    the 95% intervals must cover the truth about 95% of the time and their half-width / 1.96 must
    match that standard error: an unpaired bootstrap would be ~1.4x too wide here, one that sums
    instead of averaging the seeds 1.4x too wide, one that ignores the second seed 1.4x too narrow."""
    mods = ["video", "audio"]
    sd1, sd2, sdc, n, seeds = 2.0, 3.0, 4.0, 100, (0, 1)
    true = sd1 ** 2 - sd2 ** 2
    se = np.sqrt((2 * sd1 ** 4 + 2 * sd2 ** 4 + 4 * sdc ** 2 * (sd1 ** 2 + sd2 ** 2)) / (n * len(seeds)))
    rng = np.random.default_rng(123)
    covered, estimates, half_widths = [], [], []
    for trial in range(40):
        refs, others = [], []
        for seed in seeds:
            label = rng.normal(50, 10, n)
            common = {subset_name(s, mods): rng.normal(0, sdc, n) for s in all_subsets(2)}
            ref = {k: label + c + rng.normal(0, sd1, n) for k, c in common.items()}
            oth = {k: label + c + rng.normal(0, sd2, n) for k, c in common.items()}
            refs.append(write_run(tmp_path / f"t{trial}" / "ref" / f"seed-{seed}", seed, label, ref, mods))
            others.append(write_run(tmp_path / f"t{trial}" / "oth" / f"seed-{seed}", seed, label, oth, mods))
        res = paired_differences(refs, others, n_boot=400, seed=trial)
        for name, e in res["subsets"].items():
            covered.append(e["mse_lo"] <= true <= e["mse_hi"])
            estimates.append(e["mse_diff"])
            half_widths.append((e["mse_hi"] - e["mse_lo"]) / 2)
    coverage, ratio = float(np.mean(covered)), float(np.mean(half_widths) / 1.96 / se)
    print(f"coverage {coverage:.3f}, width ratio {ratio:.3f}, mean estimate {np.mean(estimates):.3f} vs {true}")
    assert 0.85 <= coverage <= 1.0, coverage
    assert 0.85 <= ratio <= 1.15, ratio
    assert abs(np.mean(estimates) - true) < 4 * se / np.sqrt(len(estimates) / 3), np.mean(estimates)


def test_mismatched_sample_names_are_refused_naming_the_runs(tmp_path):
    rng = np.random.default_rng(2)
    label = rng.normal(50, 10, 20)
    a = write_run(tmp_path / "a" / "seed-0", 0, label, noisy(label, 1.0, rng))
    names = sample_names(20)
    names[7] = "someone-else"
    b = write_run(tmp_path / "b" / "seed-0", 0, label, noisy(label, 1.0, rng), names=names)
    with pytest.raises(ValueError) as err:
        paired_differences([a], [b])
    msg = str(err.value)
    assert "\n" not in msg and str(a) in msg and str(b) in msg and "different test samples" in msg


def test_no_common_seed_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    label = rng.normal(50, 10, 20)
    a = write_run(tmp_path / "a" / "seed-0", 0, label, noisy(label, 1.0, rng))
    b = write_run(tmp_path / "b" / "seed-1", 1, label, noisy(label, 1.0, rng))
    with pytest.raises(ValueError, match="no seed in common"):
        paired_differences([a], [b])
    with pytest.raises(FileNotFoundError, match="no evaluated seed"):
        paired_from_dirs(tmp_path / "a", tmp_path / "nothing-here")


@pytest.mark.parametrize("ties", [True, False])
def test_vectorised_replicates_match_the_metrics_functions(ties):
    """One replicate's Spearman and MSE equal limssr.metrics on the resampled samples, with and
    without ties, absent samples (a subset a sample is not scored on) and a constant prediction."""
    rng = np.random.default_rng(4)
    n = 30
    label = rng.normal(50, 10, n)
    score = label + rng.normal(0, 5, n)
    if ties:
        label, score = np.round(label), np.round(score)
    present = rng.random(n) > 0.2
    label[~present], score[~present] = np.nan, np.nan
    idx = rng.integers(0, n, size=(50, n))
    const = np.where(present, 7.0, np.nan)
    (rho, err), (rho_c, err_c) = _boot_stats(_counts(idx, n), present, label, [score, const])
    for b in range(len(idx)):
        keep = idx[b][present[idx[b]]]
        assert rho[b] == pytest.approx(spearman(score[keep], label[keep]), abs=1e-12)
        assert err[b] == pytest.approx(mse(score[keep], label[keep]), rel=1e-12)
        assert rho_c[b] == 0.0 and err_c[b] == pytest.approx(mse(const[keep], label[keep]), rel=1e-12)
    few = _boot_stats(_counts(np.zeros((1, n), dtype=int) + np.flatnonzero(present)[0], n), present, label, [score])
    assert few[0][0][0] == 0.0  # one distinct sample drawn n times: no ranking information
    rs = np.clip(rng.normal(0.5, 0.4, size=(20, 6)), -1, 1)
    rs[0] = 1.0
    assert _fisher_z_rows(rs).tolist() == [fisher_z_mean(r) for r in rs]


def test_benchmark_comparison_writes_the_paired_section(tmp_path):
    from limssr.benchmark import write_comparison

    rng = np.random.default_rng(5)
    out = tmp_path / "bench"
    for seed in (0, 1):
        label = rng.normal(50, 10, 60)
        write_run(out / "limssr" / "strict" / f"seed-{seed}", seed, label, noisy(label, 1.0, rng))
        write_run(out / "mcmoe" / "strict" / f"seed-{seed}", seed, label, noisy(label, 8.0, rng))
        write_run(out / "zero-fill" / "complete" / f"seed-{seed}", seed, label, noisy(label, 1.0, rng))
    # a row whose test samples differ is reported as not paired, the rest still is
    label = rng.normal(50, 10, 30)
    write_run(out / "gcnet" / "strict" / "seed-0", 0, label, noisy(label, 1.0, rng))
    table = write_comparison(out)
    paired = {(p["method"], p["regime"]): p for p in table["paired"]}
    assert set(paired) == {("mcmoe", "strict"), ("zero-fill", "complete"), ("gcnet", "strict")}
    assert "different test samples" in paired[("gcnet", "strict")]["error"]
    m = paired[("mcmoe", "strict")]
    assert m["seeds"] == [0, 1] and m["counts"]["spearman"]["ahead"] == 6 and m["average"]["spearman_lo"] > 0

    saved = json.loads((out / "comparison.json").read_text())
    assert [p["method"] for p in saved["paired"]] == [p["method"] for p in table["paired"]]
    saved_m = next(p for p in saved["paired"] if p["method"] == "mcmoe")
    assert set(saved_m["subsets"]["va"]) >= {"spearman_diff", "spearman_lo", "spearman_hi", "mse_diff",
                                                       "mse_lo", "mse_hi", "n", "ahead", "behind"}
    md = (out / "comparison.md").read_text()
    assert "paired by seed on the same test samples" in md
    assert "#### Spearman (mean +- std over seeds)" in md and "against each row, subset by subset" in md
    section = md[md.index("paired by seed on the same test samples"):].splitlines()
    line = next(x for x in section if x.startswith("| mcmoe | yes | 2 |"))
    assert "ahead beyond the interval on 6 of 6 incomplete subsets / behind on 0" in line
    rows = list(csv.DictReader((out / "comparison_paired.csv").open()))
    assert {(r["method"], r["subset"]) for r in rows} >= {("mcmoe", "vaf"), ("mcmoe", "average"),
                                                         ("zero-fill", "f")}
    assert all(r["method"] != "gcnet" for r in rows)
    assert (out / "comparison_paired.png").stat().st_size > 1000


def test_a_single_modality_comparison_has_no_average_column():
    from limssr.benchmark import _csv, comparison_markdown

    nan = float("nan")
    row = {"method": "zero-fill", "regime": "complete", "seeds": [1, 2],
           "v": {"spearman": 0.6, "spearman_std": 0.02, "mse": 26.0, "mse_std": 2.0},
           "average": {"spearman": nan, "spearman_std": nan, "mse": nan, "mse_std": nan}}
    table = {"rows": [row]}
    md = comparison_markdown(table, ["v"])
    assert "| {v} |" in md and "| Avg |" not in md and "nan" not in md
    assert _csv(table, ["v"]).splitlines()[0] == "method,regime,n_seeds,v_spearman,v_spearman_std,v_mse,v_mse_std"
