"""MCMoE's structure against its public code (XuHuangbiao/MCMoE), its masked BatchNorm, the
reconstruction gradients, and the batch-position quirk of `faithful` mode (absent from `fixed`)."""

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import DIMS, random_inputs, tiny_run_config
from torch import nn

from limssr.masking import build_protocol
from limssr.methods import build_method, method_names

HIDDEN = 32  # small for speed; the public --hidden_dim (and baseline.hidden) is 256


def mcmoe_module():
    """limssr.methods.mcmoe, imported after the registry loaded every method in its own order
    (importing a method's module first would register it first)."""
    method_names()
    import limssr.methods.mcmoe as module

    return module


def build(mode="fixed", hidden=HIDDEN, extra=(), seed=0):
    cfg = tiny_run_config(["method=mcmoe", f"baseline.mcmoe_mode={mode}", f"baseline.hidden={hidden}", *extra])
    cfg = replace(cfg, model=replace(cfg.model, modalities=list(DIMS), dims=dict(DIMS)))
    torch.manual_seed(seed)
    return build_method(cfg)


def full(batch, steps=6):
    return torch.ones(batch, 3, dtype=torch.bool), torch.ones(batch, steps, dtype=torch.bool)


def hide(feats, mask):
    """What the data layer does: hidden modalities are zeros."""
    return {m: x * mask[:, j, None, None] for j, (m, x) in enumerate(feats.items())}


@pytest.fixture(scope="module")
def fixed_model():
    return build("fixed")


def test_transformer_structure_follows_the_public_code(fixed_model):
    m, d = fixed_model, HIDDEN
    enc_layers, dec_layers = m.encoder.layers, m.head.decoder.layers
    assert len(enc_layers) == 3 and len(dec_layers) == 3
    for layer in [*enc_layers, *dec_layers]:
        assert layer.linear1.out_features == 3 * d and layer.linear2.in_features == 3 * d  # dim_feedforward=3*hidden
        assert not layer.norm_first and layer.self_attn.num_heads == 2
        assert layer.dropout.p == pytest.approx(0.3) and layer.self_attn.dropout == pytest.approx(0.3)
    assert isinstance(m.encoder.norm, nn.LayerNorm) and isinstance(m.head.decoder.norm, nn.LayerNorm)
    # the generators' attention keeps nn.MultiheadAttention's default dropout, 0
    for gen in m.generators.values():
        assert len(gen.attn) == 2
        for attn in gen.attn:
            assert attn.dropout == 0.0 and attn.num_heads == 4
    # experts: Conv1d k=3 d -> d/2, BN, GELU, Conv1d k=1 -> d, BN; fusion 3d -> 2d -> d; router d -> d/2 -> 3
    for e in m.experts:
        assert (e.conv1.kernel_size, e.conv1.out_channels, e.conv2.kernel_size, e.conv2.out_channels) == ((3,), d // 2, (1,), d)
    assert (m.fuse.conv1.in_channels, m.fuse.conv1.out_channels, m.fuse.conv2.out_channels) == (3 * d, 2 * d, d)
    assert (m.router[0].out_features, m.router[2].out_features) == (d // 2, 3)


def test_initialisation_follows_the_public_code():
    m = build("fixed", hidden=128)
    d = 128
    # the grade queries are an nn.Embedding there: N(0, 1)
    assert abs(m.head.queries.std().item() - 1.0) < 0.1 and abs(m.head.queries.mean().item()) < 0.1
    # the public Transformer xavier-uniforms every matrix of its encoder and decoder
    for layer in [*m.encoder.layers, *m.head.decoder.layers]:
        for w in (layer.linear1.weight, layer.linear2.weight, layer.self_attn.out_proj.weight):
            fan_out, fan_in = w.shape
            std = math.sqrt(2.0 / (fan_in + fan_out))
            assert w.abs().max() <= math.sqrt(3) * std + 1e-6
            assert abs(w.std().item() / std - 1) < 0.1
    # out_proj's own default (kaiming uniform, std 1/sqrt(3 d)) is clearly different from xavier's 1/sqrt(d)
    assert abs(m.encoder.layers[0].self_attn.out_proj.weight.std().item() * math.sqrt(d) - 1) < 0.1


def test_masked_batch_norm_ignores_invalid_steps():
    torch.manual_seed(0)
    bn_a, bn_b = nn.BatchNorm1d(5), nn.BatchNorm1d(5)
    x = torch.randn(4, 5, 7)
    valid = torch.rand(4, 7) > 0.4
    poisoned = torch.where(valid[:, None, :], x, torch.full_like(x, 1e3))
    masked_batch_norm = mcmoe_module().masked_batch_norm
    a = masked_batch_norm(bn_a.train(), x, valid)
    b = masked_batch_norm(bn_b.train(), poisoned, valid)
    sel = valid[:, None, :].expand_as(x)
    torch.testing.assert_close(a[sel], b[sel])
    torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean)
    torch.testing.assert_close(bn_a.running_var, bn_b.running_var)
    # the statistics are those of the valid steps alone
    rows = x.transpose(1, 2)[valid]  # (N, C)
    ref = (rows - rows.mean(0)) / torch.sqrt(rows.var(0, unbiased=False) + bn_a.eps)
    torch.testing.assert_close(a.transpose(1, 2)[valid], ref, atol=1e-5, rtol=1e-4)


def test_expert_statistics_exclude_modalities_the_data_hides():
    """Samples whose flow the data hides (zeros) leave the flow expert's BatchNorm statistics as they
    are for the samples that show it (momentum 1: running stats = the last call's batch stats)."""
    model = build("fixed", extra=["baseline.dropout=0", "baseline.modality_dropout=false"]).train()
    for e in model.experts:
        for bn in (e.bn1, e.bn2):
            bn.momentum = 1.0
    feats = random_inputs(batch=4)
    mask, valid = full(4)
    mask[2:, 2] = False  # the data hides flow for samples 2 and 3
    model(hide(feats, mask), mask, valid)
    with_hidden = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in (model.experts[2].bn1, model.experts[2].bn2)]
    model(hide({k: v[:2] for k, v in feats.items()}, mask[:2]), mask[:2], valid[:2])
    for (mean, var), bn in zip(with_hidden, (model.experts[2].bn1, model.experts[2].bn2)):
        torch.testing.assert_close(mean, bn.running_mean)
        torch.testing.assert_close(var, bn.running_var)


