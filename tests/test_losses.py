"""The batch-hard cosine triplet loss against a hand computation, and the total loss."""

import math

import torch

from limssr.config import LossConfig
from limssr.losses import batch_hard_cosine_triplet
from limssr.methods.limssr import LimssrOutput, limssr_loss

# two samples x two fusion tokens in 2-D; rows r0=(s0,k0) r1=(s0,k1) r2=(s1,k0) r3=(s1,k1)
EMB = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [-1.0, 0.0]]])
S = 1 / math.sqrt(2)


def test_triplet_matches_hand_computation():
    # cosine distances: d01=1, d02=1-s, d03=2, d12=1-s, d13=1, d23=1+s
    # anchor r0: pos r2 (1-s), hardest neg min(d01, d03) = 1      -> (1-s) - 1 + 1 = 1-s
    # anchor r1: pos r3 (1),   hardest neg min(d10, d12) = 1-s    -> 1 - (1-s) + 1 = 1+s
    # anchor r2: pos r0 (1-s), hardest neg min(d21, d23) = 1-s    -> 1
    # anchor r3: pos r1 (1),   hardest neg min(d30, d32) = 1+s    -> 1 - (1+s) + 1 = 1-s
    expected = ((1 - S) + (1 + S) + 1 + (1 - S)) / 4
    assert math.isclose(float(batch_hard_cosine_triplet(EMB, margin=1.0)), expected, rel_tol=1e-6)
    # with margin 0.5 two anchors are satisfied: (0 + (0.5+s) + 0.5 + 0) / 4
    assert math.isclose(float(batch_hard_cosine_triplet(EMB, margin=0.5)), (1 + S) / 4, rel_tol=1e-6)


def test_triplet_edge_cases():
    assert float(batch_hard_cosine_triplet(torch.randn(3, 1, 8))) == 0.0  # K = 1: no negatives
    one = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # B = 1: d_ap = 0, d_an = 1
    assert math.isclose(float(batch_hard_cosine_triplet(one, margin=1.0)), 0.0, abs_tol=1e-7)
    distinct = torch.eye(4)[None].repeat(3, 1, 1)  # every sample encodes each token identically
    assert math.isclose(float(batch_hard_cosine_triplet(distinct, margin=1.0)), 0.0, abs_tol=1e-6)


def test_total_loss_weights():
    out = LimssrOutput(score=torch.tensor([0.5, 0.7]), main=torch.tensor([0.4, 0.8]),
                       aux=torch.tensor([0.6, 0.6]), fusion=EMB, fused=torch.zeros(2, 2))
    y = torch.tensor([0.3, 0.7])
    parts = limssr_loss(out, y, LossConfig(alpha_mse=10, alpha=1, alpha_con=2))
    assert math.isclose(float(parts["mse"]), 0.02, rel_tol=1e-5)
    assert math.isclose(float(parts["consistency"]), 0.04, rel_tol=1e-5)
    expected = 10 * 0.02 + float(parts["triplet"]) + 2 * 0.04
    assert math.isclose(float(parts["loss"]), expected, rel_tol=1e-5)
