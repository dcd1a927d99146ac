"""Shared fixtures: small synthetic data and the tiny random-init backbone."""

from __future__ import annotations

import pytest
import torch

from limssr.backbone import load_backbone
from limssr.config import ModelConfig, RunConfig, SyntheticConfig, apply_overrides, config_from_dict
from limssr.data.synthetic import generate
from limssr.methods.limssr import LIMSSR
from limssr.sequence import prompt_text
from limssr.subsets import all_subsets

DIMS = {"video": 32, "audio": 16, "flow": 24}
PROMPT_NAMES = ["visual", "audio", "flow"]


def quick_train_args(n_train: int, n_test: int) -> list[str]:
    """`limssr train` arguments for a one-epoch tiny-backbone run on small synthetic data of DIMS."""
    return ["--preset", "synthetic-quick", "--backbone", "tiny", "train.epochs=1", f"data.synthetic.n_train={n_train}",
            f"data.synthetic.n_test={n_test}",
            f"data.synthetic.dims={{video: {DIMS['video']}, audio: {DIMS['audio']}, flow: {DIMS['flow']}}}"]


def tiny_run_config(overrides: list[str] | None = None) -> RunConfig:
    """A run config on small synthetic data with the tiny backbone, plus `key=value` overrides."""
    base = {
        "name": "test",
        "data": {"clip_num": 6, "synthetic": {"n_train": 48, "n_test": 16, "clips": 8, "dims": dict(DIMS)}},
        "model": {"backbone": "tiny"},
        "train": {"epochs": 2, "warmup": 1, "log_every_n_steps": 1},
    }
    return config_from_dict(apply_overrides(base, overrides or []))


@pytest.fixture(scope="session")
def tiny_backbone_factory():
    texts = [prompt_text(s, PROMPT_NAMES) for s in all_subsets(3)]

    def make(**kwargs):
        cfg = ModelConfig(backbone="tiny", **kwargs)
        return load_backbone("tiny", cfg.lora, cfg.train_embeddings, prompt_texts=texts, seed=0,
                             attention=cfg.attention), cfg

    return make


@pytest.fixture()
def tiny_model(tiny_backbone_factory):
    torch.manual_seed(0)
    backbone, cfg = tiny_backbone_factory()
    return LIMSSR(cfg, backbone, DIMS).eval()


@pytest.fixture(scope="session")
def small_data():
    return generate(SyntheticConfig(n_train=40, n_test=12, clips=8, dims=dict(DIMS)))


def random_inputs(batch: int = 4, steps: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, steps, d, generator=g) for m, d in DIMS.items()}
