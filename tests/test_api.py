"""The Python API, through the README's own example (so the README cannot drift from the code)."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

import limssr
from limssr.config import ConfigError
from limssr.data import DataError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- python-api-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its python-api-example block"
    return match.group(1)


def test_the_readme_example_runs(tmp_path, capsys):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope = {}
        exec(compile(readme_example(), "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    run, scorer, again = scope["run"], scope["scorer"], scope["again"]
    assert run.dir == Path("runs/quick") and (tmp_path / "runs/quick/eval-2/results.json").is_file()
    assert again["subsets"] == run.results["subsets"]  # scoring again gives the same numbers
    one = scorer.predict({"video": scope["video"]})
    assert one.shape == (1,) and np.isfinite(one).all()
    # the scorer agrees with `limssr predict`'s path on the same arrays, and with itself in a list
    two = scorer.predict([{"video": scope["video"]}, {"video": scope["video"]}])
    np.testing.assert_allclose(two, [one[0], one[0]], rtol=1e-5)  # float32 sums differ with the batch


def test_overrides_and_errors(tmp_path):
    from limssr.api import run_config

    cfg = run_config("synthetic-quick", backbone="tiny", train__epochs=3, overrides={"train.lr": 1e-3})
    assert (cfg.model.backbone, cfg.train.epochs, cfg.train.lr) == ("tiny", 3, 1e-3)
    assert run_config(cfg, seed=7).seed == 7 and run_config(cfg).train.epochs == 3
    with pytest.raises(ConfigError, match="neither a preset"):
        run_config("no-such-preset")
    with pytest.raises(ConfigError, match="train.epochz"):
        run_config("synthetic-quick", train__epochz=3)


def test_predict_refuses_bad_arrays_naming_the_performance(tmp_path):
    run = limssr.train("synthetic-quick", backbone="tiny", train__epochs=1, out=tmp_path / "r", evaluate=False,
                       progress=False, data__synthetic__n_train=16, data__synthetic__n_test=4,
                       train__selection="last")
    assert run.results is None
    scorer = run.load()
    with pytest.raises(DataError, match="sample '1'"):
        scorer.predict([{"video": np.zeros((10, scorer.dims["video"]))}, {"video": np.zeros((10, 3))}])
    with pytest.raises(DataError, match="performance 0: expected a dict"):
        scorer.predict([np.zeros((10, 3))])
