"""Integration: the tiny backbone trains on synthetic data (loss falls), checkpoints, resumes, evaluates."""

import csv
import json

import lightning as L
import pytest
from conftest import tiny_run_config

from limssr import runs
from limssr.checkpoint import load_training_checkpoint, load_weights
from limssr.training import lr_factor


def _epoch_losses(run_dir):
    with open(run_dir / "logs" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("loss_epoch")]
    return [float(r["loss_epoch"]) for r in rows]


def test_schedule_warms_up_then_decays_to_the_floor():
    f = [lr_factor(e, epochs=10, warmup=5, decay_rate=0.1) for e in range(10)]
    assert f[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f[5] == pytest.approx(1.0) and all(a > b for a, b in zip(f[5:], f[6:]))
    assert lr_factor(10, epochs=10, warmup=5, decay_rate=0.1) == pytest.approx(0.1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = tiny_run_config(["data.synthetic.n_train=96", "train.epochs=4"])
    run_dir, module, data = runs.train(cfg, out=tmp_path_factory.mktemp("runs") / "r", progress=False)
    return run_dir, module, data


def test_loss_falls_over_a_few_dozen_steps(trained):
    run_dir, module, _ = trained
    losses = _epoch_losses(run_dir)
    assert len(losses) == 4  # 4 epochs x 12 steps
    assert losses[-1] < 0.6 * losses[0]


def test_run_directory_contents(trained):
    run_dir, module, _ = trained
    for name in ("config.yaml", "model.safetensors", "train_masks.csv", "checkpoints/last.safetensors"):
        assert (run_dir / name).is_file(), name
    state, cfg = load_weights(run_dir / "model.safetensors")
    assert cfg["model"]["dims"] == {"video": 32, "audio": 16, "flow": 24}
    assert not any(k.startswith("backbone.") and "lora_" not in k for k in state)
    with open(run_dir / "train_masks.csv") as fh:
        rows = list(csv.DictReader(fh))
    # 19 of the 96 training samples form the validation split; strict: no training sample is complete
    assert len(rows) == 96 - 19 and all(r["shown"] not in ("", "vaf") for r in rows)
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["selection"] == "val" and selection["val_n"] == 19 and 1 <= selection["best_epoch"] <= 4
    assert (run_dir / "checkpoints" / "best.safetensors").is_file()
    ckpt = load_training_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert ckpt["epoch"] == 3 and ckpt["optimizer_states"]


def test_evaluation_files_and_schema(trained):
    run_dir, module, data = trained
    results, out_dir = runs.evaluate(run_dir, show=False)
    assert out_dir == run_dir / "eval"
    on_disk = json.loads((out_dir / "results.json").read_text())
    assert list(on_disk["subsets"]) == ["vaf", "va", "vf", "af", "v", "a", "f"]
    for entry in list(on_disk["subsets"].values()) + [on_disk["average"]]:
        assert set(entry) >= {"spearman", "mse", "n"}
    assert on_disk["subsets"]["vaf"]["n"] == 16 and on_disk["average"]["n"] == 6 * 16
    for name in ("results.md", "results.csv", "predictions.csv", "results.png"):
        assert (out_dir / name).stat().st_size > 0
    with open(out_dir / "predictions.csv") as fh:
        assert sum(1 for _ in fh) == 1 + 7 * 16
    # a second evaluation goes to a new directory, never over the first
    _, again = runs.evaluate(run_dir, show=False)
    assert again == run_dir / "eval-2"
    # the reloaded model scores exactly as the in-memory one
    assert json.loads((again / "results.json").read_text())["subsets"] == on_disk["subsets"]


def test_existing_run_is_not_overwritten(trained):
    run_dir, _, _ = trained
    with pytest.raises(runs.RunError, match="already holds a run"):
        runs.train(tiny_run_config(), out=run_dir, progress=False)


class _Crash(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated crash")


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    cfg = tiny_run_config(["train.epochs=3"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        runs.train(cfg, out=tmp_path / "r", progress=False, callbacks=[_Crash()])
    assert not (tmp_path / "r" / "model.safetensors").exists()
    assert load_training_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")["epoch"] == 1
    run_dir, module, _ = runs.train(None, resume=tmp_path / "r", progress=False)
    assert (run_dir / "model.safetensors").is_file()
    assert load_training_checkpoint(run_dir / "checkpoints" / "last.safetensors")["epoch"] == 2
    assert len(_epoch_losses(run_dir)) == 3


def test_csv_logger_on_resume_drops_rows_after_the_checkpoint(tmp_path):
    """A stop that falls after rows of a later epoch were logged: resuming from the checkpoint of
    epoch 1 drops them (training logs them again) and keeps the rest byte for byte; a fresh logger
    (no resume epoch) on an empty directory starts an empty log."""
    from limssr.training import csv_logger

    log = tmp_path / "logs" / "metrics.csv"
    log.parent.mkdir()
    rows = ["epoch,loss_step,step,val/select", "0,0.5,4,", "0,,5,0.7", "1,0.4,9,", "1,,11,0.8", "2,0.3,14,"]
    log.write_text("\n".join(rows) + "\n")
    logger = csv_logger(tmp_path, resume_epoch=1)
    assert log.read_text() == "\n".join(rows[:5]) + "\n"
    assert logger.experiment.metrics_keys == sorted(rows[0].split(","))
    csv_logger(tmp_path, resume_epoch=1)  # nothing more to drop: unchanged
    assert log.read_text() == "\n".join(rows[:5]) + "\n"
    csv_logger(tmp_path / "nowhere")  # no log yet: nothing to keep
    assert not (tmp_path / "nowhere" / "logs" / "metrics.csv").exists()
