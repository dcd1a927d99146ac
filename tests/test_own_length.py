"""Modalities with lengths of their own (limssr-data.yaml `own_length`): a (T, 384) sentence, a
(T', 384) title missing for some samples and a (1, 31) tabular vector are one sample; they train and
evaluate with LIMSSR and two baselines, end to end through the CLI."""

import json

import numpy as np
import pytest
import torch
import yaml

from limssr.backbone import load_backbone
from limssr.cli import run
from limssr.config import LoraSettings, ModelConfig, config_from_dict
from limssr.data import DataError
from limssr.data.check import check_directory
from limssr.data.dataset import AQADataset, collate
from limssr.data.generic import read_generic
from limssr.methods.limssr import LIMSSR
from limssr.runs import resolve
from limssr.sequence import prompt_text
from limssr.subsets import all_subsets

MODS = ["sentence", "title", "vector"]


def write_mixed(root, n_train=40, n_test=16, own_length=("title", "vector"), seed=0):
    """The worked example of docs/data.md: the score is carried by the vector and the sentence."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    manifest = {"modalities": MODS, "score_range": 100}
    if own_length:
        manifest["own_length"] = list(own_length)
    (root / "limssr-data.yaml").write_text(yaml.safe_dump(manifest))
    for m in MODS:
        (root / "features" / m).mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rows = ["name,score"]
        for i in range(n):
            name = f"{split}{i:03d}"
            quality = rng.uniform(0, 1)
            vector = rng.normal(size=(1, 31)).astype(np.float32)
            vector[0, :4] = quality * 3
            sentence = rng.normal(size=(rng.integers(5, 65), 384)).astype(np.float32)
            sentence[:, :8] += quality
            np.save(root / "features" / "sentence" / f"{name}.npy", sentence)
            np.save(root / "features" / "vector" / f"{name}.npy", vector)
            if i % 3:  # every third sample has no title
                title = rng.normal(size=(rng.integers(3, 18), 384)).astype(np.float32)
                np.save(root / "features" / "title" / f"{name}.npy", title)
            rows.append(f"{name},{100 * quality:.3f}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return write_mixed(tmp_path_factory.mktemp("own") / "mixed")


def test_lengths_that_differ_need_own_length(tmp_path):
    root = write_mixed(tmp_path / "aligned", n_train=6, n_test=3, own_length=())
    with pytest.raises(DataError, match="differ by more than 1 step.*own_length"):
        read_generic(root)
    report = check_directory(root)
    assert any("own_length" in p for p in report.problems)


def test_bad_own_length_key_is_named(tmp_path):
    root = write_mixed(tmp_path / "bad", n_train=4, n_test=2, own_length=("headline",))
    with pytest.raises(DataError, match="key 'own_length' must list distinct names from 'modalities'"):
        read_generic(root)


def test_check_and_reader_accept_it(mixed):
    report = check_directory(mixed)
    assert not report.problems, report.problems
    data = read_generic(mixed)
    assert data.own_length == ["title", "vector"]


def test_crops_masks_and_span_lengths(mixed):
    data = read_generic(mixed)
    cfg = resolve(config_from_dict({"data": {"source": "generic", "path": str(mixed), "clip_num": 12},
                                    "model": {"backbone": "tiny"}}), data)
    longest_title = max(s.features["title"].shape[0] for s in data.split("train") if "title" in s.features)
    assert cfg.model.span_lengths == {"title": min(12, longest_title), "vector": 1}
    ds = AQADataset(data.split("train"), data.modalities, data.dims, 100.0, 12, train=True,
                    span_lengths=cfg.model.span_lengths)
    items = [ds[i] for i in range(3)]  # sample 0 has no title
    for it, s in zip(items, data.split("train")[:3]):
        assert it["features"]["sentence"].shape[0] == min(12, s.features["sentence"].shape[0])
        assert it["features"]["vector"].shape == (1, 31)
        expect = cfg.model.span_lengths["title"] if "title" not in s.features else min(
            cfg.model.span_lengths["title"], s.features["title"].shape[0])
        assert it["features"]["title"].shape[0] == expect
    batch = collate(items, data.modalities, pad_to=12)
    assert batch.time_mask.shape == (3, 3, 12)
    assert batch.time_mask[:, 2].sum(dim=1).tolist() == [1, 1, 1]  # the vector: one real step
    assert batch.time_mask[0, 1].sum() == cfg.model.span_lengths["title"]  # the missing title's placeholders


def test_limssr_gives_each_modality_its_own_span(mixed):
    data = read_generic(mixed)
    mcfg = ModelConfig(backbone="tiny", modalities=MODS, prompt_names={}, span_lengths={"title": 7, "vector": 1},
                       dropout=0.0)
    texts = [prompt_text(s, MODS) for s in all_subsets(3)]
    torch.manual_seed(0)
    backbone = load_backbone("tiny", mcfg.lora, False, prompt_texts=texts, seed=0)
    model = LIMSSR(mcfg, backbone, data.dims).eval()
    feats = {"sentence": torch.randn(2, 12, 384), "title": torch.randn(2, 12, 384), "vector": torch.randn(2, 12, 31)}
    mask = torch.tensor([[True, False, True], [True, True, True]])
    valid = torch.ones(2, 3, 12, dtype=torch.bool)
    valid[0, 0, 9:] = False
    embeds, attend, _, layout = model.assemble(feats, mask, valid)
    assert layout.steps == (12, 7, 1)
    k = mcfg.num_fusion_tokens
    body = (12 + 2) + (7 + 2) + (1 + 2) + k
    assert (layout.length - layout.prompt_len).tolist() == [body, body]
    # sample 0 shows sentence, vector, then the missing title: slots in that order
    start = layout.span_start[0].tolist()
    assert start[0] < start[2] < start[1] and start[2] == start[0] + 12 + 2 and start[1] == start[2] + 1 + 2
    assert not attend[0, start[0] + 9: start[0] + 12].any() and attend[0, start[0]: start[0] + 9].all()
    with torch.no_grad():
        a = model(feats, mask, valid).score
        feats["vector"][:, 1:] = 99.0  # past the vector's one step: never read
        feats["title"][:, 7:] = 99.0
        b = model(feats, mask, valid).score
    torch.testing.assert_close(a, b)
    assert model.longest_sequence(12) == model.longest_prompt + body
    assert prompt_text((True, False, True), MODS).startswith("Given the available sentence, vector features")


@pytest.mark.parametrize("method", ["limssr", "zero-fill", "late-fusion"])
def test_trains_and_evaluates_end_to_end(mixed, tmp_path, method):
    out = tmp_path / method
    code = run(["train", "--preset", "synthetic-quick", "--data", str(mixed), "--method", method, "--backbone", "tiny", "--out", str(out),
                "train.epochs=2", "train.warmup=1", "data.clip_num=12", "train.batch_size=8"])
    assert code == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["span_lengths"]["vector"] == 1
    results = json.loads((out / "eval" / "results.json").read_text())
    assert set(results["subsets"]) == {"stv", "st", "sv", "tv", "s", "t", "v"}
    for name, r in results["subsets"].items():
        if r.get("n", 1):
            assert np.isfinite(r["mse"]), (name, r)
    sample = tmp_path / "one.npz"
    np.savez(sample, sentence=np.ones((30, 384), np.float32), vector=np.zeros((1, 31), np.float32))
    assert run(["predict", str(out), str(sample), "--out", str(tmp_path / f"{method}.csv")]) == 0
    lines = (tmp_path / f"{method}.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[0] == "one"


@pytest.mark.parametrize("training", [False, True], ids=["scoring", "training"])
def test_fast_path_equals_the_reference_with_spans_of_their_own(mixed, training):
    """The shared-prompt-prefix path (scoring and CPU training) against the reference computation,
    with modalities of three span lengths and padded steps."""
    data = read_generic(mixed)
    mcfg = ModelConfig(backbone="tiny", modalities=MODS, prompt_names={}, span_lengths={"title": 5, "vector": 1},
                       dropout=0.0, lora=LoraSettings(dropout=0.0))
    torch.manual_seed(0)
    backbone = load_backbone("tiny", mcfg.lora, False, prompt_texts=[prompt_text(s, MODS) for s in all_subsets(3)], seed=0)
    model = LIMSSR(mcfg, backbone, data.dims).train(training)
    feats = {"sentence": torch.randn(4, 10, 384), "title": torch.randn(4, 10, 384), "vector": torch.randn(4, 10, 31)}
    mask = torch.tensor([[True, False, True], [True, True, True], [False, True, False], [True, False, False]])
    valid = torch.ones(4, 3, 10, dtype=torch.bool)
    valid[0, 0, 6:] = valid[1, 1, 3:] = False
    with torch.no_grad():
        fast = model(feats, mask, valid).score
        ref = model.reference_forward(feats, mask, valid).score
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
