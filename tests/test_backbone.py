"""Backbones: tiny configs, the real default LLM, local paths, LoRA and which weights train."""

import json

import pytest
import torch
from conftest import DIMS, random_inputs

from limssr.backbone import BackboneError, load_backbone
from limssr.config import LoraSettings, ModelConfig
from limssr.methods.limssr import LIMSSR


def _trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen"])
def test_tiny_backbones(name):
    bb = load_backbone(name, LoraSettings(), prompt_texts=["Given the available visual features."])
    assert bb.hidden_size == 256
    names = _trainable(bb.decoder)
    assert names and all("lora_" in n for n in names)
    assert len([n for n in names if "lora_A" in n]) == 4 * 4  # q, k, v, o in 4 layers
    out = bb.decoder(inputs_embeds=torch.randn(2, 5, 256)).last_hidden_state
    assert out.shape == (2, 5, 256)
    assert not hasattr(bb.decoder, "lm_head") and not hasattr(bb.decoder.get_base_model(), "lm_head")


def test_embedding_frozen_by_default_trainable_when_faithful():
    frozen = load_backbone("tiny", LoraSettings(), train_embeddings=False)
    assert not frozen.input_embeddings().weight.requires_grad
    faithful = load_backbone("tiny", LoraSettings(), train_embeddings=True)
    assert faithful.input_embeddings().weight.requires_grad


def test_lora_can_be_switched_off():
    bb = load_backbone("tiny", LoraSettings(enabled=False))
    assert not _trainable(bb.decoder)


def test_lora_with_unknown_modules_is_explained():
    with pytest.raises(BackboneError, match="target_modules"):
        load_backbone("tiny", LoraSettings(target_modules=["c_attn"]))


def test_bad_paths_are_explained(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(str(tmp_path / "nope"), LoraSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        load_backbone(str(tmp_path / "empty"), LoraSettings())
    enc = tmp_path / "encoder"
    enc.mkdir()
    (enc / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(BackboneError, match="not a causal language model"):
        load_backbone(str(enc), LoraSettings())
    llama = tmp_path / "no-weights"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(BackboneError, match="cannot be loaded"):
        load_backbone(str(llama), LoraSettings())


def test_default_backbone_forward_and_backward():
    """The real SmolLM2-135M-Instruct: loads offline, LIMSSR runs forward and backward on it."""
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="default")
    bb = load_backbone("default", cfg.lora)
    assert bb.hidden_size == 576 and bb.decoder.config.num_hidden_layers == 30
    assert bb.tokenizer.pad_token == "<|im_end|>"
    ids = bb.tokenizer("Given the available visual", add_special_tokens=False)["input_ids"]
    assert bb.tokenizer.decode(ids) == "Given the available visual"
    model = LIMSSR(cfg, bb, DIMS).train()
    feats = random_inputs(batch=2, steps=4)
    mask = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    out = model(feats, mask, torch.ones(2, 4, dtype=torch.bool))
    assert out.score.shape == (2,) and out.fusion.shape == (2, 4, 576)
    (out.score.sum() + out.fusion.pow(2).mean()).backward()
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None for g in lora_grads)
    assert model.added_tokens.grad is not None and model.added_tokens.grad.abs().sum() > 0
    assert bb.input_embeddings().weight.grad is None  # the vocabulary stays frozen


def test_random_init_keeps_the_architecture_and_replaces_every_weight(tmp_path):
    """model.backbone_init=random: the control for what pretraining contributes (seeded, repeatable)."""
    import torch
    from transformers import LlamaForCausalLM

    from limssr.backbone import load_backbone
    from limssr.config import LoraSettings

    made = load_backbone("tiny", LoraSettings(enabled=False), prompt_texts=["visual audio flow"], seed=3)
    config = made.decoder.config
    config.architectures = ["LlamaForCausalLM"]
    lm = LlamaForCausalLM(config)
    with torch.no_grad():  # a "pretrained" weight pattern no initialiser would produce
        for p in lm.parameters():
            p.fill_(0.5)
    lm.save_pretrained(tmp_path / "m")
    made.tokenizer.save_pretrained(tmp_path / "m")
    lora = LoraSettings(enabled=False)
    pre = load_backbone(str(tmp_path / "m"), lora, seed=1)
    rnd = [load_backbone(str(tmp_path / "m"), lora, seed=s, init="random") for s in (1, 1, 2)]
    names = [n for n, _ in pre.decoder.named_parameters()]
    for name in names:
        assert torch.all(dict(pre.decoder.named_parameters())[name] == 0.5), name
        weights = [dict(r.decoder.named_parameters())[name] for r in rnd]
        assert not torch.all(weights[0] == 0.5), name
        assert torch.equal(weights[0], weights[1]), name  # same seed, same weights
    q = "layers.0.self_attn.q_proj.weight"
    assert abs(float(dict(rnd[0].decoder.named_parameters())[q].std()) - 0.02) < 0.005
    assert not torch.equal(dict(rnd[0].decoder.named_parameters())[q], dict(rnd[2].decoder.named_parameters())[q])
    assert [type(m).__name__ for m in rnd[0].decoder.modules()] == [type(m).__name__ for m in pre.decoder.modules()]
