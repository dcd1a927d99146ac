"""benchmarks/archive_runs.py: finished runs travel without weights, stay reusable, and third-party
labels never enter the archive."""

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml
from conftest import tiny_run_config

from limssr import runs
from limssr.benchmark import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
FAST = ["data.synthetic.n_train=24", "data.synthetic.n_test=8", "train.epochs=1", "train.selection=last"]


def _archive_module():
    spec = importlib.util.spec_from_file_location("archive_runs", ROOT / "benchmarks" / "archive_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_an_archived_run_is_reused_without_its_weights(tmp_path):
    arc = _archive_module()
    base = tiny_run_config(FAST)
    first = run_benchmark(base, ["zero-fill"], ["strict"], [1], tmp_path / "b", progress=False)
    assert arc.main(["pack", str(tmp_path / "b"), str(tmp_path / "arc")]) == 0
    run = tmp_path / "arc" / "zero-fill" / "strict" / "seed-1"
    assert (run / "config.yaml").is_file() and (run / "eval" / "predictions.csv").is_file()
    assert not list((tmp_path / "arc").rglob("*.safetensors")) and not list((tmp_path / "arc").rglob("*.ckpt"))
    assert (tmp_path / "arc" / "comparison.json").is_file()  # loose derived files travel too
    # packing again after nothing changed adds nothing and raises nothing
    assert arc.main(["pack", str(tmp_path / "b"), str(tmp_path / "arc")]) == 0

    assert arc.main(["unpack", str(tmp_path / "arc"), str(tmp_path / "new")]) == 0
    new_run = tmp_path / "new" / "zero-fill" / "strict" / "seed-1"
    assert runs.run_state(new_run) == "evaluated"
    again = run_benchmark(base, ["zero-fill"], ["strict"], [1], tmp_path / "new", progress=False)
    assert not (new_run / runs.WEIGHTS_FILE).exists()  # reused, not retrained
    assert again["rows"] == first["rows"]
    # another config on the archived run is still refused
    with pytest.raises(runs.RunError, match="another configuration"):
        run_benchmark(base, ["zero-fill"], ["strict"], [1], tmp_path / "new", progress=False,
                      baseline_overrides=["train.lr=1e-3"])


def test_labels_of_real_data_are_removed_and_refilled(tmp_path):
    arc = _archive_module()
    run = tmp_path / "root" / "r" / "seed-1"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"source": "generic", "score_type": "TES"}}))
    (run / "eval" / "results.json").write_text("{}")
    (run / "eval" / "predictions.csv").write_text("subset,name,shown,label,score\nv,7,v,31.5,30.0\n")
    arc.main(["pack", str(tmp_path / "root"), str(tmp_path / "arc")])
    packed = list(csv.DictReader((tmp_path / "arc" / "r" / "seed-1" / "eval" / "predictions.csv").open()))
    assert packed == [{"subset": "v", "name": "7", "shown": "v", "label": "", "score": "30.0"}]

    with pytest.raises(SystemExit, match="--labels"):
        arc.main(["unpack", str(tmp_path / "arc"), str(tmp_path / "new")])
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_text("name,TES,PCS\n7,31.5,20.0\n")
    arc.main(["unpack", str(tmp_path / "arc"), str(tmp_path / "new2"), "--labels", str(data)])
    back = (tmp_path / "new2" / "r" / "seed-1" / "eval" / "predictions.csv").read_text()
    assert back == "subset,name,shown,label,score\nv,7,v,31.5,30.0\n"


def test_pack_refuses_to_overwrite_a_differing_run_file(tmp_path):
    arc = _archive_module()
    run = tmp_path / "root" / "seed-1"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text("data: {source: synthetic}\n")
    (run / "eval" / "results.json").write_text("{}")
    unfinished = tmp_path / "root" / "seed-2"  # training, not evaluated: nothing of it is archived
    (unfinished / "logs").mkdir(parents=True)
    (unfinished / "config.yaml").write_text("data: {source: synthetic}\n")
    (unfinished / "timing.json").write_text("{}")
    (unfinished / "logs" / "metrics.csv").write_text("epoch\n0\n")
    arc.main(["pack", str(tmp_path / "root"), str(tmp_path / "arc")])
    assert not (tmp_path / "arc" / "seed-2").exists()
    (run / "eval" / "results.json").write_text('{"other": 1}')
    with pytest.raises(SystemExit, match="exists with other content"):
        arc.main(["pack", str(tmp_path / "root"), str(tmp_path / "arc")])
    assert (tmp_path / "arc" / "seed-1" / "eval" / "results.json").read_text() == "{}"
