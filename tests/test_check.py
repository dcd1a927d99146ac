"""`limssr data check`: every planted defect named with its file and key; a clean dataset passes."""

import numpy as np
import pytest

from limssr.cli import run
from limssr.data.check import check_directory
from limssr.data.safe_pickle import read_feature_dict
from limssr.data.synth_layouts import write_layout


@pytest.mark.parametrize("layout", ["fs1000", "fisv", "rg", "generic"])
def test_clean_data_passes(layout, tmp_path, capsys):
    root = write_layout(layout, tmp_path / layout, small=True)
    report = check_directory(root)
    assert report.ok, report.problems
    assert run(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "train" in out


def _rewrite(path, edit):
    table = read_feature_dict(path)
    edit(table)
    np.save(path, table, allow_pickle=True)


def test_pamfn_defects_are_named(tmp_path, capsys):
    root = write_layout("rg", tmp_path / "rg", small=True, apparatus=("Ball", "Hoop"))
    feat = root / "RG-feature"
    _rewrite(feat / "Ball_audio_AST.npy", lambda t: t.pop("Ball_003"))  # missing key
    _rewrite(feat / "Ball_flow_I3D.npy", lambda t: t["Ball_005"].__setitem__((0, 0), np.nan))  # NaN
    _rewrite(feat / "Hoop_rgb_VST.npy", lambda t: t.__setitem__("Hoop_002", np.zeros((6, 63), np.float32)))  # dim
    _rewrite(feat / "Hoop_flow_I3D.npy", lambda t: t.__setitem__("Hoop_999", np.zeros((6, 80), np.float32)))
    with open(root / "test.txt", "a") as fh:
        fh.write("Ball_300\t1.0\tabc\t5.0\t0.0\t90\n")  # malformed line
    report = check_directory(root)
    text = "\n".join(report.problems)
    notes = "\n".join(report.notes)  # what training accepts (a gap in a released set: a missing modality)
    assert f"'Ball_003' has a label but no audio features (expected {feat / 'Ball_audio_AST.npy'} key 'Ball_003')" in notes
    assert f"{feat / 'Ball_flow_I3D.npy'} key 'Ball_005': holds NaN or Inf" in text  # the file read, not a pattern
    assert f"{feat / 'Hoop_rgb_VST.npy'} key 'Hoop_002': dim 63, but most 'video' files have dim 64" in text
    assert f"{feat / 'Hoop_flow_I3D.npy'} key 'Hoop_999': features without a label" in text
    assert f"{root / 'test.txt'}:18: Execution_Score 'abc' of 'Ball_300' is not a number" in text
    assert run(["data", "check", str(root)]) == 1
    assert "problem(s)" in capsys.readouterr().out


def test_fs1000_and_fisv_defects_are_named(tmp_path):
    fs = write_layout("fs1000", tmp_path / "fs", small=True)
    name = (fs / "val_fs1000_new.txt").read_text().split()[0]
    np.save(fs / "i3d_avg_clip8_5s_fs1000" / f"{name}.npy", np.zeros((9, 79), np.float32))
    (fs / "ast_feature_fs1000_new" / f"{name}.npy").unlink()
    with open(fs / "train_fs1000_new.txt", "a") as fh:
        fh.write("short_line 1 2 3\n")
    report = check_directory(fs)
    text = "\n".join(report.problems)
    assert f"i3d_avg_clip8_5s_fs1000/{name}.npy: dim 79" in text
    assert f"'{name}' has a label but no audio features" in "\n".join(report.notes)
    assert "train_fs1000_new.txt:25: expected at least 9 fields" in text

    fisv = write_layout("fisv", tmp_path / "fisv", small=True)
    first = (fisv / "train.txt").read_text().split()[0]
    _rewrite(fisv / "Fis-feature" / "FISV_rgb_VST.npy", lambda t: t[first].__setitem__((1, 1), np.inf))
    text = "\n".join(check_directory(fisv).problems)
    assert f"FISV_rgb_VST.npy key '{first}': holds NaN or Inf" in text


def test_unknown_directory_is_a_problem(tmp_path):
    report = check_directory(tmp_path)
    assert not report.ok and "cannot tell the layout" in report.problems[0]


def test_natural_missingness_in_the_generic_layout_is_counted_not_refused(tmp_path):
    root = write_layout("generic", tmp_path / "g", small=True)
    names = [line.split(",")[0] for line in (root / "train.csv").read_text().splitlines()[1:4]]
    for n in names:
        (root / "features" / "audio" / f"{n}.npy").unlink()
    report = check_directory(root)
    assert report.ok and report.stats["generic"]["missing"] == {"audio": 3}
    for m in ("video", "flow"):
        (root / "features" / m / f"{names[0]}.npy").unlink()
    assert f"'{names[0]}' has a label but no video features" in "\n".join(check_directory(root).problems)


@pytest.mark.parametrize("defect,message", [
    ("both-splits", "is in both the train and the test split"),
    ("no-files", "no sample has features for modality 'flow'"),
    ("same-initial", "share an initial"),
])
def test_check_reports_what_training_refuses(tmp_path, defect, message):
    import shutil

    root = write_layout("generic", tmp_path / "g", small=True)
    if defect == "both-splits":
        name = (root / "test.csv").read_text().splitlines()[1].split(",")[0]
        with open(root / "train.csv", "a") as fh:
            fh.write(f"{name},50.0\n")
    elif defect == "no-files":
        shutil.rmtree(root / "features" / "flow")
    else:
        (root / "features" / "audio").rename(root / "features" / "vibration")
        (root / "limssr-data.yaml").write_text("modalities: [video, vibration, flow]\nscore_range: 130.0\n")
    report = check_directory(root)
    assert not report.ok and any(message in p for p in report.problems), report.problems
