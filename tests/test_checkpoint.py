"""Pickle-free checkpoints: nested state round-trips; damaged or foreign files are refused."""

import pytest
import torch

from limssr.checkpoint import (
    CheckpointError,
    load_training_checkpoint,
    load_weights,
    save_training_checkpoint,
    save_weights,
)


def test_training_state_round_trip(tmp_path):
    state = {
        "epoch": 3, "global_step": 120, "name": "x", "none": None, "flag": True, "lr": 2e-4,
        "state_dict": {"model.a": torch.randn(3, 2), "model.b": torch.tensor(1.5)},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(4.0), "exp_avg": torch.ones(2)}},
                              "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]}],
        "rng": torch.ByteTensor([1, 2, 3]),
    }
    path = tmp_path / "last.safetensors"
    save_training_checkpoint(state, path)
    back = load_training_checkpoint(path)
    assert back["epoch"] == 3 and back["none"] is None and back["flag"] is True and back["name"] == "x"
    assert torch.equal(back["state_dict"]["model.a"], state["state_dict"]["model.a"])
    opt = back["optimizer_states"][0]
    assert list(opt["state"]) == [0] and torch.equal(opt["state"][0]["exp_avg"], torch.ones(2))
    assert opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["rng"], state["rng"])


def test_objects_that_need_pickle_are_refused(tmp_path):
    with pytest.raises(TypeError, match="checkpoint.callback"):
        save_training_checkpoint({"callback": object()}, tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


def test_damaged_and_foreign_files_are_refused(tmp_path):
    good = tmp_path / "w.safetensors"
    save_weights({"x": torch.ones(4)}, {"seed": 1}, good)
    state, cfg = load_weights(good)
    assert cfg == {"seed": 1} and torch.equal(state["x"], torch.ones(4))
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="t.safetensors"):
        load_weights(truncated)
    with pytest.raises(CheckpointError, match="not a limssr-training-checkpoint"):
        load_training_checkpoint(good)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "none.safetensors")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_weights({"x": torch.ones(2)}, {"v": 1}, path)
    import limssr.checkpoint as ck

    def boom(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        save_weights({"x": torch.zeros(2)}, {"v": 2}, path)
    assert load_weights(path)[1] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_atomic_writes_get_the_permissions_of_a_plainly_created_file(tmp_path):
    import os

    from limssr.checkpoint import atomic_save
    from limssr.report import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
        atomic_save({"w": torch.zeros(2)}, {}, tmp_path / "w.safetensors")
    finally:
        os.umask(umask)
    for name in ("results.json", "w.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "w.safetensors"]
