"""Runs are reused only when they are the run asked for, and resuming keeps the selection state."""

import json
import shutil

import lightning as L
import pytest
from conftest import tiny_run_config

from limssr import runs
from limssr.benchmark import run_benchmark
from limssr.checkpoint import load_training_checkpoint

FAST = ["data.synthetic.n_train=24", "data.synthetic.n_test=8", "train.epochs=1", "train.selection=last"]


def test_seeds_refuse_a_finished_run_of_another_config_and_name_the_keys(tmp_path):
    out = tmp_path / "S"
    runs.train_seeds(tiny_run_config(FAST), [1], out=out, progress=False, show=False)
    before = (out / "summary.json").read_text()
    # the same request again: reused, nothing retrained
    mtime = (out / "seed-1" / "model.safetensors").stat().st_mtime
    runs.train_seeds(tiny_run_config(FAST), [1], out=out, progress=False, show=False)
    assert (out / "seed-1" / "model.safetensors").stat().st_mtime == mtime
    # another method and epoch count: refused, naming both keys; nothing overwritten
    other = tiny_run_config(FAST + ["method=zero-fill", "train.epochs=2"])
    with pytest.raises(runs.RunError, match=r"another configuration .*method: 'limssr' -> 'zero-fill'.*train\.epochs: 1 -> 2"):
        runs.train_seeds(other, [1], out=out, progress=False, show=False)
    # other data (more training samples): refused by the data fingerprint
    with pytest.raises(runs.RunError, match=r"data\.synthetic\.n_train: 24 -> 32.*the data \(fingerprint"):
        runs.train_seeds(tiny_run_config(FAST + ["data.synthetic.n_train=32"]), [1], out=out, progress=False, show=False)
    assert (out / "summary.json").read_text() == before
    assert (out / "seed-1" / "model.safetensors").stat().st_mtime == mtime


def test_the_fingerprint_sees_a_change_the_config_does_not(tmp_path, small_data):
    cfg = runs.resolve(tiny_run_config(FAST), small_data)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / runs.CONFIG_FILE).write_text(cfg.to_yaml())
    runs.write_data_record(run_dir, small_data)
    runs.check_same_run(run_dir, cfg, small_data)  # same config, same data: fine
    small_data.splits["test"][0].features["video"][0, 0] += 1.0  # one value of one feature file
    try:
        with pytest.raises(runs.RunError, match="the data"):
            runs.check_same_run(run_dir, cfg, small_data)
    finally:
        small_data.splits["test"][0].features["video"][0, 0] -= 1.0


def test_benchmark_refuses_a_finished_run_of_another_config(tmp_path):
    base = tiny_run_config(FAST)
    run_benchmark(base, ["zero-fill"], ["strict"], [1], tmp_path / "b", progress=False)
    with pytest.raises(runs.RunError, match=r"zero-fill/strict/seed-1' holds a run of another configuration .*train\.lr"):
        run_benchmark(base, ["zero-fill"], ["strict"], [1], tmp_path / "b", progress=False,
                      baseline_overrides=["train.lr=1e-3"])


def test_a_failed_start_is_moved_aside_and_retried(tmp_path):
    out = tmp_path / "S"
    (out / "seed-1").mkdir(parents=True)
    (out / "seed-1" / "config.yaml").write_text("leftover of a start that failed\n")
    runs.train_seeds(tiny_run_config(FAST), [1], out=out, progress=False, show=False)
    assert (out / "seed-1" / "model.safetensors").is_file()
    assert (out / "seed-1.failed" / "config.yaml").read_text() == "leftover of a start that failed\n"


class _Crash(RuntimeError):
    pass


class _StopAfterEpochs(L.Callback):
    """A crash at the start of epoch `n` (as a killed process: the checkpoint of epoch n-1 stays)."""

    def __init__(self, n):
        self.n = n

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.n:
            raise _Crash


def _best_state(ckpt):
    state = load_training_checkpoint(ckpt)["callbacks"]
    (best,) = [v for k, v in state.items() if "val/select" in k]
    return best


def test_resume_keeps_the_best_score_so_far(tmp_path):
    cfg = tiny_run_config(["data.synthetic.n_train=32", "data.synthetic.n_test=8", "train.epochs=3",
                           "train.selection=val", "data.val_fraction=0.25", "train.deterministic=true"])
    whole = runs.train(cfg, out=tmp_path / "whole", progress=False)[0]
    with pytest.raises(_Crash):
        runs.train(cfg, out=tmp_path / "cut", progress=False, callbacks=[_StopAfterEpochs(1)])
    cut = tmp_path / "cut"
    # the last checkpoint (after epoch 1) already holds epoch 1's validation score as the best so far
    metrics = (cut / "logs" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    vals = [float(r.split(",")[header.index("val/select")]) for r in metrics[1:] if r.split(",")[header.index("val/select")]]
    assert _best_state(cut / "checkpoints" / "last.safetensors")["best_model_score"] == pytest.approx(max(vals))
    # resumed from a moved directory: the selection is the uninterrupted run's
    moved = tmp_path / "moved"
    shutil.move(str(cut), str(moved))
    runs.train(None, resume=moved, progress=False)
    assert json.loads((moved / "selection.json").read_text()) == json.loads((whole / "selection.json").read_text())
    with pytest.raises(runs.RunError, match="has finished training already"):
        runs.train(None, resume=moved, progress=False)
    timing = json.loads((moved / "timing.json").read_text())
    assert timing["epochs"] == 3 and timing["cpu_seconds"] > 0
