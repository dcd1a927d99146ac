"""Projection, Path 1 and Path 2 shapes, how the mask changes them, and that nothing hidden leaks."""

import pytest
import torch
from conftest import DIMS, random_inputs

from limssr.layers import TimeProjection
from limssr.methods.limssr import FusionTokenHead, ModalitySpanHead


def test_projection_shapes_and_conv_layout():
    proj = TimeProjection(32, 64, dropout=0.1)
    assert proj.conv1.weight.shape == (64, 32, 1) and proj.conv2.weight.shape == (64, 64, 1)
    assert proj(torch.randn(17, 32)).shape == (17, 64)
    proj.train()
    assert proj(torch.randn(1, 32)).shape == (1, 64)  # a single step falls back to running stats


def test_path1_shapes_and_mask_conditioning():
    torch.manual_seed(0)
    head = FusionTokenHead(hidden=64, num_modalities=3, num_tokens=4, dropout=0.0).eval()
    tokens = torch.randn(5, 4, 64)
    full = head(tokens, torch.ones(5, 3, dtype=torch.bool))
    part = head(tokens, torch.tensor([[1, 0, 0]] * 5, dtype=torch.bool))
    assert full.shape == (5,) and ((full > 0) & (full < 1)).all()
    assert not torch.allclose(full, part)  # the gate and residual see the mask


def test_path2_shapes_and_confidence_only_scales_missing():
    torch.manual_seed(0)
    head = ModalitySpanHead(hidden=64, num_modalities=3, heads=4, dropout=0.0, confidence_init=0.6).eval()
    spans = torch.randn(2, 3, 6, 64)
    valid = torch.ones(2, 3, 6, dtype=torch.bool)
    complete = torch.ones(2, 3, dtype=torch.bool)
    partial = torch.tensor([[1, 0, 1], [1, 0, 1]], dtype=torch.bool)
    score, fused = head(spans, valid, complete)
    assert score.shape == (2,) and fused.shape == (2, 64)
    with torch.no_grad():
        head.confidence.fill_(5.0)
    s_complete, _ = head(spans, valid, complete)
    torch.testing.assert_close(s_complete, score)  # confidence never touches present modalities
    s_partial_hi, _ = head(spans, valid, partial)
    with torch.no_grad():
        head.confidence.fill_(-5.0)
    s_partial_lo, _ = head(spans, valid, partial)
    assert not torch.allclose(s_partial_hi, s_partial_lo)


