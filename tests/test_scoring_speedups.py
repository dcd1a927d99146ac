"""eval.quantize=int8 and eval.compile: LIMSSR's scoring speed-ups give the scores of plain scoring
(int8 within quantization error, compile within float rounding), and are refused where they do
not apply."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DIMS, quick_train_args, random_inputs
from scipy.stats import spearmanr

from limssr.cli import run
from limssr.config import ConfigError, with_scoring
from limssr.methods.limssr import LIMSSR
from limssr.subsets import all_subsets


def _scores(model, feats, valid) -> dict[tuple, torch.Tensor]:
    """The model's scores for every sample under each of the 7 subsets."""
    out = {}
    with torch.inference_mode():
        for subset in all_subsets(3):
            mask = torch.tensor(subset, dtype=torch.bool).expand(valid.shape[0], -1)
            out[subset] = model(feats, mask, valid).score.float()
    return out


def _trained_like(tiny_backbone_factory) -> LIMSSR:
    """A tiny LIMSSR whose heads and projections are not at their (near-constant) initial values,
    so that scores spread across samples as a trained model's do (the backbone keeps its weights:
    scaled up at random, they make a chaotic network no quantization could follow)."""
    torch.manual_seed(0)
    backbone, cfg = tiny_backbone_factory(dropout=0.0)
    model = LIMSSR(cfg, backbone, DIMS).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "lora_" not in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


def test_int8_scores_follow_fp32_scores(tiny_backbone_factory):
    feats, valid = random_inputs(batch=48, steps=6, seed=3), torch.ones(48, 3, 6, dtype=torch.bool)
    reference = _scores(_trained_like(tiny_backbone_factory).prepare_inference("32-true"), feats, valid)
    model = _trained_like(tiny_backbone_factory).prepare_inference("32-true", quantize="int8")
    kept = {n.rsplit(".", 1)[-1] for n, m in model.backbone.named_modules() if type(m) is torch.nn.Linear}
    assert kept == {"down_proj"}  # every other linear layer quantized
    quantized = _scores(model, feats, valid)
    for subset, ref in reference.items():
        assert ref.std() > 0.005  # the scores spread, so their ranking means something
        assert (quantized[subset] - ref).abs().max() < 0.05
        assert spearmanr(ref.numpy(), quantized[subset].numpy())[0] > 0.98


def test_compiled_scoring_equals_eager_scoring(tiny_backbone_factory):
    feats, valid = random_inputs(batch=6, steps=6, seed=4), torch.ones(6, 3, 6, dtype=torch.bool)
    eager = _scores(_trained_like(tiny_backbone_factory).prepare_inference("32-true"), feats, valid)
    model = _trained_like(tiny_backbone_factory).prepare_inference("32-true", compile=True)
    compiled = _scores(model, feats, valid)
    for subset, ref in eager.items():
        torch.testing.assert_close(compiled[subset], ref, rtol=1e-4, atol=1e-5)
    assert model.backbone_compiled and isinstance(model.backbone, torch.nn.Module)


def test_quantize_is_refused_where_it_does_not_apply():
    from conftest import tiny_run_config

    with pytest.raises(ConfigError, match="eval.quantize.*'zero-fill'"):
        with_scoring(tiny_run_config(["method=zero-fill"]), quantize="int8")
    with pytest.raises(ConfigError, match="eval.quantize"):
        with_scoring(tiny_run_config(), quantize="int4")
    assert with_scoring(tiny_run_config(), quantize="int8").eval.quantize == "int8"


def test_evaluate_and_predict_take_int8(tmp_path):
    out = tmp_path / "run"
    assert run(["train", "--out", str(out), *quick_train_args(n_train=40, n_test=12)]) == 0
    base = json.loads((out / "eval" / "results.json").read_text())
    assert run(["evaluate", str(out), "--quantize", "int8", "--out", str(tmp_path / "int8")]) == 0
    q = json.loads((tmp_path / "int8" / "results.json").read_text())
    assert set(q["subsets"]) == set(base["subsets"])
    for name, entry in q["subsets"].items():
        assert abs(entry["mse"] - base["subsets"][name]["mse"]) < 0.05 * base["subsets"][name]["mse"] + 1.0
    np.savez(tmp_path / "one.npz", video=np.zeros((8, DIMS["video"]), np.float32))
    assert run(["predict", str(out), str(tmp_path / "one.npz"), "--quantize", "int8",
                "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 2
