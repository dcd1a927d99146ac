"""limssr.plots and `limssr plot`: the four PNGs from a run directory, the errors naming the file,
and the process's matplotlib backend left alone.

Fake runs: eval/ written by report.write_results from evaluation.subset_results (as `limssr
evaluate` writes it) and logs/metrics.csv in the sparse layout of Lightning's CSV logger (the header
and rows of a real run's log; see benchmarks/evidence/**/logs/metrics.csv).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from limssr import plots, report
from limssr.cli import main
from limssr.evaluation import Predictions, subset_results
from limssr.subsets import all_subsets, subset_name

MODS3 = ["video", "audio", "flow"]
PNG = b"\x89PNG\r\n\x1a\n"
FOUR = ["scatter.png", "residuals.png", "calibration.png", "curves.png"]


def write_log(run_dir, epochs: int = 3, validation: bool = True) -> None:
    header = "epoch,loss_epoch,loss_step,step,train/mse,val/mse,val/select,val/spearman"
    rows = [header]
    step = 0
    for e in range(epochs):
        for _ in range(2):
            step += 5
            rows.append(f"{e},,{0.4 / (e + 1):.6f},{step - 1},,,,")
        if validation:
            rows.append(f"{e},,,{step - 1},,{40.0 - e:.4f},{0.3 + 0.1 * e:.4f},{0.3 + 0.1 * e:.4f}")
        rows.append(f"{e},{0.3 / (e + 1):.6f},,{step - 1},{0.03 / (e + 1):.6f},,,")
    if not validation:
        rows = [",".join(r.split(",")[:5]) for r in rows]  # no val/* columns at all
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "logs" / "metrics.csv").write_text("\n".join(rows) + "\n")


def write_run(run_dir, n: int = 40, seed: int = 0, log: bool = True, eval_name: str = "eval"):
    rng = np.random.default_rng(seed)
    label = rng.uniform(20, 100, n)
    names = [f"s{i:03d}" for i in range(n)]
    preds = {}
    for i, subset in enumerate(all_subsets(3)):
        key = subset_name(subset, MODS3)
        preds[key] = Predictions(names=list(names), label=label.tolist(),
                                 score=(0.7 * label + 18 + rng.normal(0, 3 + i, n)).tolist(), shown=[key] * n)
    results = subset_results(preds, MODS3, float(label.mean()), resamples=200)
    results.update({"dataset": "fake", "modalities": MODS3, "seed": seed,
                    "protocol": {"training_missingness": "strict", "selection": "last"}})
    if log:
        write_log(run_dir)
    return report.write_results(results, preds, run_dir / eval_name)


def _pngs(directory, names=FOUR):
    for name in names:
        data = (directory / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name


def test_write_results_writes_the_plots_beside_the_tables(tmp_path):
    written = write_run(tmp_path / "run")
    names = [p.name for p in written]
    assert names[:5] == ["results.json", "results.md", "results.csv", "predictions.csv", "results.png"]
    assert set(FOUR) <= set(names)
    assert all(p.is_file() for p in written)
    _pngs(tmp_path / "run" / "eval")
    # without a training log beside the evaluation, no curves
    assert "curves.png" not in [p.name for p in write_run(tmp_path / "bare", log=False)]


def test_limssr_plot_writes_four_pngs(tmp_path, capsys):
    write_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "figs")])
    assert exc.value.code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "figs" / name) for name in FOUR]
    _pngs(tmp_path / "figs")


def test_plot_run_defaults_to_the_newest_eval_dir(tmp_path):
    run = tmp_path / "run"
    write_run(run)
    write_run(run, seed=1, eval_name="eval-2")
    write_run(run, seed=2, eval_name="eval-10")
    (run / "eval-10" / "scatter.png").unlink()
    written = plots.plot_run(run)
    assert [p.parent for p in written] == [run / "eval-10"] * 4
    _pngs(run / "eval-10")
    # an eval directory itself is accepted too; its run's log gives the curves
    assert [p.name for p in plots.plot_run(run / "eval-2", out=tmp_path / "two")] == FOUR


def test_no_validation_gives_a_loss_only_curve(tmp_path):
    write_run(tmp_path / "run", log=False)
    write_log(tmp_path / "run", validation=False)
    curves = plots.read_curves(tmp_path / "run" / "logs" / "metrics.csv")
    assert list(curves) == ["train loss"]
    assert curves["train loss"][0].tolist() == [0, 1, 2]
    assert curves["train loss"][1] == pytest.approx([0.3, 0.15, 0.1])
    assert [p.name for p in plots.plot_run(tmp_path / "run")] == FOUR
    full = tmp_path / "full"
    write_log(full)
    curves = plots.read_curves(full / "logs" / "metrics.csv")
    assert list(curves) == ["train loss", "val Spearman", "val MSE"]
    assert curves["val MSE"][1] == pytest.approx([40.0, 39.0, 38.0])


def test_calibration_bins_are_label_quantiles():
    y = np.arange(10.0)
    my, mp = plots.calibration_bins(y, 2 * y, bins=5)
    assert my.tolist() == [0.5, 2.5, 4.5, 6.5, 8.5] and mp.tolist() == [1.0, 5.0, 9.0, 13.0, 17.0]
    assert len(plots.calibration_bins(y[:3], y[:3], bins=5)[0]) == 3


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err and len(err.splitlines()) == 1, captured.err
    assert err.startswith("error: ")
    return err


def test_missing_predictions_is_one_line_naming_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run)
    (run / "eval" / "predictions.csv").unlink()
    err = _cli_error(["plot", str(run)], capsys)
    assert str(run / "eval" / "predictions.csv") in err
    assert str(tmp_path / "none") in _cli_error(["plot", str(tmp_path / "none")], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no evaluation" in _cli_error(["plot", str(empty)], capsys)


@pytest.mark.parametrize("text, expect", [
    ("a,b\n1,2\n", "no column subset, label, score"),
    ("subset,name,shown,label,score\nv,s1,v,12.5,abc\n", "line 2"),
    ("subset,name,shown,label,score\nv,s1,v,,12.0\n", "no labelled predictions"),  # archived: labels blanked
    ("", "no column"),
])
def test_malformed_predictions_name_the_file(tmp_path, capsys, text, expect):
    run = tmp_path / "run"
    write_run(run)
    (run / "eval" / "predictions.csv").write_text(text)
    err = _cli_error(["plot", str(run)], capsys)
    assert str(run / "eval" / "predictions.csv") in err and expect in err


def test_malformed_log_names_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run)
    (run / "logs" / "metrics.csv").write_text("step,loss\n1,2\n")
    err = _cli_error(["plot", str(run)], capsys)
    assert str(run / "logs" / "metrics.csv") in err and "epoch" in err
    # write_results does not fail an evaluation over a damaged log: it warns and skips the curves
    with pytest.warns(UserWarning, match="training curves not plotted"):
        written = write_run(run, log=False, eval_name="eval-2")
    assert "curves.png" not in [p.name for p in written]


def test_importing_the_plot_modules_leaves_the_backend_alone():
    code = ("import sys, matplotlib; matplotlib.use('svg'); before = matplotlib.get_backend(); "
            "import limssr.report, limssr.plots; "
            "assert matplotlib.get_backend() == before == 'svg', matplotlib.get_backend(); "
            "assert 'matplotlib.pyplot' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
