"""Training with Lightning: the data module (where masking happens), the training module, the trainer."""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from limssr.atomic import atomic_write_text
from limssr.checkpoint import SafetensorsCheckpointIO
from limssr.config import RunConfig, TrainConfig, config_from_dict
from limssr.data import SampleSet
from limssr.data.dataset import AQADataset, Batch, collate, hide
from limssr.masking import build_protocol
from limssr.metrics import mse, spearman
from limssr.subsets import all_subsets, subset_name

LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"


def make_dataset(cfg: RunConfig, data: SampleSet, samples: list, train: bool) -> AQADataset:
    """A dataset over `samples` of `data`, cut as the config says (random crop when `train`)."""
    return AQADataset(samples, data.modalities, data.dims, data.score_range, cfg.data.clip_num,
                      train=train, test_crop=cfg.data.test_crop, train_crop=cfg.data.train_crop)


def make_loader(dataset: AQADataset, batch_size: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    """Batches from in-memory samples (no file is read here); pinned memory when a GPU is used."""
    pad_to = dataset.clip_num if (dataset.train or dataset.test_crop == "center") else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=partial(collate, modalities=dataset.modalities, pad_to=pad_to),
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())


def carve_validation(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split training samples into (train, validation) with a fixed seed."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = int(round(fraction * len(samples)))
    if n_val < 1 or n_val >= len(samples):
        raise ValueError(f"data.val_fraction={fraction} leaves {n_val} of {len(samples)} training samples "
                         "for validation; choose a fraction that leaves both parts non-empty")
    val = set(order[:n_val].tolist())
    return [s for i, s in enumerate(samples) if i not in val], [s for i, s in enumerate(samples) if i in val]


def balanced_masks(available: np.ndarray, seed: int) -> np.ndarray:
    """Validation masks: the non-empty subsets in turn (shuffled), so that model selection weighs
    every subset alike; each mask is cut to what the sample has (all it has, if that leaves none)."""
    pool = np.array(all_subsets(available.shape[1]), dtype=bool)
    order = np.random.default_rng(seed).permutation(len(available))
    masks = np.zeros_like(available)
    for rank, i in enumerate(order):
        masks[i] = pool[rank % len(pool)] & available[i]
        if not masks[i].any():
            masks[i] = available[i]
    return masks


def selection_label(cfg: RunConfig) -> str:
    t = cfg.train
    if t.selection == "last":
        return f"fixed epoch count (last of {t.epochs})"
    if t.selection == "val":
        return (f"best epoch on a validation split ({cfg.data.val_fraction:.0%} of train, seed "
                f"{cfg.data.val_seed}, all subsets in turn)")
    return "PAPER PROTOCOL: best epoch chosen on the TEST set (complete modalities), as the published code"


class LimssrDataModule(L.LightningDataModule):
    """Training (and validation) data plus the training-time missingness protocol.

    The protocol is applied here, to each training batch before it moves to the device, so a hidden
    modality's values are zeroed in the data layer and never reach the model. The validation split
    (train.selection=val) is carved from the training set with a fixed seed; under the `paper`
    protocol the test set, with every modality, plays that role, as in the published code.
    """

    def __init__(self, cfg: RunConfig, data: SampleSet):
        super().__init__()
        self.cfg = cfg
        train, val = data.split("train"), None
        if cfg.train.selection == "val":
            train, val = carve_validation(train, cfg.data.val_fraction, cfg.data.val_seed)
        elif cfg.train.selection == "paper":
            val = data.split("test")
        self.train_set = make_dataset(cfg, data, train, True)
        self.val_set = make_dataset(cfg, data, val, False) if val is not None else None
        mods = data.modalities
        available = np.array([[m in s.features for m in mods] for s in train], dtype=bool)
        t = cfg.train
        self.protocol = build_protocol(t.missing, available, cfg.seed, [s.name for s in train], mods,
                                       t.missing_rate, t.complete_fraction, t.fixed_subset)
        if val is not None:
            val_avail = np.array([[m in s.features for m in mods] for s in val], dtype=bool)
            masks = val_avail if t.selection == "paper" else balanced_masks(val_avail, cfg.data.val_seed)
            self.val_masks = torch.from_numpy(masks)
        self.mask_log: list[list] = []

    def _batch_size(self, batch_size: int) -> int:
        """Per process: the configured batch is split among the data-parallel processes."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if batch_size % world:
            raise ValueError(f"train.batch_size={batch_size} must be divisible by the {world} processes")
        return batch_size // world

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.train_set, self._batch_size(self.cfg.train.batch_size), shuffle=self.cfg.train.shuffle,
                           num_workers=self.cfg.train.num_workers)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return make_loader(self.val_set, self.cfg.eval.batch_size, shuffle=False)

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is None:
            return batch
        if self.trainer.training:
            mask = self.protocol.masks(batch.index, batch.available)
            if not self.protocol.fixed_per_sample:
                epoch, step = self.trainer.current_epoch, self.trainer.global_step
                mods = self.train_set.modalities
                self.mask_log += [[epoch, step, n, subset_name(m.tolist(), mods)] for n, m in zip(batch.names, mask)]
            return hide(batch, mask)
        if self.val_set is not None and (self.trainer.validating or self.trainer.sanity_checking):
            return hide(batch, self.val_masks[batch.index])
        return batch

    def transfer_batch_to_device(self, batch: Batch, device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def fixed_masks(self) -> list[tuple[str, list[bool]]] | None:
        """Per-sample masks of protocols that never change them (None for those drawn every step)."""
        if not self.protocol.fixed_per_sample:
            return None
        idx = torch.arange(len(self.train_set))
        available = torch.tensor([[m in s.features for m in self.train_set.modalities] for s in self.train_set.samples])
        masks = self.protocol.masks(idx, available)
        return [(s.name, row.tolist()) for s, row in zip(self.train_set.samples, masks)]

    def take_mask_log(self) -> list[list]:
        rows, self.mask_log = self.mask_log, []
        return rows

    def state_dict(self) -> dict:
        return {"protocol": self.protocol.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.protocol.load_state_dict(state.get("protocol", {}))


class MaskLogWriter(L.Callback):
    """Appends the masks drawn during an epoch (protocols drawn per step) to train_masks.csv."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        rows = trainer.datamodule.take_mask_log()
        if not rows:
            return
        new = not self.path.is_file()
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["epoch", "step", "name", "shown"])
            writer.writerows(rows)


