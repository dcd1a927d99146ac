"""The bad-input suite: every case is refused, or handled as documented, with a message that names the
file, key or field; nothing already written is overwritten or lost."""

import errno
import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import DIMS, tiny_run_config

from limssr import runs
from limssr.cli import main
from limssr.config import ConfigError, load_config
from limssr.data.generic import read_generic, read_unlabelled
from limssr.data.samples import DataError
from limssr.data.synth_layouts import write_layout


@pytest.fixture()
def data_dir(tmp_path):
    return write_layout("generic", tmp_path / "data", small=True)


def _name(root, split="train", i=0):
    return (root / f"{split}.csv").read_text().splitlines()[1 + i].split(",")[0]


def _feature(root, modality, name):
    return root / "features" / modality / f"{name}.npy"


def _digest(path):
    return {p.relative_to(path): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def _cli_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code != 0
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- feature files


def test_truncated_npy(data_dir):
    name = _name(data_dir)
    path = _feature(data_dir, "video", name)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=f"features/video/{name}.npy: damaged or truncated .npy file"):
        read_generic(data_dir)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_features(data_dir, value):
    name = _name(data_dir, "test", 2)
    arr = np.load(_feature(data_dir, "audio", name))
    arr[1, 3] = value
    np.save(_feature(data_dir, "audio", name), arr)
    with pytest.raises(DataError, match=f"sample '{name}' modality 'audio' holds NaN or Inf"):
        read_generic(data_dir)


def test_wrong_feature_dim(data_dir):
    name = _name(data_dir)
    np.save(_feature(data_dir, "flow", name), np.zeros((9, 5), np.float32))
    with pytest.raises(DataError, match=f"flow/{name}.npy: dim 5, but other 'flow' files have dim"):
        read_generic(data_dir)


@pytest.mark.parametrize("shape", [(9,), (2, 3, 4, 5)])
def test_arrays_that_are_not_two_dimensional(data_dir, shape):
    name = _name(data_dir)
    np.save(_feature(data_dir, "video", name), np.zeros(shape, np.float32))
    with pytest.raises(DataError, match=rf"video/{name}.npy: expected a 2-D \(T, D\) array, got shape"):
        read_generic(data_dir)


def test_zero_time_steps(data_dir):
    name = _name(data_dir)
    for m, d in {"video": 64, "audio": 48, "flow": 80}.items():
        np.save(_feature(data_dir, m, name), np.zeros((0, d), np.float32))
    with pytest.raises(DataError, match=f"sample '{name}' modality 'video' has T = 0 time steps"):
        read_generic(data_dir)


def test_modality_lengths_differ_by_more_than_a_step(data_dir):
    name = _name(data_dir)
    np.save(_feature(data_dir, "audio", name), np.zeros((2, 48), np.float32))
    with pytest.raises(DataError, match=f"'{name}' has modalities of lengths .* differ by more than 1 step"):
        read_generic(data_dir)


def test_malicious_pickle_in_a_feature_dict(tmp_path):
    root = write_layout("fisv", tmp_path / "fisv", small=True)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    np.save(root / "Fis-feature" / "FISV_audio_AST.npy", {"1": Exploit()}, allow_pickle=True)
    with pytest.raises(DataError, match="FISV_audio_AST.npy: refused to load"):
        runs.load_data(load_config(overrides=["data.source=fisv", f"data.path={root}"]))
    assert not marker.exists()


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize("line,message", [
    ("lonely", "expected 2 fields"),
    ("x1,abc", "score 'abc' of 'x1' is not a number"),
    ("x1,-3.5", "score '-3.5' of 'x1' must be finite and non-negative"),
])
def test_malformed_label_lines(data_dir, line, message):
    with open(data_dir / "train.csv", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DataError, match=f"train.csv:26: {message}"):
        read_generic(data_dir)


def test_duplicate_name_in_labels(data_dir):
    first = _name(data_dir, "test")
    with open(data_dir / "test.csv", "a") as fh:
        fh.write(f"{first},1.0\n")
    with pytest.raises(DataError, match=f"test.csv:10: duplicate name '{first}' \\(first on line 2\\)"):
        read_generic(data_dir)
    (data_dir / "test.csv").write_text((data_dir / "test.csv").read_text().replace(f"{first},1.0\n", ""))
    train_name = _name(data_dir, "train")
    with open(data_dir / "test.csv", "a") as fh:  # a training sample in the test split
        fh.write(f"{train_name},1.0\n")
    with pytest.raises(DataError, match=f"sample '{train_name}' is in both the train and the test split"):
        read_generic(data_dir)


