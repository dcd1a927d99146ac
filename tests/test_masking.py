"""Training-time missingness protocols: masks never empty, strict never complete, nothing leaks."""

import numpy as np
import pytest
import torch
from conftest import DIMS

from limssr.data.dataset import AQADataset, collate, hide
from limssr.masking import PROTOCOLS, build_protocol

MODS = list(DIMS)


def test_strict_masks_are_fixed_incomplete_and_non_empty():
    avail = np.ones((200, 3), dtype=bool)
    proto = build_protocol("strict", avail, seed=1)
    idx = torch.arange(200)
    a = proto.masks(idx, torch.ones(200, 3, dtype=torch.bool))
    b = proto.masks(idx.flip(0), torch.ones(200, 3, dtype=torch.bool)).flip(0)
    assert torch.equal(a, b)  # the same mask for a sample, whatever batch it is in
    assert a.any(dim=1).all() and not a.all(dim=1).any()
    assert len({tuple(r) for r in a.tolist()}) == 6  # all six incomplete subsets occur
    same = build_protocol("strict", avail, seed=1).masks(idx, torch.ones(200, 3, dtype=torch.bool))
    assert torch.equal(a, same)


def test_strict_respects_natural_missingness():
    avail = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    masks = build_protocol("strict", avail, seed=0).masks(torch.arange(3), torch.from_numpy(avail))
    assert masks[0].tolist() == [True, False, False]
    assert not (masks & ~torch.from_numpy(avail)).any()
    with pytest.raises(ValueError, match="no modality"):
        build_protocol("strict", np.array([[0, 0, 0]], dtype=bool), seed=0, names=["empty_one"])
    with pytest.raises(ValueError, match="at least two"):
        build_protocol("strict", np.ones((3, 1), dtype=bool), seed=0)


def test_per_batch_draws_one_subset_per_batch_from_all_seven():
    proto = build_protocol("per-batch", np.ones((8, 3), dtype=bool), seed=0)
    seen = set()
    for _ in range(100):
        m = proto.masks(torch.arange(8), torch.ones(8, 3, dtype=torch.bool))
        assert (m == m[0]).all() and m[0].any()
        seen.add(tuple(m[0].tolist()))
    assert len(seen) == 7


@pytest.mark.parametrize("name", PROTOCOLS)
def test_no_protocol_leaks_a_hidden_modality(name, small_data, tiny_model):
    """Hidden modalities are zeroed in the data layer, and the model output does not depend on them."""
    ds = AQADataset(small_data.split("train"), MODS, DIMS, 130.0, clip_num=6, train=False)
    batch = collate([ds[i] for i in range(6)], MODS, pad_to=6)
    avail = np.ones((len(ds), 3), dtype=bool)
    proto = build_protocol(name, avail, seed=3, modalities=MODS, fixed_subset="vf")
    mask = proto.masks(batch.index, batch.available)
    shown = hide(batch, mask)
    for j, m in enumerate(MODS):
        assert (shown.features[m][~mask[:, j]] == 0).all()
    poisoned = collate([ds[i] for i in range(6)], MODS, pad_to=6)
    for j, m in enumerate(MODS):
        poisoned.features[m][~mask[:, j]] = float("nan")
    shown_p = hide(poisoned, mask)
    assert all(torch.isfinite(x).all() for x in shown_p.features.values())
    with torch.no_grad():
        a = tiny_model(shown.features, shown.mask, shown.time_mask).score
        b = tiny_model(shown_p.features, shown_p.mask, shown_p.time_mask).score
    torch.testing.assert_close(a, b)


def test_per_sample_rate_fixed_natural():
    avail = np.ones((400, 3), dtype=bool)
    idx, full = torch.arange(400), torch.ones(400, 3, dtype=torch.bool)
    per_sample = build_protocol("per-sample", avail, seed=0).masks(idx, full)
    assert per_sample.any(dim=1).all() and len({tuple(r) for r in per_sample.tolist()}) == 7
    rate = build_protocol("rate", avail, seed=0, missing_rate=0.5).masks(idx, full)
    assert rate.any(dim=1).all()
    # hidden about half the time, a little less since a sample is never left empty
    assert 0.35 < 1 - rate.float().mean() < 0.5
    fixed = build_protocol("fixed", avail, seed=0, modalities=MODS, fixed_subset="af").masks(idx, full)
    assert (fixed == torch.tensor([False, True, True])).all()
    partial = torch.tensor([[True, False, True]] * 400)
    assert torch.equal(build_protocol("natural", partial.numpy(), seed=0).masks(idx, partial), partial)


def test_rate_never_leaves_a_sample_empty_even_at_high_rates():
    avail = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 1]] * 50, dtype=bool)
    masks = build_protocol("rate", avail, seed=1, missing_rate=0.95).masks(torch.arange(150), torch.from_numpy(avail))
    assert masks.any(dim=1).all() and not (masks & ~torch.from_numpy(avail)).any()


def test_strict_complete_fraction():
    avail = np.ones((100, 3), dtype=bool)
    masks = build_protocol("strict", avail, seed=0, complete_fraction=0.25).masks(torch.arange(100),
                                                                                   torch.ones(100, 3, dtype=torch.bool))
    assert int(masks.all(dim=1).sum()) == 25 and masks.any(dim=1).all()


def test_protocols_refuse_samples_they_would_leave_empty():
    avail = np.array([[1, 0, 0], [0, 0, 1]], dtype=bool)
    with pytest.raises(ValueError, match="'b' with no modality"):
        build_protocol("fixed", avail, seed=0, names=["a", "b"], modalities=MODS, fixed_subset="va")
    with pytest.raises(ValueError, match="'z' has no modality"):
        build_protocol("per-batch", np.array([[0, 0, 0]], dtype=bool), seed=0, names=["z"])


def test_hide_refuses_an_empty_mask(small_data):
    ds = AQADataset(small_data.split("train"), MODS, DIMS, 130.0, clip_num=6, train=False)
    batch = collate([ds[0], ds[1]], MODS)
    with pytest.raises(ValueError, match="perf_00000.*no modality"):
        hide(batch, torch.tensor([[False, False, False], [True, False, False]]))