def build_model(cfg: RunConfig):
    """The method a resolved config names (LIMSSR by default), initialised; see limssr.methods."""
    from limssr.methods import build_method

    return build_method(cfg)


def lr_factor(epoch: int, epochs: int, warmup: int, decay_rate: float) -> float:
    """Linear warm-up over `warmup` epochs, then cosine from 1 to `decay_rate` (per epoch)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    span = max(1, epochs - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    return decay_rate + (1 - decay_rate) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw(params: list[torch.nn.Parameter], lr: float, weight_decay: float,
          kind: str = "adamw") -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), or with `kind="adam"` Adam (weight decay as an L2 term, as
    MCMoE's code trains); with every parameter on a GPU, the fused form (a few kernels per step rather
    than a few per group of tensors: a step there is bound by kernel launches). On the CPU, torch's default."""
    fused = True if bool(params) and all(p.device.type == "cuda" for p in params) else None
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay, fused=fused)


def apply_training_speedups(model, t: TrainConfig, precision: str) -> None:
    """The training-time settings of `train`: bf16 frozen weights (under bf16 precision), gradient
    checkpointing and compiled decoder layers. Used by training and by `limssr bench` alike."""
    if t.bf16_weights and precision.startswith("bf16"):
        model.store_frozen_weights(torch.bfloat16)
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return
    if t.gradient_checkpointing:
        base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if t.compile != "off":
        from limssr.layers import compile_decoder_layers

        compile_decoder_layers(backbone, t.compile)


