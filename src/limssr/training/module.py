"""The Lightning training module: optimiser, schedule, the training and validation steps of any method."""

from __future__ import annotations

import math
import warnings
from functools import partial

import lightning as L
import torch

from limssr.config import RunConfig, TrainConfig, config_from_dict
from limssr.data.dataset import Batch
from limssr.kernels import compile_decoder_layers
from limssr.methods import build_method
from limssr.metrics import mse, spearman
from limssr.training.callbacks import SELECTION_METRIC
from limssr.training.rng import rng_state, set_rng_state


def build_model(cfg: RunConfig):
    """The method a resolved config names (LIMSSR by default), initialised; see limssr.methods."""
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
    checkpointing and compiled decoder layers. Used by training and by `limssr speed` alike."""
    if t.bf16_weights and precision.startswith("bf16"):
        model.store_frozen_weights(torch.bfloat16)
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return
    if t.gradient_checkpointing:
        base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if t.compile != "off":
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
