"""The built-in synthetic AQA generator: determinism, label range, noise ceiling, informativeness."""

import numpy as np
from scipy.stats import spearmanr

from limssr.config import SyntheticConfig
from limssr.data.synthetic import generate

CFG = SyntheticConfig(n_train=300, n_test=100, clips=10, dims={"video": 48, "audio": 48, "flow": 64})


def test_same_seed_same_data_other_seed_other_data():
    a, b = generate(CFG), generate(CFG)
    c = generate(SyntheticConfig(**{**CFG.__dict__, "seed": 1}))
    for sa, sb, sc in zip(a.split("train"), b.split("train"), c.split("train")):
        assert sa.name == sb.name and sa.score == sb.score
        for m in CFG.dims:
            np.testing.assert_array_equal(sa.features[m], sb.features[m])
    assert not np.allclose(a.split("train")[0].features["video"], c.split("train")[0].features["video"])


def test_shapes_range_and_ceiling():
    data = generate(CFG)
    assert len(data.split("train")) == 300 and len(data.split("test")) == 100
    s = data.split("test")[0]
    assert {m: a.shape for m, a in s.features.items()} == {"video": (10, 48), "audio": (10, 48), "flow": (10, 64)}
    assert all(a.dtype == np.float32 for a in s.features.values())
    scores = np.array([x.score for x in data.split("train")])
    assert scores.min() >= 0 and scores.max() <= CFG.score_range
    assert 0.8 < data.info["noise_ceiling"] < 1.0


def test_default_dims_are_the_real_ones():
    assert SyntheticConfig().dims == {"video": 768, "audio": 768, "flow": 1024}


def _probe(data, modalities):
    """Ridge regression on time-averaged features: how much a modality subset tells about the score."""
    def feats(split):
        return np.concatenate([np.stack([s.features[m].mean(0) for s in data.split(split)]) for m in modalities], 1)

    xtr, xte = feats("train"), feats("test")
    ytr = np.array([s.score for s in data.split("train")])
    yte = np.array([s.score for s in data.split("test")])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    w = np.linalg.solve(a.T @ a + 300 * np.eye(a.shape[1]), a.T @ (ytr - ytr.mean()))
    return spearmanr(b @ w, yte).statistic


def test_every_modality_informs_audio_least_and_modalities_complement():
    data = generate(SyntheticConfig(**{**CFG.__dict__, "n_train": 600, "n_test": 300}))
    rho = {m: _probe(data, [m]) for m in ("video", "audio", "flow")}
    assert all(r > 0.2 for r in rho.values())
    assert rho["audio"] < rho["video"] and rho["audio"] < rho["flow"]
    assert _probe(data, ["video", "audio", "flow"]) > max(rho.values())
    assert _probe(data, ["video", "audio", "flow"]) < data.info["noise_ceiling"]


def test_a_missing_modality_can_in_part_be_inferred_from_another():
    """Ridge regression from one modality's clip-averaged features to another's explains part of the
    held-out variance (shared factors and shared nuisance make modalities correlated)."""
    data = generate(CFG)

    def feats(m, split):
        return np.stack([s.features[m].mean(0) for s in data.split(split)])

    for src, dst in [("video", "audio"), ("video", "flow"), ("flow", "audio")]:
        a, b, at, bt = feats(src, "train"), feats(dst, "train"), feats(src, "test"), feats(dst, "test")
        mu, sd = a.mean(0), a.std(0)
        w = np.linalg.solve(((a - mu) / sd).T @ ((a - mu) / sd) + 100 * np.eye(a.shape[1]),
                            ((a - mu) / sd).T @ (b - b.mean(0)))
        pred = (at - mu) / sd @ w + b.mean(0)
        r2 = 1 - ((pred - bt) ** 2).sum() / ((bt - b.mean(0)) ** 2).sum()
        assert r2 > 0.1, (src, dst, r2)
