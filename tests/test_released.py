"""Readers of the released layouts, the generic layout and converted copies; the real label files;
the restricted unpickler."""

import os
from pathlib import Path

import numpy as np
import pytest

from limssr.config import DataConfig
from limssr.data import labels as L
from limssr.data.convert import convert
from limssr.data.generic import write_generic
from limssr.data.released import read_dataset
from limssr.data.safe_pickle import RefusedPickle, read_feature_dict
from limssr.data.samples import DataError
from limssr.data.synth_layouts import write_layout

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real label files not found at {SHARED}")
SCORE = {"fs1000": "PCS", "fisv": "TES", "rg": "Clubs", "generic": None}


@needs_shared
def test_real_fisv_labels_none_dropped():
    train, test = L.parse_fisv(SHARED / "fis-v" / "train.txt"), L.parse_fisv(SHARED / "fis-v" / "test.txt")
    assert (len(train), len(test)) == (400, 100)
    assert train[0][0] == "1" and test[0][0] == "2"
    ids = {n for n, _ in train} | {n for n, _ in test}
    assert ids == {str(i) for i in range(1, 501)}
    compat = [L.parse_fisv(SHARED / "fis-v" / f"{s}.txt", skip_first_line=True) for s in ("train", "test")]
    assert [len(c) for c in compat] == [399, 99]
    assert min(v["TES"] for _, v in train) == pytest.approx(6.33) and max(v["PCS"] for _, v in train) == pytest.approx(38.28)


@needs_shared
@pytest.mark.parametrize("apparatus", L.RG_APPARATUS)
def test_real_rg_labels_per_apparatus(apparatus):
    train = L.parse_rg(SHARED / "rg" / "train.txt", apparatus)
    test = L.parse_rg(SHARED / "rg" / "test.txt", apparatus)
    assert (len(train), len(test)) == (200, 50)
    assert all(n.startswith(apparatus + "_") for n, _ in train + test)
    assert all(v["Total"] < 25 for _, v in train + test)
    if apparatus == "Ball":
        assert "Ball_134" not in {n for n, _ in train + test}
    # the header is detected; the compatibility switch drops the same line
    assert len(L.parse_rg(SHARED / "rg" / "train.txt", apparatus, skip_first_line=True)) == 200


def _same(a, b):
    for split in ("train", "test"):
        sa, sb = a.split(split), b.split(split)
        assert [s.name for s in sa] == [s.name for s in sb]
        for x, y in zip(sa, sb):
            assert x.score == pytest.approx(y.score, abs=1e-9)
            assert set(x.features) == set(y.features)
            for m in x.features:
                np.testing.assert_array_equal(x.features[m], y.features[m])


@pytest.mark.parametrize("layout", ["fs1000", "fisv", "rg", "generic"])
def test_layout_generic_and_converted_copies_give_identical_arrays(layout, tmp_path):
    src = write_layout(layout, tmp_path / "src", small=True)
    original = read_dataset(DataConfig(source="auto", path=str(src), score_type=SCORE[layout]))
    assert original.info["source"] == layout
    assert len(original.split("train")) > 0 and len(original.split("test")) > 0
    convert(src, tmp_path / "converted")
    assert not any(p.suffix == ".npy" and _pickled(p) for p in (tmp_path / "converted").rglob("*.npy"))
    converted = read_dataset(DataConfig(source="auto", path=str(tmp_path / "converted"), score_type=SCORE[layout]))
    _same(original, converted)
    generic = read_dataset(DataConfig(source="auto", path=str(write_generic(original, tmp_path / "generic"))))
    _same(original, generic)


def _pickled(path):
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        return np.lib.format.read_array_header_1_0(fh)[2].hasobject if version == (1, 0) else True


def test_fs1000_rules(tmp_path):
    src = write_layout("fs1000", tmp_path / "fs", small=True)
    data = read_dataset(DataConfig(source="fs1000", path=str(src), score_type="PCS"))
    assert data.score_range == 60.0 and data.dims == {"video": 64, "audio": 48, "flow": 80}
    rows = dict(L.parse_fs1000(src / "train_fs1000_new.txt"))
    s = data.split("train")[1]
    assert s.score == pytest.approx(rows[s.name]["PCS"])  # PCS / factor
    raw = (src / "train_fs1000_new.txt").read_text().splitlines()[1].split()
    assert s.score == pytest.approx(float(raw[2]) / float(raw[8]))
    # the planted video whose audio is one step short loads, cut later to the shortest modality
    assert s.features["audio"].shape[0] == s.features["video"].shape[0] - 1
    # the video file is (T, N, D) and was averaged over N
    video = np.load(src / "output_feature_fs1000_new" / f"{s.name}.npy")
    assert video.ndim == 3 and np.allclose(video.mean(axis=1), s.features["video"])
    np.save(src / "output_feature_fs1000_new" / f"{s.name}.npy", video.mean(axis=1))
    with pytest.raises(DataError, match=f"{s.name}.npy: FS1000 video features must be 3-D"):
        read_dataset(DataConfig(source="fs1000", path=str(src)))
    with pytest.warns(UserWarning, match="2-D video"):
        read_dataset(DataConfig(source="fs1000", path=str(src), video_2d=True))