def test_path2_pools_only_real_steps():
    torch.manual_seed(0)
    head = ModalitySpanHead(hidden=64, num_modalities=3, heads=4, dropout=0.0, confidence_init=0.6).eval()
    spans = torch.randn(1, 3, 6, 64)
    valid = torch.tensor([[[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]], dtype=torch.bool)
    mask = torch.ones(1, 3, dtype=torch.bool)
    a, _ = head(spans, valid, mask)
    spans2 = spans.clone()
    spans2[~valid] = 100.0  # each modality's own padded steps
    b, _ = head(spans2, valid, mask)
    torch.testing.assert_close(a, b)


def test_model_outputs(tiny_model):
    feats = random_inputs(batch=3, steps=6)
    mask = torch.tensor([[1, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=torch.bool)
    out = tiny_model(feats, mask, torch.ones(3, 6, dtype=torch.bool))
    assert out.score.shape == out.main.shape == out.aux.shape == (3,)
    assert out.fusion.shape == (3, 4, tiny_model.hidden) and out.fused.shape == (3, tiny_model.hidden)
    w1 = tiny_model.mix
    torch.testing.assert_close(out.score, w1 * out.main + (1 - w1) * out.aux)


def test_hidden_modalities_do_not_reach_the_model(tiny_model):
    """Changing a hidden modality's values (even to NaN) changes nothing."""
    feats = random_inputs(batch=3, steps=6)
    mask = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    valid = torch.ones(3, 6, dtype=torch.bool)
    ref = tiny_model(feats, mask, valid)
    poisoned = {m: x.clone() for m, x in feats.items()}
    for j, m in enumerate(DIMS):
        poisoned[m][~mask[:, j]] = float("nan")
    out = tiny_model(poisoned, mask, valid)
    torch.testing.assert_close(out.score, ref.score)
    torch.testing.assert_close(out.fusion, ref.fusion)


def test_padded_steps_do_not_change_the_score(tiny_model):
    feats = random_inputs(batch=2, steps=6)
    mask = torch.ones(2, 3, dtype=torch.bool)
    valid = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6], dtype=torch.bool)
    ref = tiny_model(feats, mask, valid)
    changed = {m: x.clone() for m, x in feats.items()}
    for x in changed.values():
        x[0, 4:] = 50.0
    out = tiny_model(changed, mask, valid)
    torch.testing.assert_close(out.score, ref.score, atol=1e-5, rtol=1e-5)
    # and a padded sample scores as it would alone at its true length
    short = {m: x[:1, :4] for m, x in feats.items()}
    alone = tiny_model(short, mask[:1], torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(alone.score, ref.score[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("share_prompt", [False, True])
def test_each_sample_of_a_mixed_batch_scores_as_it_would_alone(tiny_backbone_factory, share_prompt):
    """Different masks give prompts, and so sequences, of different lengths, padded at the end (whole
    sequences) or in the middle (shared prompt prefixes): either way every sample must score exactly
    as it does alone."""
    from limssr.methods.limssr import LIMSSR

    torch.manual_seed(0)
    backbone, cfg = tiny_backbone_factory(share_prompt=share_prompt)
    model = LIMSSR(cfg, backbone, DIMS).eval()
    feats = random_inputs(batch=4, steps=6)
    mask = torch.tensor([[1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    valid = torch.ones(4, 6, dtype=torch.bool)
    batch = model(feats, mask, valid)
    for i in range(4):
        alone = model({m: x[i:i + 1] for m, x in feats.items()}, mask[i:i + 1], valid[i:i + 1])
        torch.testing.assert_close(alone.score, batch.score[i:i + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alone.fusion, batch.fusion[i:i + 1], atol=1e-4, rtol=1e-4)


def test_trainable_state_holds_no_frozen_backbone_weight(tiny_model):
    state = tiny_model.trainable_state_dict()
    backbone_keys = [k for k in state if k.startswith("backbone.")]
    assert backbone_keys and all("lora_" in k for k in backbone_keys)
    assert "added_tokens" in state and "projections.video.bn1.running_mean" in state


def test_shared_prompt_prefix_gives_the_same_scores_and_gradients(tiny_backbone_factory):
    """Running each distinct prompt once and sharing its keys/values is the same computation as the
    whole sequence per sample: in training (per batch) and at inference (cached)."""
    import dataclasses

    from limssr.methods.limssr import LIMSSR

    feats = random_inputs(batch=5, steps=6)
    mask = torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    valid = torch.ones(5, 6, dtype=torch.bool)
    valid[2, 4:] = False
    torch.manual_seed(0)
    backbone, cfg = tiny_backbone_factory(dropout=0.0)
    shared = LIMSSR(cfg, backbone, DIMS)
    full = LIMSSR(dataclasses.replace(cfg, share_prompt=False), backbone, DIMS)
    full.load_state_dict(shared.state_dict())
    full.speed = None  # the reference computation alone
    for model in (shared, full):
        model.backbone.eval()  # no LoRA dropout, so both paths are deterministic
        model.projections.eval()
    a, b = shared(feats, mask, valid), full(feats, mask, valid)
    torch.testing.assert_close(a.score, b.score, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.fusion, b.fusion, atol=1e-4, rtol=1e-4)
    (a.score.sum() + a.fusion.sum()).backward()
    grads_a = {n: p.grad.clone() for n, p in shared.named_parameters() if p.grad is not None}
    shared.zero_grad(), full.zero_grad()  # the two share the backbone; their other weights are copies
    (b.score.sum() + b.fusion.sum()).backward()
    grads_b = {n: p.grad.clone() for n, p in full.named_parameters() if p.grad is not None}
    assert grads_a.keys() == grads_b.keys() and any("lora_A" in n for n in grads_a)
    for n in grads_a:
        torch.testing.assert_close(grads_a[n], grads_b[n], atol=1e-4, rtol=1e-3)
    shared.eval(), full.eval()
    with torch.no_grad():
        first = shared(feats, mask, valid).score
        again = shared(feats, mask, valid).score  # from the cached prefix
        torch.testing.assert_close(first, full(feats, mask, valid).score, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(again, first)
    assert shared.speed.prefix_cache is not None
    shared.train()
    assert shared.speed.prefix_cache is None
