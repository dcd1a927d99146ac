"""Crash and resume: a run killed with SIGKILL at an arbitrary step and resumed with
`limssr train --resume` ends with exactly the metrics of an uninterrupted run (deterministic mode, CPU)."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from limssr.checkpoint import load_training_checkpoint

CONFIG = """\
seed: 11
data: {clip_num: 6, val_fraction: 0.25, synthetic: {n_train: 96, n_test: 24, clips: 8, dims: {video: 32, audio: 16, flow: 24}}}
model: {backbone: tiny}
train: {epochs: 6, warmup: 1, deterministic: true, selection: val}
"""


def _cli(*args):
    return [sys.executable, "-m", "limssr.cli", *args]


def _results(run_dir):
    return json.loads((run_dir / "eval" / "results.json").read_text())


def _log_rows(run_dir):
    """(epoch, step, the logged keys and their values) of each row of logs/metrics.csv."""
    with (run_dir / "logs" / "metrics.csv").open(newline="") as fh:
        return [(r["epoch"], r["step"], tuple(sorted((k, v) for k, v in r.items() if v and k not in ("epoch", "step"))))
                for r in csv.DictReader(fh)]


def _validated(row):
    return any(k == "val/select" for k, _ in row[2])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_stop_then_resume_gives_the_same_final_metrics(tmp_path, sig):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    whole = tmp_path / "whole"
    subprocess.run(_cli("train", "--config", str(cfg), "--out", str(whole)), check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli("train", "--config", str(cfg), "--out", str(killed)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = killed / "checkpoints" / "last.safetensors"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file() and load_training_checkpoint(ckpt)["epoch"] >= 1:
            break
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.4))  # somewhere inside a later epoch
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(sig)
    err = proc.communicate(timeout=300)[1]
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: a graceful stop that says how to go on
        assert proc.returncode == 130, err
        assert f"interrupted; resume with `limssr train --resume {killed}`" in err
    assert not (killed / "model.safetensors").exists()
    stopped_at = load_training_checkpoint(ckpt)["epoch"]

    subprocess.run(_cli("train", "--resume", str(killed)), check=True, capture_output=True, timeout=600)
    a, b = _results(whole), _results(killed)
    assert a["subsets"] == b["subsets"] and a["average"] == b["average"], (stopped_at, a["average"], b["average"])
    assert json.loads((whole / "selection.json").read_text()) == json.loads((killed / "selection.json").read_text())
    # the training log: no row twice, and every validation row of the uninterrupted run, equal
    rows = _log_rows(killed)
    assert len(rows) == len(set(rows)), [r for r in rows if rows.count(r) > 1]
    assert [r for r in rows if _validated(r)] == [r for r in _log_rows(whole) if _validated(r)]
    print(f"stopped ({sig.name}) after epoch {stopped_at}")
    for name, r in (("uninterrupted", a), ("killed+resumed", b)):
        print(f"{name}: " + " ".join(f"{k}={v['spearman']:.10f}/{v['mse']:.6f}" for k, v in r["subsets"].items())
              + f" average={r['average']['spearman']:.10f}/{r['average']['mse']:.6f}")
