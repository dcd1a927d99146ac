"""The Lightning trainer a run config asks for: devices, strategy, logger, callbacks."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from limssr.atomic import atomic_write_text
from limssr.checkpoint import SafetensorsCheckpointIO
from limssr.config import ConfigError, RunConfig
from limssr.precision import resolve_precision
from limssr.training.callbacks import BEST_CHECKPOINT, LAST_CHECKPOINT, SELECTION_METRIC, BestCheckpoint, LastCheckpoint
from limssr.training.datamodule import MaskLogWriter


def process_rank() -> int:
    """This process's global rank, read as Lightning reads it: from the cluster environment that
    launched the processes (SLURM under `srun`, torchelastic / `torchrun`, LSF), else from the
    variables Lightning sets in the processes it launches itself (RANK, LOCAL_RANK, NODE_RANK; the
    same ones a Kubeflow PyTorchJob sets)."""
    from lightning.fabric.plugins.environments import LSFEnvironment, SLURMEnvironment, TorchElasticEnvironment

    for env in (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment):
        if env.detect():
            return int(env().global_rank())
    return max(int(os.environ.get(k, "0") or 0) for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def is_worker_process() -> bool:
    """True in the extra processes of a multi-process (DDP) run: they train but write nothing."""
    return process_rank() > 0


def csv_logger(run_dir: Path, resume_epoch: int | None = None) -> CSVLogger:
    """CSV logs in run_dir/logs/metrics.csv. A run resuming from the checkpoint of epoch
    `resume_epoch` keeps the earlier attempt's rows up to that epoch (Lightning's writer would delete
    the file) and drops the later ones: training from there logs them again, and a row must not
    appear twice."""
    # a row per flush, so a killed run loses none of the rows its last checkpoint already covers
    logger = CSVLogger(str(run_dir), name="logs", version="", flush_logs_every_n_steps=1)
    if is_worker_process():
        return logger
    path = Path(logger.log_dir) / "metrics.csv"
    earlier = _rows_up_to(path, resume_epoch) if resume_epoch is not None and path.is_file() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        writer = logger.experiment  # creates the writer, which removes an existing file
    if earlier:
        atomic_write_text(path, earlier)
        writer.metrics_keys = sorted(earlier.splitlines()[0].split(","))  # later rows extend this header
    return logger


def _rows_up_to(path: Path, last_epoch: int) -> str:
    """The CSV log at `path` without the rows logged after epoch `last_epoch`."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or "epoch" not in rows[0]:
        return text
    col = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if not (len(r) > col and r[col].isdigit() and int(r[col]) > last_epoch)]
    if len(kept) == len(rows):
        return text
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(kept)
    return out.getvalue()


# logger -> (the limssr extra that installs it, the modules any one of which it can write with)
LOGGER_EXTRAS = {"tensorboard": ("tensorboard", ("tensorboard", "tensorboardX")),
                 "wandb": ("wandb", ("wandb",)), "mlflow": ("mlflow", ("mlflow",))}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_loggers(names: list[str]) -> None:
    """Refuse, before anything is written, a logger whose library is not installed (ConfigError
    naming the extra to install)."""
    for name in names:
        if name in LOGGER_EXTRAS and not any(_installed(m) for m in LOGGER_EXTRAS[name][1]):
            extra = LOGGER_EXTRAS[name][0]
            raise ConfigError(f"train.loggers: '{name}' needs its library; install the extra: "
                              f"pip install 'limssr[{extra}]'")


def make_loggers(cfg: RunConfig, run_dir: Path, resume_epoch: int | None = None) -> list:
    """Lightning's own loggers for `train.loggers`, all writing under (or named after) run_dir.
    Weights & Biases and MLflow read their usual environment (WANDB_PROJECT, WANDB_MODE,
    MLFLOW_TRACKING_URI, ...); without a tracking URI MLflow writes into run_dir/mlruns.
    resume_epoch: the epoch of the checkpoint a resumed run starts from (see `csv_logger`)."""
    check_loggers(cfg.train.loggers)
    loggers = []
    for name in cfg.train.loggers:
        if name == "csv":
            loggers.append(csv_logger(run_dir, resume_epoch))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tensorboard", default_hp_metric=False))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(WandbLogger(project=os.environ.get("WANDB_PROJECT", "limssr"), name=run_dir.name,
                                       save_dir=str(run_dir)))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            loggers.append(MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "limssr"),
                                        run_name=run_dir.name, tracking_uri=os.environ.get("MLFLOW_TRACKING_URI")
                                        or (run_dir.resolve() / "mlruns").as_uri()))
    return loggers


def _deterministic(wanted: bool, accelerator: str) -> bool | str:
    """Lightning's `deterministic`: on a GPU, "warn", so an op with no deterministic CUDA kernel (the
    backward of a gather, say) warns instead of stopping the run."""
    import torch

    if wanted and accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "warn"
    return wanted


def make_trainer(cfg: RunConfig, run_dir: Path, enable_progress_bar: bool = True,
                 extra_callbacks: list | None = None, resume_epoch: int | None = None) -> L.Trainer:
    t = cfg.train
    # last: one file, replaced (atomically) at the end of every epoch; best: by validation Spearman
    callbacks = [LastCheckpoint(dirpath=run_dir / "checkpoints", filename=LAST_CHECKPOINT.split(".")[0],
                                monitor=None, save_top_k=1, every_n_epochs=1, enable_version_counter=False),
                 MaskLogWriter(run_dir / "train_masks.csv"), *(extra_callbacks or [])]
    if t.selection != "last":
        # before `last`, so that the state saved into last.safetensors already holds this epoch's best
        callbacks.insert(0, BestCheckpoint(dirpath=run_dir / "checkpoints", filename=BEST_CHECKPOINT.split(".")[0],
                                           monitor=SELECTION_METRIC, mode="max", save_top_k=1,
                                           enable_version_counter=False))
    if enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    strategy = t.strategy
    if strategy in ("ddp", "ddp_spawn"):
        # a batch need not show every modality, so some projections get no gradient in a process
        strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn" if t.strategy == "ddp_spawn" else "popen")
    return L.Trainer(
        max_epochs=t.epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=strategy,
        precision=resolve_precision(t.precision, cfg.method), gradient_clip_val=t.grad_clip,
        logger=make_loggers(cfg, run_dir, resume_epoch) or False, callbacks=callbacks,
        plugins=[SafetensorsCheckpointIO()], deterministic=_deterministic(t.deterministic, t.accelerator),
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=enable_progress_bar,
        enable_model_summary=False, default_root_dir=str(run_dir), num_sanity_val_steps=0,
        limit_val_batches=0 if t.selection == "last" else None,
    )
