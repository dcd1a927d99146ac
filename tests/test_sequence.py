"""Prompt text for every mask; sequence layout and span positions."""

import pytest
import torch
from conftest import PROMPT_NAMES, random_inputs

from limssr.sequence import build_layout, prompt_text
from limssr.subsets import all_subsets, incomplete_subsets, parse_subset, subset_name

MODS = ["video", "audio", "flow"]


def test_prompt_audio_missing_is_the_reference_text():
    assert prompt_text((True, False, True), PROMPT_NAMES) == (
        "Given the available visual, flow features from an action video. The audio modality is missing. "
        "Based on the available modalities, please infer and reconstruct the useful latent representations "
        "for the missing audio modalities at the designated positions. Then integrate and enhance all "
        "multimodal features for action quality assessment. Output the fused multi-dimensional feature "
        "representations at the designated feature dimension positions: ")


@pytest.mark.parametrize("mask,avail,miss", [
    ((1, 1, 1), "visual, audio, flow", "none"),
    ((1, 1, 0), "visual, audio", "flow"),
    ((1, 0, 1), "visual, flow", "audio"),
    ((0, 1, 1), "audio, flow", "visual"),
    ((1, 0, 0), "visual", "audio, flow"),
    ((0, 1, 0), "audio", "visual, flow"),
    ((0, 0, 1), "flow", "visual, audio"),
])
def test_prompt_for_each_mask(mask, avail, miss):
    text = prompt_text(tuple(bool(x) for x in mask), PROMPT_NAMES)
    assert text.startswith(f"Given the available {avail} features from an action video. The {miss} modality is missing. ")
    assert f"for the missing {miss} modalities at the designated positions. " in text
    assert text.endswith("feature dimension positions: ") and "\n" not in text
    assert text.count(". ") == 4  # five sentences, each followed by one space


def test_subsets_in_paper_order():
    names = [subset_name(s, MODS) for s in all_subsets(3)]
    assert names == ["vaf", "va", "vf", "af", "v", "a", "f"]
    assert [subset_name(s, MODS) for s in incomplete_subsets(3)] == names[1:]
    assert parse_subset("vf", MODS) == (True, False, True)
    with pytest.raises(ValueError, match="'x'"):
        parse_subset("vx", MODS)


def test_layout_puts_present_modalities_first():
    mask = torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    plen = torch.tensor([10, 12, 11])
    lay = build_layout(mask, plen, steps=5, num_fusion=4)
    block = 5 + 2
    # sample 1 shows audio only: audio takes the first slot, then video, then flow
    assert lay.modality_at[1].tolist() == [1, 0, 2]
    assert lay.span_start[1].tolist() == [12 + block + 1, 12 + 1, 12 + 2 * block + 1]
    # sample 2 shows video and flow: v, f, then the missing audio
    assert lay.modality_at[2].tolist() == [0, 2, 1]
    assert lay.span_start[2].tolist() == [11 + 1, 11 + 2 * block + 1, 11 + block + 1]
    assert lay.fusion_start.tolist() == [10 + 3 * block, 12 + 3 * block, 11 + 3 * block]
    assert lay.length.tolist() == [p + 3 * block + 4 for p in (10, 12, 11)]
    assert lay.total == 12 + 3 * block + 4


def test_assembled_sequence_matches_layout(tiny_model):
    """Every position holds what the layout says: prompt tokens, start/end tokens, projected
    features or placeholders, fusion tokens; samples with different prompt lengths share a batch."""
    model = tiny_model
    feats = random_inputs(batch=3, steps=5)
    mask = torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    valid = torch.ones(3, 3, 5, dtype=torch.bool)
    embeds, attend, positions, lay = model.assemble(feats, mask, valid)
    assert embeds.shape == (3, lay.total, model.hidden)
    tok = model.added_tokens
    m = len(MODS)
    for b in range(3):
        plen = int(lay.prompt_len[b])
        ids = model.prompt_ids[model.subset_of_code[sum(int(x) << j for j, x in enumerate(mask[b]))], :plen]
        torch.testing.assert_close(embeds[b, :plen], model.backbone.get_input_embeddings()(ids))
        for j, name in enumerate(MODS):
            s = int(lay.span_start[b, j])
            torch.testing.assert_close(embeds[b, s - 1], tok[j])  # <m_start>
            torch.testing.assert_close(embeds[b, s + 5], tok[m + j])  # <m_end>
            span = embeds[b, s:s + 5]
            if mask[b, j]:
                expected = model.projections[name](feats[name][b])
                torch.testing.assert_close(span, expected)
            else:
                torch.testing.assert_close(span, tok[2 * m + j].expand(5, -1))
        f = int(lay.fusion_start[b])
        torch.testing.assert_close(embeds[b, f:f + 4], tok[3 * m:])
        length = int(lay.length[b])
        assert attend[b, :length].all() and not attend[b, length:].any()
        assert positions[b, :length].tolist() == list(range(length))


def test_sequences_padded_to_a_fixed_length(tiny_model):
    """Padding to a fixed length (one shape for CUDA graphs) only appends unattended positions."""
    feats = random_inputs(batch=3, steps=5)
    mask = torch.tensor([[1, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.bool)
    valid = torch.ones(3, 3, 5, dtype=torch.bool)
    embeds, attend, positions, lay = tiny_model.assemble(feats, mask, valid)
    longest = tiny_model.longest_sequence(5)
    assert longest >= lay.total
    fixed, attend_f, positions_f, _ = tiny_model.assemble(feats, mask, valid, length=longest)
    assert fixed.shape[1] == longest and not attend_f[:, lay.total:].any()
    torch.testing.assert_close(fixed[:, :lay.total], embeds)
    assert torch.equal(attend_f[:, :lay.total], attend) and torch.equal(positions_f[:, :lay.total], positions)
    with pytest.raises(ValueError, match="shorter than the batch's longest"):
        tiny_model.assemble(feats, mask, valid, length=lay.total - 1)


def test_padded_steps_are_not_attended(tiny_model):
    feats = random_inputs(batch=2, steps=5)
    mask = torch.ones(2, 3, dtype=torch.bool)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None].expand(-1, 3, -1)
    _, attend, positions, lay = tiny_model.assemble(feats, mask, valid)
    for j in range(3):
        s = int(lay.span_start[0, j])
        assert attend[0, s:s + 3].all() and not attend[0, s + 3:s + 5].any()
    assert attend[1, : int(lay.length[1])].all()
    # masked steps take no position: the sequence reads as if they were not there
    assert int(positions[0, int(lay.length[0]) - 1]) == int(lay.length[0]) - 1 - 3 * 2