class TrainingModule(L.LightningModule):
    """Optimisation of any method: its loss, AdamW, per-epoch warm-up + cosine schedule."""

    def __init__(self, cfg: RunConfig, model=None):
        super().__init__()
        self.cfg = cfg
        self.model = model if model is not None else build_model(cfg)
        self.strict_loading = False  # checkpoints hold only the trainable weights; checked below
        self.skipped_batches = 0

    def forward(self, batch: Batch):
        return self.model(batch.features, batch.mask, batch.time_mask)

    def training_step(self, batch: Batch, batch_idx: int):
        out = self(batch)
        losses = self.model.loss(out, batch.label)
        if not torch.isfinite(losses["loss"]):
            where = (f"epoch {self.current_epoch}, step {self.global_step}, samples "
                     f"{', '.join(batch.names[:4])}{'...' if len(batch) > 4 else ''}")
            if self.cfg.train.nonfinite == "skip":
                warnings.warn(f"non-finite training loss at {where}: batch skipped (train.nonfinite=skip)")
                self.skipped_batches += 1
                return None  # Lightning makes no optimizer step for this batch
            raise FloatingPointError(f"non-finite training loss at {where}; training stopped, the last "
                                     "checkpoint is kept (set train.nonfinite=skip to skip such batches)")
        self.log("loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch))
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=len(batch))
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        self.model.set_epoch(self.current_epoch)

    def on_fit_start(self) -> None:
        apply_training_speedups(self.model, self.cfg.train, str(self.trainer.precision))

    def on_validation_epoch_start(self) -> None:
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._val.append((self(batch).score.float().cpu(), batch.label.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        pred, label = torch.cat([p for p, _ in self._val]), torch.cat([y for _, y in self._val])
        if self.trainer.world_size > 1:  # every process scored its share of the validation split
            pred, label = self.all_gather(pred).flatten().cpu(), self.all_gather(label).flatten().cpu()
        pred, label = pred.numpy(), label.numpy()
        rng = float(self.cfg.data.score_range or 1.0)
        rho = spearman(pred, label)
        self.log("val/spearman", rho, prog_bar=True)
        self.log("val/mse", mse(pred * rng, label * rng), prog_bar=True)
        # what model selection reads: an epoch the method marks as not selectable (MoMKE's stage 1,
        # which scores through a head not trained yet) can never be chosen as the best
        self.log(SELECTION_METRIC, rho if self.model.selectable_epoch(self.current_epoch) else float("-inf"))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        t = self.cfg.train
        opt = adamw(params, lr=t.lr, weight_decay=t.weight_decay, kind=t.optimizer)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(lr_factor, epochs=t.epochs, warmup=t.warmup, decay_rate=t.decay_rate))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {f"model.{k}": v for k, v in self.model.trainable_state_dict().items()}
        checkpoint["limssr_config"] = self.cfg.to_dict()
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = config_from_dict(checkpoint.get("limssr_config", {}))
        if saved.model != self.cfg.model or saved.method != self.cfg.method:
            raise ValueError("the checkpoint was written for another method or model configuration; "
                             "resume with the run's own config")
        state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items()}
        self.model.load_trainable_state_dict(state, "training checkpoint")
        if "rng" in checkpoint:  # continue exactly where the interrupted run was
            set_rng_state(checkpoint["rng"])


