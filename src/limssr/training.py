"""Training with Lightning: the data module (where masking happens), the LIMSSR module, the trainer."""

from __future__ import annotations

import math
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from limssr.backbone import Backbone, load_backbone
from limssr.checkpoint import SafetensorsCheckpointIO
from limssr.config import RunConfig, config_from_dict
from limssr.data import SampleSet
from limssr.data.dataset import AQADataset, Batch, collate, hide
from limssr.losses import limssr_loss
from limssr.masking import build_protocol
from limssr.model import LIMSSR
from limssr.sequence import prompt_text
from limssr.subsets import all_subsets

LAST_CHECKPOINT = "last.safetensors"


def make_dataset(cfg: RunConfig, data: SampleSet, split: str, train: bool) -> AQADataset:
    return AQADataset(data.split(split), data.modalities, data.dims, data.score_range, cfg.data.clip_num,
                      train=train, test_crop=cfg.data.test_crop)


def make_loader(dataset: AQADataset, batch_size: int, shuffle: bool, num_workers: int = 0) -> DataLoader:
    pad_to = dataset.clip_num if (dataset.train or dataset.test_crop == "center") else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=partial(collate, modalities=dataset.modalities, pad_to=pad_to),
                      persistent_workers=num_workers > 0)


class LimssrDataModule(L.LightningDataModule):
    """Training data plus the training-time missingness protocol.

    The protocol is applied here, to each training batch before it moves to the device, so a hidden
    modality's values are zeroed in the data layer and never reach the model.
    """

    def __init__(self, cfg: RunConfig, data: SampleSet):
        super().__init__()
        self.cfg = cfg
        self.train_set = make_dataset(cfg, data, "train", train=True)
        available = torch.tensor([[m in s.features for m in data.modalities] for s in self.train_set.samples])
        self.protocol = build_protocol(cfg.train.missing, available.numpy(), cfg.seed,
                                       [s.name for s in self.train_set.samples])

    def train_dataloader(self) -> DataLoader:
        return make_loader(self.train_set, self.cfg.train.batch_size, shuffle=True,
                           num_workers=self.cfg.train.num_workers)

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is not None and self.trainer.training:
            return hide(batch, self.protocol.masks(batch.index, batch.available))
        return batch

    def transfer_batch_to_device(self, batch: Batch, device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def training_masks(self) -> list[tuple[str, list[bool]]] | None:
        """The fixed per-sample masks of the strict protocol (None for protocols drawn per batch)."""
        table = getattr(self.protocol, "table", None)
        if table is None:
            return None
        return [(s.name, row.tolist()) for s, row in zip(self.train_set.samples, table)]

    def state_dict(self) -> dict:
        state = getattr(self.protocol, "state_dict", None)
        return {"protocol": state()} if state else {}

    def load_state_dict(self, state: dict) -> None:
        if "protocol" in state:
            self.protocol.load_state_dict(state["protocol"])


def build_model(cfg: RunConfig, backbone: Backbone | None = None) -> LIMSSR:
    """The LIMSSR model a resolved config describes (backbone weights loaded, heads initialised)."""
    if backbone is None:
        names = [cfg.model.prompt_names.get(m, m) for m in cfg.model.modalities]
        texts = [prompt_text(s, names) for s in all_subsets(len(names))]
        backbone = load_backbone(cfg.model.backbone, cfg.model.lora, cfg.model.train_embeddings,
                                 prompt_texts=texts, seed=cfg.seed)
    return LIMSSR(cfg.model, backbone, cfg.model.dims)


def lr_factor(epoch: int, epochs: int, warmup: int, decay_rate: float) -> float:
    """Linear warm-up over `warmup` epochs, then cosine from 1 to `decay_rate` (per epoch)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    span = max(1, epochs - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    return decay_rate + (1 - decay_rate) * 0.5 * (1 + math.cos(math.pi * progress))


class LimssrModule(L.LightningModule):
    """Optimisation of a LIMSSR model: loss, AdamW, per-epoch warm-up + cosine schedule."""

    def __init__(self, cfg: RunConfig, model: LIMSSR | None = None):
        super().__init__()
        self.cfg = cfg
        self.model = model if model is not None else build_model(cfg)
        self.strict_loading = False  # checkpoints hold only the trainable weights; checked below

    def forward(self, batch: Batch):
        return self.model(batch.features, batch.mask, batch.time_mask)

    def training_step(self, batch: Batch, batch_idx: int):
        out = self(batch)
        losses = limssr_loss(out, batch.label, self.cfg.loss)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"non-finite training loss at epoch {self.current_epoch}, step "
                                     f"{self.global_step} (batch {batch.names[:3]}...)")
        self.log("loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch))
        for name in ("mse", "triplet", "consistency"):
            self.log(f"train/{name}", losses[name], on_step=False, on_epoch=True, batch_size=len(batch))
        return losses["loss"]

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        t = self.cfg.train
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, partial(lr_factor, epochs=t.epochs, warmup=t.warmup, decay_rate=t.decay_rate))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {f"model.{k}": v for k, v in self.model.trainable_state_dict().items()}
        checkpoint["limssr_config"] = self.cfg.to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = config_from_dict(checkpoint.get("limssr_config", {}))
        if saved.model != self.cfg.model:
            raise ValueError("the checkpoint was written for another model configuration; "
                             "resume with the run's own config")
        state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items()}
        self.model.load_trainable_state_dict(state, "training checkpoint")


def resolve_precision(name: str) -> str:
    """'fp32' | 'bf16' | 'auto' -> a Lightning precision string."""
    if name == "fp32":
        return "32-true"
    if name == "bf16":
        return "bf16-mixed"
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LastCheckpoint(ModelCheckpoint):
    FILE_EXTENSION = ".safetensors"


def csv_logger(run_dir: Path) -> CSVLogger:
    """CSV logs in run_dir/logs/metrics.csv; rows of an earlier attempt are kept when a run resumes
    (Lightning's writer would delete the file)."""
    logger = CSVLogger(str(run_dir), name="logs", version="")
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
    # one file, replaced (atomically) at the end of every epoch
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    callbacks = [LastCheckpoint(dirpath=run_dir / "checkpoints", filename=LAST_CHECKPOINT.split(".")[0],
                                monitor=None, save_top_k=1, every_n_epochs=1, enable_version_counter=False),
                 *(extra_callbacks or [])]
    if enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    return L.Trainer(
        max_epochs=t.epochs, accelerator=t.accelerator, devices=t.devices,
        precision=resolve_precision(t.precision), gradient_clip_val=t.grad_clip,
        logger=csv_logger(run_dir), callbacks=callbacks,
        plugins=[SafetensorsCheckpointIO()], deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=enable_progress_bar,
        enable_model_summary=False, default_root_dir=str(run_dir), num_sanity_val_steps=0,
    )
