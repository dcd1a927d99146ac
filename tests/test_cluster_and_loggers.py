"""Experiment loggers by name, ranks read from cluster environments, and no process-wide side effects."""

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest

from limssr.cli import main
from limssr.cli import run as cli_run
from limssr.training import trainer as tr

QUICK = ["--preset", "synthetic-quick", "--backbone", "tiny", "--epochs", "1", "train.selection=last",
         "data.synthetic.n_train=16", "data.synthetic.n_test=8"]


def test_import_sets_no_environment_and_no_filters():
    code = ("import os, warnings, logging; before = list(warnings.filters); import limssr; "
            "print(int(any(k.startswith(('HF_', 'TRANSFORMERS_')) for k in os.environ)), "
            "int(warnings.filters == before))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1"]


def test_quiet_libraries_restores_filters_and_levels():
    import logging

    from limssr.runs import QUIET_LOGGERS, quiet_libraries

    log = logging.getLogger(QUIET_LOGGERS[0])
    log.setLevel(logging.DEBUG)
    before = list(warnings.filters)
    with quiet_libraries():
        assert log.level == logging.WARNING and len(warnings.filters) > len(before)
    assert warnings.filters == before and log.level == logging.DEBUG


@pytest.mark.parametrize("name,extra", [("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_logger_library_names_its_extra(tmp_path, capsys, monkeypatch, name, extra):
    monkeypatch.setattr(tr, "_installed", lambda module: False)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(out), *QUICK, f"train.loggers=[csv,{name}]"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"'{name}' needs its library" in err and f"pip install 'limssr[{extra}]'" in err
    assert not out.exists()


def test_an_unknown_logger_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "run"), *QUICK, "train.loggers=[csv,neptune]"])
    assert "'train.loggers' takes distinct names from csv, tensorboard, wandb, mlflow" in capsys.readouterr().err


def test_tensorboard_and_csv_together(tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "run"
    assert cli_run(["train", "--out", str(out), *QUICK, "train.loggers=[csv,tensorboard]"]) in (0, None)
    events = list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert "loss_epoch" in (out / "logs" / "metrics.csv").read_text().splitlines()[0]


def test_no_logger_at_all(tmp_path):
    out = tmp_path / "run"
    assert cli_run(["train", "--out", str(out), *QUICK, "train.loggers=[]"]) in (0, None)
    assert (out / "eval" / "results.json").is_file() and not (out / "logs" / "metrics.csv").exists()


SLURM = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
         "SLURM_JOB_NAME": "limssr-test", "SLURM_JOB_ID": "4242", "SLURM_NODELIST": "127.0.0.1"}


@pytest.mark.parametrize("env,rank", [
    ({**SLURM, "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}, 1),
    ({**SLURM, "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}, 0),
    ({**SLURM, "SLURM_JOB_NAME": "interactive", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}, 0),  # not srun
    ({"RANK": "3", "LOCAL_RANK": "1", "GROUP_RANK": "0", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4",
      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x"}, 3),
    ({"LOCAL_RANK": "1"}, 1),
    ({}, 0),
])
def test_the_rank_comes_from_the_cluster_environment(monkeypatch, env, rank):
    for key in list(os.environ):
        if key.startswith(("SLURM_", "TORCHELASTIC_", "LSB_", "KUBERNETES_")) or key in (
                "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tr.process_rank() == rank
    assert tr.is_worker_process() == (rank > 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_under_srun_only_rank_0_writes_the_run_directory(tmp_path):
    """Two processes started as `srun --ntasks-per-node=2` starts them (only SLURM's variables, no
    RANK): one gloo DDP run; rank 0 makes and fills the run directory, rank 1 writes nothing."""
    out = tmp_path / "run"
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in ("RANK", "LOCAL_RANK")}
    procs = []
    for rank in (0, 1):
        env = {**base, **SLURM, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "limssr.cli", "train", "--out", str(out), *QUICK, "train.strategy=ddp",
             "train.devices=2", "train.accelerator=cpu", "train.batch_size=4"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["run"]  # rank 1 made no directory of its own
    assert json.loads((out / "eval" / "results.json").read_text())["subsets"]
    assert (out / "config.yaml").is_file() and (out / "model.safetensors").is_file()
    assert "results written to" in results[0][0] and "results written to" not in results[1][0]