def rng_state() -> dict:
    """Every random generator training draws from (torch, numpy, python, CUDA), as plain data."""
    import random

    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": [version, list(words), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    torch.set_rng_state(state["torch"])
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_precision(name: str, method: str = "limssr") -> str:
    """'fp32' | 'bf16' | 'auto' -> a Lightning precision string. 'auto' on a CPU is bf16 only for an
    LLM method on a CPU that computes bf16 natively: the small baselines run many times slower under
    CPU bf16 autocast (zero-fill on Fis-V shapes: 5.6 s a step against 0.2 s in fp32)."""
    if name == "fp32":
        return "32-true"
    if name == "bf16":
        return "bf16-mixed"
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_bf16() and method == "limssr" else "32-true"


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LastCheckpoint(ModelCheckpoint):
    """One safetensors file per role, replaced in place. Its state (for the best checkpoint: the best
    score so far) is restored on resume even when the run directory has moved since."""

    FILE_EXTENSION = ".safetensors"

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        if state.get("dirpath") != self.dirpath:  # moved run directory: keep the score, remap the paths
            mine = str(Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}")
            score = state.get("best_model_score")
            state.update({"dirpath": self.dirpath, "best_model_path": mine if score is not None else "",
                          "kth_best_model_path": mine if score is not None else "",
                          "best_k_models": {mine: score} if score is not None else {}, "last_model_path": ""})
        super().load_state_dict(state)


SELECTION_METRIC = "val/select"


class BestCheckpoint(LastCheckpoint):
    """The best epoch by validation Spearman (`val/select`)."""


def best_validation_score(trainer: L.Trainer) -> float:
    """The validation Spearman of the selected epoch."""
    best = next(c for c in trainer.checkpoint_callbacks if isinstance(c, BestCheckpoint))
    return float(best.best_model_score)


class TrainingTime(L.Callback):
    """Wall and CPU seconds spent training, summed over every attempt of a run (an interrupted run's
    earlier attempts included), rewritten after each epoch to `path` (JSON)."""

    def __init__(self, path: Path):
        self.path = path
        self.earlier = json.loads(path.read_text()) if path.is_file() else {"wall_seconds": 0.0, "cpu_seconds": 0.0}

    def on_train_start(self, trainer, pl_module):
        self.wall0, self.cpu0 = time.time(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module):
        record = {"wall_seconds": round(self.earlier["wall_seconds"] + time.time() - self.wall0, 1),
                  "cpu_seconds": round(self.earlier["cpu_seconds"] + time.process_time() - self.cpu0, 1),
                  "epochs": trainer.current_epoch + 1}
        atomic_write_text(self.path, json.dumps(record, indent=2) + "\n")


def is_worker_process() -> bool:
    """True in the extra processes a multi-process (DDP) run launches: they train but write nothing."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def csv_logger(run_dir: Path) -> CSVLogger:
    """CSV logs in run_dir/logs/metrics.csv; rows of an earlier attempt are kept when a run resumes
    (Lightning's writer would delete the file)."""
    logger = CSVLogger(str(run_dir), name="logs", version="")
    if is_worker_process():
        return logger
    path = Path(logger.log_dir) / "metrics.csv"
    earlier = path.read_bytes() if path.is_file() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        writer = logger.experiment  # creates the writer, which removes an existing file
    if earlier:
        path.write_bytes(earlier)
        header = earlier.decode("utf-8").splitlines()[0].split(",")
        writer.metrics_keys = sorted(header)  # later rows extend this header instead of replacing it
    return logger


def make_trainer(cfg: RunConfig, run_dir: Path, enable_progress_bar: bool = True,
                 extra_callbacks: list | None = None) -> L.Trainer:
    t = cfg.train
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
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
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn" if t.strategy == "ddp_spawn" else "popen")
    return L.Trainer(
        max_epochs=t.epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=strategy,
        precision=resolve_precision(t.precision, cfg.method), gradient_clip_val=t.grad_clip,
        logger=csv_logger(run_dir), callbacks=callbacks,
        plugins=[SafetensorsCheckpointIO()], deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=enable_progress_bar,
        enable_model_summary=False, default_root_dir=str(run_dir), num_sanity_val_steps=0,
        limit_val_batches=0 if t.selection == "last" else None,
    )
