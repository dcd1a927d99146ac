"""The command line: help, train -> evaluate -> predict, and errors that exit non-zero with a message."""

import csv
import json

import numpy as np
import pytest
from conftest import DIMS

from limssr.cli import main, run

QUICK = ["--preset", "synthetic-quick", "data.synthetic.n_train=24", "data.synthetic.n_test=8", "train.epochs=1",
         f"data.synthetic.dims={{video: {DIMS['video']}, audio: {DIMS['audio']}, flow: {DIMS['flow']}}}"]


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for verb in ("demo", "train", "evaluate", "predict"):
        assert verb in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--preset" in text and "synthetic-quick" in text and "key=value" in text


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert run(["train", *QUICK, "--out", str(out), "--seed", "3"]) == 0
    return out


def test_train_writes_run_and_evaluation(cli_run):
    assert (cli_run / "config.yaml").is_file() and (cli_run / "eval" / "results.json").is_file()
    assert "seed: 3" in (cli_run / "config.yaml").read_text()
    # the software and machine: in the run directory (training) and in results.json (evaluation)
    env = json.loads((cli_run / "env.json").read_text())
    results = json.loads((cli_run / "eval" / "results.json").read_text())
    for record in (env, results["env"]):
        assert record["packages"]["limssr"] and record["packages"]["torch"] and record["python"]
        assert record["device"]["cuda_available"] in (True, False)  # torch was imported by the run


def test_predict_any_subset(cli_run, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    np.savez(inputs / "only_flow.npz", flow=rng.standard_normal((9, DIMS["flow"])).astype(np.float32))
    np.savez(inputs / "complete.npz", **{m: rng.standard_normal((12, d)).astype(np.float32) for m, d in DIMS.items()})
    assert run(["predict", str(cli_run), str(inputs)]) == 0
    out = cli_run / "predictions" / "inputs.csv"
    with open(out) as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert rows["only_flow"]["present"] == "flow" and rows["only_flow"]["missing"] == "video+audio"
    assert rows["complete"]["present"] == "video+audio+flow" and rows["complete"]["missing"] == "-"
    for r in rows.values():
        assert 0.0 <= float(r["score"]) <= 130.0
    assert run(["predict", str(cli_run), str(inputs / "only_flow.npz")]) == 0
    assert (cli_run / "predictions" / "only_flow.csv").is_file()


def test_evaluate_again_writes_a_new_directory(cli_run):
    assert run(["evaluate", str(cli_run)]) == 0
    assert (cli_run / "eval-2" / "results.json").is_file()


@pytest.mark.parametrize("argv,message", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "synthetic-quick", "train.epochs=x"], "'train.epochs' must be an integer"),
    (["evaluate", "/nonexistent/run"], "no trained model"),
    (["train", "--preset", "synthetic-quick", "--backbone", "/nonexistent/model"], "does not exist"),
])
def test_errors_exit_non_zero_with_a_message(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "train" else []))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_wrong_feature_dim_for_predict(cli_run, tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", video=np.zeros((5, 7), dtype=np.float32))
    with pytest.raises(SystemExit):
        main(["predict", str(cli_run), str(tmp_path / "bad.npz")])
    assert "modality 'video' has dim 7, expected 32" in capsys.readouterr().err


def test_help_loads_no_model_library():
    """`limssr --help` and the parser need no torch: the verbs import what they run, the error types
    are imported only when one is raised."""
    import subprocess
    import sys

    code = ("import sys, limssr.cli\n"
            "try:\n    limssr.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_overrides_on_both_sides_of_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", "train.epochs=1", "--preset", "synthetic-quick", "--backbone", "tiny", "--out", str(out),
                "data.synthetic.n_train=24", "--seed", "5", "data.synthetic.n_test=8"]) == 0
    saved = (out / "config.yaml").read_text()
    assert "n_train: 24" in saved and "n_test: 8" in saved and "epochs: 1" in saved and "seed: 5" in saved
    with pytest.raises(SystemExit):
        main(["train", "--preset", "synthetic-quick", "--out", str(tmp_path / "o"), "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
