"""Training-time missingness protocols: masks never empty, strict never complete, nothing leaks."""

import numpy as np
import pytest
import torch

from limssr.data.dataset import AQADataset, collate, hide
from limssr.masking import PROTOCOLS, build_protocol

from conftest import DIMS

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
    proto = build_protocol(name, avail, seed=3)
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


def test_hide_refuses_an_empty_mask(small_data):
    ds = AQADataset(small_data.split("train"), MODS, DIMS, 130.0, clip_num=6, train=False)
    batch = collate([ds[0], ds[1]], MODS)
    with pytest.raises(ValueError, match="perf_00000.*no modality"):
        hide(batch, torch.tensor([[False, False, False], [True, False, False]]))