def test_label_without_features(data_dir):
    with open(data_dir / "train.csv", "a") as fh:
        fh.write("ghost,10\n")
    with pytest.raises(DataError, match="sample 'ghost' has no feature file under .*features/<modality>/ghost.npy"):
        read_generic(data_dir)


def test_features_without_labels_are_ignored_by_readers_and_reported_by_check(data_dir):
    from limssr.data.check import check_directory

    np.save(_feature(data_dir, "video", "orphan"), np.zeros((9, 64), np.float32))
    assert "orphan" not in {s.name for ss in read_generic(data_dir).splits.values() for s in ss}
    assert any("orphan.npy: features without a label" in p for p in check_directory(data_dir).problems)


def test_empty_split(data_dir):
    (data_dir / "test.csv").write_text("name,score\n")
    with pytest.raises(DataError, match="test.csv: no samples \\(empty split\\)"):
        read_generic(data_dir)


def test_label_file_not_utf8(tmp_path):
    from limssr.data.labels import parse_fisv

    (tmp_path / "train.txt").write_bytes("1 28.7 29.3 1\n2 \xe9t\xe9 1 1\n".encode("latin-1"))
    with pytest.raises(DataError, match="train.txt: not UTF-8 text"):
        parse_fisv(tmp_path / "train.txt")


def test_windows_line_endings_are_read(tmp_path):
    from limssr.data.labels import parse_rg

    (tmp_path / "test.txt").write_bytes(b"Video_Name\tDifficulty_Score Execution_Score Total_Score\tPenalty\r\n"
                                        b"Ball_001\t10.5\t8.3\t18.8\t0.0\t92\r\nBall_002\t7.2\t4.2\t10.8\t0.6\t93")
    assert [n for n, _ in parse_rg(tmp_path / "test.txt", "Ball")] == ["Ball_001", "Ball_002"]


# ----------------------------------------------------------------------------- names and configs


def test_unknown_dataset_preset_and_modality_names(capsys, tmp_path):
    with pytest.raises(ConfigError, match="'data.source' must be one of"):
        load_config(overrides=["data.source=kinetics", "data.path=/x"])
    assert "unknown preset 'fs2000'" in _cli_error(["train", "--preset", "fs2000"], capsys)
    assert "invalid choice: 'kinetics'" in _cli_error(["data", "check", str(tmp_path), "--dataset", "kinetics"], capsys)
    np.savez(tmp_path / "s.npz", vision=np.zeros((4, 64), np.float32))
    with pytest.raises(DataError, match="key 'vision' is not a modality"):
        read_unlabelled(tmp_path / "s.npz", list(DIMS))
    with pytest.raises(DataError, match="unknown score type 'Rope' for rg"):
        root = write_layout("rg", tmp_path / "rg", small=True, apparatus=("Ball",))
        runs.load_data(load_config(overrides=["data.source=rg", f"data.path={root}", "data.score_type=Rope"]))


def test_sample_with_every_modality_missing(tmp_path):
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(DataError, match="empty.npz: holds no modality at all"):
        read_unlabelled(tmp_path / "empty.npz", list(DIMS))


def test_protocol_that_would_leave_a_training_sample_empty(data_dir):
    name = _name(data_dir)
    _feature(data_dir, "video", name).unlink()
    cfg = tiny_run_config(["data.source=generic", f"data.path={data_dir}", "train.missing=fixed",
                           "train.fixed_subset=v"])
    with pytest.raises(ConfigError, match=f"subset 'v' leaves training sample '{name}' with no modality"):
        runs.train(cfg, out=data_dir.parent / "run", progress=False)
    assert not (data_dir.parent / "run").exists()  # a failed start leaves nothing behind


