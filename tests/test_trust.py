"""The hallucination measures (limssr.trust): score shift, imputation fidelity, confidence vs error."""

import json

import numpy as np
import pytest
import torch
from conftest import quick_train_args

from limssr.cli import run
from limssr.data.dataset import AQADataset
from limssr.data.loaders import make_loader
from limssr.evaluation import Predictions
from limssr.trust import _centred_cosine, confidence_vs_error, imputation_fidelity, score_shift


def test_score_shift_is_measured_against_the_complete_score_of_the_same_sample():
    names = [f"s{i}" for i in range(6)]
    label = [50.0, 60, 70, 80, 90, 100]
    full = Predictions(names=names, label=label, score=label, shown=["va"] * 6)  # perfect with both
    offsets = [0.0, 1, 2, 3, 4, 5]
    part = Predictions(names=names[::-1], label=label[::-1], score=[y + d for y, d in zip(label[::-1], offsets)],
                       shown=["v"] * 6)  # order differs: matched by name
    res = score_shift({"va": full, "v": part}, "va")
    assert set(res) == {"v"} and res["v"]["n"] == 6
    assert res["v"]["shift"]["mean"] == pytest.approx(2.5) and res["v"]["shift"]["median"] == pytest.approx(2.5)
    assert res["v"]["shift_error_spearman"] == pytest.approx(1.0)  # every shift is all error here
    assert res["v"]["extra_abs_error"] == pytest.approx(2.5)


def test_heads_disagreement_against_error():
    y = np.arange(10, dtype=float)
    err = np.linspace(0, 9, 10)
    p = Predictions(names=[str(i) for i in range(10)], label=list(y), score=list(y + err), shown=["v"] * 10,
                    heads={"main": list(y + 2 * err), "aux": list(y)})
    res = confidence_vs_error({"v": p}, "va", model=None)
    assert res["disagreement"]["v"]["spearman_with_abs_error"] == pytest.approx(1.0)
    assert res["path2_confidence"] is None


def test_centred_cosine_pairs_and_constant_rows():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 8))
    assert np.allclose(_centred_cosine(a, a), 1.0)
    assert np.allclose(_centred_cosine(a, np.ones((50, 8)) * 3.0), 0.0)  # a placeholder: one vector for all
    assert abs(_centred_cosine(rng.standard_normal((400, 16)), rng.standard_normal((400, 16))).mean()) < 0.06


def test_fidelity_of_the_tiny_model(tiny_model, small_data):
    dataset = AQADataset(small_data.split("test"), small_data.modalities, small_data.dims, small_data.score_range,
                         6, train=False)
    res = imputation_fidelity(tiny_model, make_loader(dataset, 4, shuffle=False), torch.device("cpu"))
    layers = tiny_model.backbone.config.num_hidden_layers + 1
    assert res["n"] == len(dataset)
    for m in small_data.modalities:
        r = res["modalities"][m]
        assert len(r["fidelity"]) == len(r["control"]) == layers
        assert r["fidelity"][0] == 0.0 and r["control"][0] == 0.0  # a placeholder embedding is the same for all
        assert all(-1.0 <= x <= 1.0 for x in r["fidelity"] + r["control"])
        assert r["fidelity"][-1] != 0.0  # deeper, the placeholders read the shown modalities


QUICK = quick_train_args(n_train=24, n_test=8)


@pytest.mark.parametrize("method", ["limssr", "zero-fill"])
def test_limssr_trust_writes_the_report(tmp_path, method):
    out = tmp_path / "run"
    assert run(["train", "--out", str(out), "--method", method, *QUICK]) == 0
    assert run(["trust", str(out)]) == 0
    report = json.loads((out / "trust" / "trust.json").read_text())
    assert set(report["score_shift"]) == {"va", "vf", "af", "v", "a", "f"}
    assert (out / "trust" / "shift.png").stat().st_size > 0
    text = (out / "trust" / "trust.md").read_text()
    if method == "limssr":
        assert set(report["fidelity"]["modalities"]) == {"video", "audio", "flow"}
        assert (out / "trust" / "fidelity.png").stat().st_size > 0
        assert "Imputation fidelity (8 complete test samples" in text
        assert set(report["confidence"]["path2_confidence"]) == {"video", "audio", "flow"}
    else:
        assert report["fidelity"] is None and "not measured (the method has no LLM sequence)" in text
    with pytest.raises(SystemExit, match="already exists"):
        run(["trust", str(out), "--out", str(out / "trust")])
