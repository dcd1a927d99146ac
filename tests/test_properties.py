"""Property-based tests (hypothesis): label parsers, masking protocols, the sequence builder.

`make test` runs 100 examples per property; `make test-properties` runs 10,000
(HYPOTHESIS_PROFILE=thorough)."""

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limssr.data import labels as L
from limssr.data.generic import read_labels
from limssr.data.samples import DataError
from limssr.masking import PROTOCOLS, build_protocol
from limssr.sequence import build_layout
from limssr.subsets import all_subsets

settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

name = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=8)
number = st.one_of(st.floats(min_value=-5, max_value=200).map(repr), st.sampled_from(["nan", "inf", "-inf", "1e400"]),
                   st.integers(-3, 300).map(str), st.sampled_from(["abc", "", "1e3", "nan", "-0.0", "3,4"]))
row = st.lists(st.one_of(name, number), min_size=0, max_size=8)
separators = st.sampled_from([" ", "\t", "  ", " \t"])
endings = st.sampled_from(["\n", "\r\n"])


@st.composite
def label_text(draw, header: str | None = None):
    sep, end = draw(separators), draw(endings)
    lines = [sep.join(r) for r in draw(st.lists(row, max_size=12))]
    if header is not None and draw(st.booleans()):
        lines.insert(0, header)
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    return text.encode(encoding, errors="replace")


def _check_rows(rows, keys):
    names = [n for n, _ in rows]
    assert len(names) == len(set(names)) and rows
    for _, values in rows:
        for k in keys:
            assert np.isfinite(values[k]) and values[k] >= 0


@pytest.mark.parametrize("parser,keys,header", [
    (L.parse_fisv, ("TES", "PCS"), "name TES PCS deductions"),
    (lambda p: L.parse_rg(p, "all"), ("Total",), "Video_Name\tDifficulty_Score Execution_Score Total_Score"),
    (L.parse_fs1000, ("TES", "PCS", "IN"), None),
])
@given(data=st.data())
def test_label_parsers_refuse_or_return_clean_rows(tmp_path, parser, keys, header, data):
    path = tmp_path / "labels.txt"
    path.write_bytes(data.draw(label_text(header)))
    try:
        rows = parser(path)
    except DataError as err:
        assert str(path) in str(err)  # every refusal names the file
        return
    _check_rows(rows, keys)


@given(data=st.data())
def test_generic_label_csv_refuses_or_returns_clean_rows(tmp_path, data):
    path = tmp_path / "train.csv"
    lines = [",".join(r) for r in data.draw(st.lists(row, max_size=10))]
    if data.draw(st.booleans()):
        lines.insert(0, data.draw(st.sampled_from(["name,score", "name,TES,PCS", "Name,score", "id,score"])))
    path.write_bytes(("\n".join(lines) + "\n").encode())
    try:
        rows = read_labels(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    _check_rows(rows, list(rows[0][1]))


availability = st.integers(1, 5).flatmap(
    lambda m: st.lists(st.lists(st.booleans(), min_size=m, max_size=m), min_size=1, max_size=24))


@given(avail=availability, protocol=st.sampled_from(PROTOCOLS), seed=st.integers(0, 2**16),
       rate=st.floats(0.01, 0.99), fraction=st.floats(0.0, 1.0), subset_bits=st.integers(1, 31))
def test_masks_are_never_empty_and_never_show_what_the_data_lacks(avail, protocol, seed, rate, fraction, subset_bits):
    avail = np.array(avail, dtype=bool)
    n, m = avail.shape
    mods = [chr(ord("a") + i) + "mod" for i in range(m)]
    fixed = "".join(mods[i][0] for i in range(m) if subset_bits >> i & 1) or mods[0][0]
    try:
        proto = build_protocol(protocol, avail, seed, [f"s{i}" for i in range(n)], mods, rate, fraction, fixed)
    except ValueError as err:  # documented refusals: an empty sample, strict with one modality, a fixed subset
        assert ("no modality" in str(err)) or ("at least two" in str(err)), err
        return
    index = torch.arange(n)
    for _ in range(3):
        masks = proto.masks(index, torch.from_numpy(avail))
        assert masks.shape == (n, m) and masks.any(dim=1).all()
        assert not (masks & ~torch.from_numpy(avail)).any()
        if protocol == "strict" and fraction == 0.0:
            assert not masks.all(dim=1).any()
        if protocol in ("strict", "fixed", "natural", "complete"):
            assert torch.equal(masks, proto.masks(index, torch.from_numpy(avail)))


@given(m=st.integers(1, 5), data=st.data(), steps=st.integers(1, 12), k=st.integers(0, 6))
def test_layout_spans_are_consistent_with_the_mask(m, data, steps, k):
    pool = all_subsets(m)
    masks = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6))
    mask = torch.tensor(masks, dtype=torch.bool)
    plen = torch.tensor(data.draw(st.lists(st.integers(0, 30), min_size=len(masks), max_size=len(masks))))
    lay = build_layout(mask, plen, steps, k)
    for b in range(len(masks)):
        starts = lay.span_start[b].tolist()
        present = [j for j in range(m) if masks[b][j]]
        # spans: inside the sequence, after the prompt, disjoint, each framed by its start/end slot
        assert all(plen[b] + 1 <= s and s + steps + 1 <= lay.fusion_start[b] for s in starts)
        assert len({s // (steps + 2) for s in (x - int(plen[b]) for x in starts)}) == m
        # present modalities come first, in configured order, then the missing ones
        order = [j for j in sorted(range(m), key=lambda j: starts[j])]
        assert order == present + [j for j in range(m) if j not in present]
        assert lay.fusion_start[b] == plen[b] + m * (steps + 2) and lay.length[b] == lay.fusion_start[b] + k
        assert lay.modality_at[b][lay.slot_of[b]].tolist() == list(range(m))
    assert lay.total == int(lay.length.max())


@given(data=st.data())
def test_assembled_sequence_holds_every_span_where_the_layout_says(tiny_model, data):
    from conftest import DIMS

    bsz = data.draw(st.integers(1, 4))
    steps = data.draw(st.integers(1, 6))
    mask = torch.tensor(data.draw(st.lists(st.sampled_from(all_subsets(3)), min_size=bsz, max_size=bsz)))
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=bsz, max_size=bsz))
    valid = (torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None])[:, None].expand(-1, 3, -1)
    feats = {mname: torch.randn(bsz, steps, d) for mname, d in DIMS.items()}
    embeds, attend, positions, lay = tiny_model.assemble(feats, mask, valid)
    for b in range(bsz):
        length = int(lay.length[b])
        assert attend[b, :length].sum() == length - 3 * (steps - lengths[b])  # padded steps masked, in every span
        assert not attend[b, length:].any()
        real = positions[b][attend[b]]
        assert torch.equal(real, torch.arange(len(real)))  # real tokens numbered 0, 1, 2, ... without gaps
        for j in range(3):
            s = int(lay.span_start[b, j])
            assert attend[b, s:s + lengths[b]].all() and not attend[b, s + lengths[b]:s + steps].any()