def test_one_modality_under_strict_is_a_one_line_error_and_the_same_out_works_after(data_dir, capsys):
    shutil.rmtree(data_dir / "features" / "audio")
    shutil.rmtree(data_dir / "features" / "flow")
    (data_dir / "limssr-data.yaml").write_text("modalities: [video]\nscore_range: 130.0\n")
    out = data_dir.parent / "run"
    argv = ["train", "--preset", "synthetic-quick", "--backbone", "tiny", "--data", str(data_dir), "--epochs", "1",
            "--out", str(out)]
    err = _cli_error(argv, capsys)
    assert "train.missing 'strict' needs at least two modalities" in err and "train.missing=complete" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main(argv + ["train.missing=complete"])
    assert exc.value.code == 0 and (out / "eval" / "results.json").is_file()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_in_the_config_are_refused(value, capsys, tmp_path):
    err = _cli_error(["train", "--preset", "synthetic-quick", "--out", str(tmp_path / "r"), f"train.lr={value}"],
                     capsys)
    assert "config key 'train.lr' must be a finite number" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("override,message", [
    ("train.learning_rate=1e-3", "unknown config key 'train.learning_rate'"),
    ("train.batch_size=eight", "config key 'train.batch_size' must be an integer"),
    ("model.lora={r: 4, alpha: big}", "config key 'model.lora.alpha' must be an integer"),
])
def test_config_keys_that_do_not_exist_or_have_the_wrong_type(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(preset="synthetic-quick", overrides=[override])


# ----------------------------------------------------------------------------- backbones


def test_backbone_path_missing_or_not_a_causal_lm(tmp_path, capsys):
    err = _cli_error(["train", "--preset", "synthetic-quick", "--backbone", str(tmp_path / "none"),
                      "--out", str(tmp_path / "o1")], capsys)
    assert f"backbone path '{tmp_path / 'none'}' does not exist" in err
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    err = _cli_error(["train", "--preset", "synthetic-quick", "--backbone", str(tmp_path / "bert"),
                      "--out", str(tmp_path / "o2")], capsys)
    assert "is a 'BertModel' model, not a causal language model" in err


def test_backbone_that_needs_remote_code_is_refused(tmp_path, capsys):
    from limssr.backbone import BackboneError, load_backbone
    from limssr.config import LoraSettings

    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "my-llm", "architectures": ["MyLLMForCausalLM"],
                                                    "auto_map": {"AutoConfig": "configuration_my.MyConfig"}}))
    marker = tmp_path / "ran"
    (remote / "configuration_my.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(BackboneError, match="needs custom code from its directory; refused"):
        load_backbone(str(remote), LoraSettings())
    assert not marker.exists()


# ----------------------------------------------------------------------------- checkpoints and run directories


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir, _, _ = runs.train(tiny_run_config(["train.epochs=1", "train.selection=last"]),
                               out=tmp_path_factory.mktemp("r") / "run", progress=False)
    return run_dir


def test_truncated_checkpoint(finished_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert f"checkpoint '{weights}' is damaged or not a safetensors file" in _cli_error(["evaluate", str(copy)], capsys)
    assert "has finished training already" in _cli_error(["train", "--resume", str(copy)], capsys)
    weights.unlink()  # an interrupted run, then, whose last checkpoint is damaged
    last = copy / "checkpoints" / "last.safetensors"
    last.write_bytes(b"\x00" * 10)
    assert "damaged" in _cli_error(["train", "--resume", str(copy)], capsys)


@pytest.mark.parametrize("change,message", [
    ("model.backbone: tiny-qwen", "was trained on another backbone"),
    ("model.num_fusion_tokens: 2", "tensor 'added_tokens' has shape"),
])
def test_checkpoint_from_another_architecture(finished_run, tmp_path, capsys, change, message):
    import yaml

    from limssr.checkpoint import load_weights, save_weights

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    state, cfg, signature = load_weights(copy / "model.safetensors", with_backbone=True)
    key, value = change.split(": ")
    section, field = key.split(".")
    cfg[section][field] = yaml.safe_load(value)
    save_weights(state, cfg, copy / "model.safetensors", backbone=signature)
    assert message in _cli_error(["evaluate", str(copy)], capsys)


def test_checkpoint_from_another_set_of_modalities(finished_run, tmp_path, capsys):
    from limssr.checkpoint import load_weights, save_weights

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    state, cfg = load_weights(copy / "model.safetensors")
    cfg["model"]["modalities"] = ["video", "flow"]
    cfg["model"]["dims"] = {"video": 32, "flow": 24}
    save_weights(state, cfg, copy / "model.safetensors")
    assert "does not fit this model" in _cli_error(["evaluate", str(copy)], capsys)


def test_output_directory_that_already_holds_a_run(finished_run, capsys):
    before = _digest(finished_run)
    err = _cli_error(["train", "--preset", "synthetic-quick", "--out", str(finished_run)], capsys)
    assert f"'{finished_run}' already holds a run" in err
    assert _digest(finished_run) == before


def test_disk_full_while_a_checkpoint_is_written(tmp_path, monkeypatch):
    import limssr.checkpoint as ck
    from limssr.checkpoint import load_training_checkpoint

    real, calls = ck.save_file, {"n": 0}

    def failing(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", failing)
    cfg = tiny_run_config(["train.epochs=3", "train.selection=last"])
    with pytest.raises(OSError, match="No space left"):
        runs.train(cfg, out=tmp_path / "run", progress=False)
    ckpt = load_training_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert ckpt["epoch"] == 0  # the previous checkpoint is intact
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["last.safetensors"]


def test_read_only_output_directory(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr: cannot make a directory read-only")
    else:
        parent.chmod(0o555)
    try:
        err = _cli_error(["train", "--preset", "synthetic-quick", "--out", str(parent / "run")], capsys)
        assert f"no permission to write '{parent / 'run'}" in err or f"'{parent}" in err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(parent)])
        else:
            parent.chmod(0o755)


def test_conversion_interrupted_half_way(tmp_path, monkeypatch):
    from limssr.data import convert as conv

    src = write_layout("rg", tmp_path / "rg", small=True, apparatus=("Ball", "Hoop"))
    real, calls = np.savez, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(conv.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        conv.convert(src, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")] == []


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from limssr.checkpoint import load_training_checkpoint
    from limssr.methods.limssr import LIMSSR

    real = LIMSSR.loss

    def poisoned(self, out, target):
        parts = real(self, out, target)
        if self.epoch == 1:
            parts["loss"] = parts["loss"] * float("nan")
        return parts

    monkeypatch.setattr(LIMSSR, "loss", poisoned)
    with pytest.raises(FloatingPointError, match="non-finite training loss at epoch 1, step 6, samples"):
        runs.train(tiny_run_config(["train.epochs=3", "train.selection=last"]), out=tmp_path / "a", progress=False)
    assert load_training_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")["epoch"] == 0
    assert not (tmp_path / "a" / "model.safetensors").exists()
    with pytest.warns(UserWarning, match="batch skipped"):
        run_dir, module, _ = runs.train(tiny_run_config(["train.epochs=3", "train.selection=last", "train.nonfinite=skip"]),
                                        out=tmp_path / "b", progress=False)
    assert module.skipped_batches == 6 and (run_dir / "model.safetensors").is_file()


def test_nan_predictions_are_never_written(finished_run, tmp_path, monkeypatch):
    from limssr.methods.limssr import LIMSSR

    real = LIMSSR.heads

    def nan_heads(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        out.score = out.score * float("nan")
        return out

    monkeypatch.setattr(LIMSSR, "heads", nan_heads)
    with pytest.raises(FloatingPointError, match="non-finite score for sample 'perf_000"):
        runs.evaluate(finished_run, show=False, out_dir=tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


# ----------------------------------------------------------------------------- reports


def test_a_subset_with_too_few_samples_reads_as_undefined_and_results_json_stays_json(tmp_path):
    from limssr.aggregate import latest_results
    from limssr.evaluation import Predictions, subset_results
    from limssr.report import markdown, write_results

    def preds(n):
        return Predictions(names=[f"s{i}" for i in range(n)], label=[float(10 * i) for i in range(n)],
                           score=[float(10 * i + 1) for i in range(n)], shown=["v"] * n)

    p = {"va": preds(5), "v": preds(2), "a": preds(0)}
    results = subset_results(p, ["video", "audio"], train_mean=20.0)
    assert np.isnan(results["subsets"]["v"]["spearman"]) and np.isnan(results["subsets"]["a"]["mse"])
    assert results["average_over"] == ["v"] and np.isnan(results["average"]["spearman"])
    row = next(line for line in markdown(results).splitlines() if line.startswith("| {v} |"))
    assert row.split("|")[2].strip() == "-"  # not 0.0000
    write_results(results, p, tmp_path / "eval")

    def refuse(token):
        raise ValueError(f"bare {token} in results.json")

    raw = json.loads((tmp_path / "eval" / "results.json").read_text(), parse_constant=refuse)  # strict JSON
    assert raw["subsets"]["v"]["spearman"] is None
    assert np.isnan(latest_results(tmp_path)["subsets"]["v"]["spearman"])  # read back as undefined


# ----------------------------------------------------------------------------- issue 17: silent wrong results


def test_a_dangling_link_or_a_directory_in_place_of_a_feature_file_is_an_error(data_dir):
    name, other = _name(data_dir, i=0), _name(data_dir, i=1)
    path = _feature(data_dir, "audio", name)
    path.unlink()
    path.symlink_to(data_dir / "nowhere.npy")
    with pytest.raises(DataError, match=f"audio/{name}.npy: a symbolic link to .*nowhere.npy', which does not exist"):
        read_generic(data_dir)
    path.unlink()
    path = _feature(data_dir, "flow", other)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataError, match=f"flow/{other}.npy: is not a regular file"):
        read_generic(data_dir)


@pytest.mark.parametrize("bad", ["../../outside/x", "/etc/passwd", ".hidden", "a\\\\b"])
def test_label_names_that_would_leave_the_features_folder(data_dir, bad):
    lines = (data_dir / "train.csv").read_text().splitlines()
    lines[1] = f"{bad},50.0"
    (data_dir / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="train.csv:2: name .* must be a plain file name"):
        read_generic(data_dir)


def test_scores_above_the_score_range_are_refused_by_train(data_dir):
    from limssr.data import load_data

    lines = (data_dir / "test.csv").read_text().splitlines()
    name = lines[1].split(",")[0]
    lines[1] = f"{name},131.5"
    (data_dir / "test.csv").write_text("\n".join(lines) + "\n")
    cfg = tiny_run_config(["data.source=generic", f"data.path={data_dir}"])
    with pytest.raises(DataError, match=f"test sample '{name}' has score 131.5, above the divisor 130"):
        load_data(cfg)
    assert load_data(tiny_run_config(["data.source=generic", f"data.path={data_dir}", "data.score_range=140"]))


def _quick(data_dir, out):
    return ["train", "--preset", "synthetic-quick", "--backbone", "tiny", "--data", str(data_dir), "--epochs", "1",
            "--out", str(out)]


def test_an_empty_validation_split_is_one_line_and_leaves_nothing(data_dir, capsys):
    out = data_dir.parent / "run"
    err = _cli_error(_quick(data_dir, out) + ["data.val_fraction=0.01"], capsys)
    assert "data.val_fraction=0.01 leaves 0 of" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_out_directory_that_cannot_be_made(data_dir, capsys, where):
    (data_dir.parent / "afile").write_text("x")
    out = data_dir.parent / "afile" / "run" if where == "under-a-file" else "/proc/limssr-run"
    err = _cli_error(_quick(data_dir, out), capsys)
    assert f"cannot create the run directory '{out}'" in err and len(err.strip().splitlines()) == 1


def test_predict_on_a_truncated_npz(finished_run, tmp_path, capsys):
    path = tmp_path / "cut.npz"
    np.savez(path, video=np.zeros((5, DIMS["video"]), np.float32))
    path.write_bytes(path.read_bytes()[:60])
    err = _cli_error(["predict", str(finished_run), str(path)], capsys)
    assert "cut.npz: cannot read archive, damaged or truncated" in err and "Traceback" not in err


def test_a_crafted_pickle_declaring_a_huge_array_is_refused_before_allocation(tmp_path):
    from limssr.data.safe_pickle import read_feature_dict

    rebuild = np.zeros(1).__reduce__()[0]  # numpy's own array-rebuilding helper, an allowed global

    class Huge:
        def __reduce__(self):
            return rebuild, (np.ndarray, (0,), b"b"), (1, (10**15,), np.dtype("O"), False, [1.0, 2.0])

    path = tmp_path / "crafted.npy"
    np.save(path, np.array({"v1": Huge()}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"crafted.npy: damaged or crafted pickled array: its shape \(1000000000000000,\)"):
        read_feature_dict(path)


def test_rows_of_a_subset_some_samples_cannot_show_are_marked():
    from limssr.evaluation import Predictions, subset_results
    from limssr.report import markdown

    names = [f"s{i}" for i in range(4)]
    full = Predictions(names=names, label=[1.0, 2, 3, 4], score=[1.0, 2, 3, 5], shown=["va", "va", "v", "v"])
    part = Predictions(names=names, label=[1.0, 2, 3, 4], score=[1.0, 2, 4, 3], shown=["v"] * 4)
    results = subset_results({"va": full, "v": part}, ["video", "audio"], train_mean=2.5)
    assert results["subsets"]["va"]["n_exact"] == 2 and results["subsets"]["v"]["n_exact"] == 4
    text = markdown(results)
    assert "| {v,a}* |" in text and "| {v} |" in text
    assert "*: 2 of 4 test samples lack a modality of {v,a} and are scored with the ones they have." in text


def test_a_modality_never_shown_in_training_is_warned_about():
    from limssr.data import load_data
    from limssr.training.datamodule import LimssrDataModule

    cfg = tiny_run_config(["train.missing=fixed", "train.fixed_subset=va"])
    with pytest.warns(UserWarning, match="modality 'flow' is never shown in training \\(train.fixed_subset=va hides it"):
        LimssrDataModule(runs.resolve(cfg, load_data(cfg)), load_data(cfg))
