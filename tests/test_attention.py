"""The CPU attention kernel (limssr.attention) against PyTorch's SDPA, alone and inside the model."""


import pytest
import torch
import torch.nn.functional as F
from conftest import DIMS, random_inputs

from limssr import attention
from limssr.attention import attention_forward, grouped_attention


def _qkv(bsz=2, heads=6, kv_heads=2, q_len=5, k_len=9, dim=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_()  # noqa: E731
    return make(bsz, heads, q_len, dim), make(bsz, kv_heads, k_len, dim), make(bsz, kv_heads, k_len, dim)


def test_grouped_attention_is_sdpa_with_grouped_heads_and_a_mask():
    q, k, v = _qkv()
    keep = torch.ones(5, 9, dtype=torch.bool).tril(4)[None, None].repeat(2, 1, 1, 1)
    keep[1, :, :, 1:3] = False  # a padded stretch inside the second sequence
    out = grouped_attention(q, k, v, keep, 8 ** -0.5)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True))
    assert torch.autograd.gradcheck(lambda q, k, v: grouped_attention(q, k, v, keep, 8 ** -0.5), (q, k, v))
    full = grouped_attention(q, k, v, None, 8 ** -0.5)
    torch.testing.assert_close(full, F.scaled_dot_product_attention(q, k, v, enable_gqa=True))


class _Module(torch.nn.Module):  # what Hugging Face's attention functions read off a layer
    is_causal = True
    num_key_value_groups = 3


@pytest.mark.parametrize("q_len,k_len", [(7, 7), (4, 9)])
def test_attention_function_in_bf16_follows_sdpa_causal_and_cached(q_len, k_len):
    """With no mask the kernel is causal, queries aligned to the end of the keys (a cache first)."""
    q, k, v = _qkv(q_len=q_len, k_len=k_len, dtype=torch.bfloat16)
    out, _ = attention_forward(_Module(), q, k, v, None)
    keep = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=keep, enable_gqa=True)
    assert out.shape == (2, q_len, 6, 8)  # Hugging Face's layout: (B, L, heads, dim)
    torch.testing.assert_close(out.double(), expected.transpose(1, 2), atol=3e-2, rtol=3e-2)


def test_attention_function_leaves_what_it_does_not_do_to_sdpa(monkeypatch):
    calls = []
    monkeypatch.setattr(attention, "grouped_attention", lambda *a: calls.append(1) or grouped_attention(*a))
    q, k, v = _qkv(dtype=torch.bfloat16)
    attention_forward(_Module(), q, k, v, None)
    assert len(calls) == 1
    attention_forward(_Module(), q.float(), k.float(), v.float(), None)  # fp32: SDPA's own kernel
    attention_forward(_Module(), q, k, v, torch.zeros(2, 1, 5, 9, dtype=torch.bfloat16))  # a float mask
    attention_forward(_Module(), q, k, v, None, sliding_window=4)
    assert len(calls) == 1


@pytest.mark.parametrize("share_prompt", [True, False])
def test_model_in_bf16_scores_alike_with_either_kernel(tiny_backbone_factory, monkeypatch, share_prompt):
    from limssr.methods.limssr import LIMSSR

    calls = []
    monkeypatch.setattr(attention, "grouped_attention", lambda *a: calls.append(1) or grouped_attention(*a))
    models = {}
    for choice in ("sdpa", "auto"):
        torch.manual_seed(0)
        backbone, cfg = tiny_backbone_factory(attention=choice, share_prompt=share_prompt, dropout=0.0)
        models[choice] = LIMSSR(cfg, backbone, DIMS).eval()
        models[choice].store_frozen_weights(torch.bfloat16)
    models["auto"].load_state_dict(models["sdpa"].state_dict())
    feats, valid = random_inputs(batch=4, steps=6), torch.ones(4, 6, dtype=torch.bool)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    scores = {}
    for choice, model in models.items():
        before = len(calls)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scores[choice] = model(feats, mask, valid).score.float()
        assert (len(calls) > before) == (choice == "auto")
    torch.testing.assert_close(scores["auto"], scores["sdpa"], atol=1e-2, rtol=1e-2)


def test_attention_setting_reaches_the_backbone(tiny_backbone_factory):
    for choice, name in (("sdpa", "sdpa"), ("auto", attention.ATTENTION_NAME)):
        backbone, _ = tiny_backbone_factory(attention=choice)
        assert backbone.decoder.config._attn_implementation == name


def test_a_decoder_without_pluggable_attention_keeps_its_own():
    from types import SimpleNamespace

    from limssr.attention import use_attention

    class Fixed:
        config = SimpleNamespace(_attn_implementation="sdpa")

        def set_attn_implementation(self, name):
            raise ValueError(f"{name} is not supported")

    assert use_attention(Fixed(), "auto") == "sdpa"