def test_fisv_header_is_detected(tmp_path):
    plain = read_dataset(DataConfig(source="fisv", path=str(write_layout("fisv", tmp_path / "a", small=True))))
    header = write_layout("fisv", tmp_path / "b", small=True, header=True)
    assert (header / "train.txt").read_text().startswith("name TES PCS")
    with_header = read_dataset(DataConfig(source="fisv", path=str(header)))
    assert len(with_header.split("train")) == len(plain.split("train")) == 24
    dropped = read_dataset(DataConfig(source="fisv", path=str(tmp_path / "a"), skip_first_line=True))
    assert len(dropped.split("train")) == 23 and len(dropped.split("test")) == 7
    pcs = read_dataset(DataConfig(source="fisv", path=str(tmp_path / "a"), score_type="PCS", score_range=45.0))
    assert pcs.score_range == 45.0 and pcs.info["score_type"] == "PCS"
    with pytest.raises(DataError, match="unknown score type 'SS' for fisv"):
        read_dataset(DataConfig(source="fisv", path=str(tmp_path / "a"), score_type="SS"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "FISV_rgb_VST.npy"
    np.save(path, {"1": np.zeros((4, 8), np.float32), "2": Exploit()}, allow_pickle=True)
    with pytest.raises(RefusedPickle, match=r"FISV_rgb_VST.npy: refused to load '(posix|os)\.system'"):
        read_feature_dict(path)
    assert not marker.exists()
    assert read_feature_dict.__module__ == "limssr.data.safe_pickle"


def test_restricted_loader_reads_a_real_dict_and_refuses_junk(tmp_path):
    table = {"Ball_001": np.random.rand(5, 8).astype(np.float32), "Ball_002": np.random.rand(7, 8).astype(np.float32)}
    np.save(tmp_path / "ok.npy", table)
    back = read_feature_dict(tmp_path / "ok.npy")
    assert set(back) == set(table) and all(np.array_equal(back[k], table[k]) for k in table)
    np.save(tmp_path / "list.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="expected a dict"):
        read_feature_dict(tmp_path / "list.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:150])
    with pytest.raises(DataError, match="cut.npy: damaged or truncated"):
        read_feature_dict(tmp_path / "cut.npy")


def test_modalities_one_step_apart_crop_safely():
    from limssr.data.dataset import AQADataset, collate
    from limssr.data.samples import Sample

    s = Sample("x", {"video": np.ones((10, 4), np.float32), "audio": np.ones((9, 3), np.float32)}, 1.0)
    ds = AQADataset([s, s], ["video", "audio"], {"video": 4, "audio": 3}, 10.0, clip_num=12, train=True)
    batch = collate([ds[0], ds[1]], ["video", "audio"], pad_to=12)
    assert batch.features["video"].shape == (2, 12, 4) and (batch.time_mask[0].sum(-1) == 9).all()


def test_reference_crop_never_draws_the_last_start():
    import torch

    from limssr.data.dataset import AQADataset
    from limssr.data.samples import Sample

    s = Sample("x", {"v": np.arange(6, dtype=np.float32)[:, None]}, 1.0)
    starts = {"uniform": set(), "reference": set()}
    torch.manual_seed(0)
    for mode in starts:
        ds = AQADataset([s], ["v"], {"v": 1}, 10.0, clip_num=4, train=True, train_crop=mode)
        for _ in range(200):
            starts[mode].add(int(ds[0]["features"]["v"][0, 0]))
    assert starts["uniform"] == {0, 1, 2} and starts["reference"] == {0, 1}


def test_full_length_test_policy_pads_to_the_longest_in_the_batch():
    from limssr.data.dataset import AQADataset
    from limssr.data.loaders import make_loader
    from limssr.data.samples import Sample

    samples = [Sample(f"s{t}", {"v": np.ones((t, 2), np.float32)}, 1.0) for t in (5, 9, 14)]
    ds = AQADataset(samples, ["v"], {"v": 2}, 10.0, clip_num=8, train=False, test_crop="full")
    batch = next(iter(make_loader(ds, batch_size=3, shuffle=False)))
    assert batch.features["v"].shape == (3, 14, 2)
    assert batch.time_mask[:, 0].sum(dim=1).tolist() == [5, 9, 14]
    centre = AQADataset(samples, ["v"], {"v": 2}, 10.0, clip_num=8, train=False, test_crop="center")
    batch = next(iter(make_loader(centre, batch_size=3, shuffle=False)))
    assert batch.features["v"].shape == (3, 8, 2) and batch.time_mask[:, 0].sum(dim=1).tolist() == [5, 8, 8]