def test_reconstruction_gradient_reaches_the_encoder_through_the_target(monkeypatch):
    """The public code compares the generated encoding with the full one, not detached: the dropped
    modality's projector (which feeds only the target) gets gradient from the reconstruction loss."""
    model = build("fixed", extra=["baseline.dropout=0"]).train()
    monkeypatch.setattr(mcmoe_module(), "drop_for_training",
                        lambda mask, incomplete_only: mask & torch.tensor([True, True, False]))  # flow dropped
    mask, valid = full(3)
    out = model(random_inputs(batch=3), mask, valid)
    assert out.extras["recon"] > 0 and out.extras["kl"] > 0
    out.extras["recon"].backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(model.proj["flow"]) > 0  # through the target only
    assert grad_norm(model.generators["flow"]) > 0 and grad_norm(model.encoder) > 0
    assert grad_norm(model.generators["video"]) == 0 and grad_norm(model.generators["audio"]) == 0
    assert grad_norm(model.head) == 0 and grad_norm(model.fuse) == 0


def test_loss_composition(fixed_model):
    model = fixed_model.train()
    mask, valid = full(4)
    out = model(random_inputs(batch=4), mask, valid)
    parts = model.loss(out, torch.rand(4))
    expected = 10.0 * parts["mse"] + 1.0 * parts["triplet"] + 1.0 * (parts["recon"] + parts["kl"])  # models/loss.py
    torch.testing.assert_close(parts["loss"], expected)
    model.eval()


def test_training_step_under_strict_masks():
    model = build("faithful").train()
    n = 6
    protocol = build_protocol("strict", np.ones((n, 3), dtype=bool), seed=1)
    mask = protocol.masks(torch.arange(n), torch.ones(n, 3, dtype=torch.bool))
    assert not mask.all(dim=1).any()  # strict: every sample incomplete
    valid = torch.ones(n, 6, dtype=torch.bool)
    valid[0, 4:] = False  # one padded sample
    out = model(hide(random_inputs(batch=n), mask), mask, valid)
    loss = model.loss(out, torch.rand(n))["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in (p.grad for p in model.head.parameters()) if g is not None)


def test_fixed_scores_do_not_depend_on_batch_size_order_or_padding(fixed_model):
    model = fixed_model.eval()
    feats = random_inputs(batch=6)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    valid = torch.ones(6, 6, dtype=torch.bool)
    valid[1, 4:] = False
    feats = hide(feats, mask)
    perm = torch.tensor([3, 5, 0, 2, 4, 1])
    with torch.no_grad():
        ref = model(feats, mask, valid).score
        permuted = model({k: v[perm] for k, v in feats.items()}, mask[perm], valid[perm]).score
        singles = torch.cat([model({k: v[i:i + 1] for k, v in feats.items()}, mask[i:i + 1], valid[i:i + 1]).score
                             for i in range(6)])
        # padding: sample 1 scored on its 4 real steps alone, and with garbage in its padded steps
        short = model({k: v[1:2, :4] for k, v in feats.items()}, mask[1:2], valid[1:2, :4]).score
        garbage = {k: v.clone() for k, v in feats.items()}
        for v in garbage.values():
            v[1, 4:] = 1e3
        padded = model(garbage, mask, valid).score
    torch.testing.assert_close(permuted, ref[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(singles, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, ref[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, ref, atol=1e-5, rtol=1e-5)


def test_faithful_scores_depend_on_batch_position_and_size():
    model = build("faithful").eval()
    feats = random_inputs(batch=4)
    mask, valid = full(4)
    with torch.no_grad():
        ref = model(feats, mask, valid).score
        flipped = model({k: v.flip(0) for k, v in feats.items()}, mask, valid).score.flip(0)
        first_alone = model({k: v[3:] for k, v in feats.items()}, mask[3:], valid[3:]).score
    assert not torch.allclose(ref, flipped, atol=1e-4)  # order matters
    assert not torch.allclose(ref[3:], first_alone, atol=1e-4)  # position 3 of 4 vs position 0 of 1
    # the same weights without the quirk: order does not matter
    fixed = build("fixed").eval()
    fixed.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fixed(feats, mask, valid).score,
                                   fixed({k: v.flip(0) for k, v in feats.items()}, mask, valid).score.flip(0),
                                   atol=1e-5, rtol=1e-5)


def test_faithful_warns_when_scoring_past_the_trained_positions():
    model = build("faithful").train()
    mask, valid = full(2)
    model(random_inputs(batch=2), mask, valid)
    model.eval()
    mask, valid = full(3)
    with pytest.warns(UserWarning, match="never trained"):
        with torch.no_grad():
            model(random_inputs(batch=3), mask, valid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        with torch.no_grad():
            model(random_inputs(batch=3), mask, valid)
