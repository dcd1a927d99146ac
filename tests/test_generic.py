"""The generic on-disk layout: round trip, natural missingness, and errors that name the file."""

import numpy as np
import pytest

from limssr.data.generic import read_generic, read_unlabelled, write_generic
from limssr.data.samples import DataError


def test_round_trip_is_identical(small_data, tmp_path):
    root = write_generic(small_data, tmp_path / "d")
    back = read_generic(root)
    assert back.modalities == small_data.modalities and back.dims == small_data.dims
    assert back.score_range == small_data.score_range
    for split in ("train", "test"):
        for a, b in zip(small_data.split(split), back.split(split)):
            assert a.name == b.name and a.score == b.score
            for m in a.features:
                np.testing.assert_array_equal(a.features[m], b.features[m])
    with pytest.raises(FileExistsError):
        write_generic(small_data, root)


def test_absent_file_is_natural_missingness(small_data, tmp_path):
    root = write_generic(small_data, tmp_path / "d")
    name = small_data.split("train")[0].name
    (root / "features" / "audio" / f"{name}.npy").unlink()
    back = read_generic(root)
    assert set(back.split("train")[0].features) == {"video", "flow"}


def test_errors_name_file_and_key(small_data, tmp_path):
    root = write_generic(small_data, tmp_path / "d")
    name = small_data.split("test")[1].name
    np.save(root / "features" / "flow" / f"{name}.npy", np.zeros((8, 5), dtype=np.float32))
    with pytest.raises(DataError, match=f"flow/{name}.npy: dim 5"):
        read_generic(root)
    np.save(root / "features" / "flow" / f"{name}.npy", np.full((8, 24), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match=f"'{name}' modality 'flow' holds NaN"):
        read_generic(root)
    with open(root / "test.csv", "a") as fh:
        fh.write("extra,abc\n")
    with pytest.raises(DataError, match="test.csv:.*'abc'"):
        read_generic(root)


def test_unlabelled_npz_input(tmp_path):
    np.savez(tmp_path / "s1.npz", video=np.ones((5, 32), dtype=np.float32))
    [s] = read_unlabelled(tmp_path / "s1.npz", ["video", "audio", "flow"])
    assert s.name == "s1" and set(s.features) == {"video"} and s.score is None
    np.savez(tmp_path / "bad.npz", vision=np.ones((5, 32)))
    with pytest.raises(DataError, match="'vision' is not a modality"):
        read_unlabelled(tmp_path / "bad.npz", ["video", "audio", "flow"])
