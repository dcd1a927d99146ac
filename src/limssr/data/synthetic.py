"""Built-in synthetic AQA data: performances with latent quality factors seen through modalities.

Each performance has three latent quality factors (difficulty, execution, artistry), correlated
across performers, that evolve over T clips (an AR(1) wander around the performer's level, plus a
fatigue drift in execution). Every modality observes the factors and a shared per-clip nuisance
(camera, pose, scene) through its own random nonlinear map into its feature space, with its own
factor weights and noise. Audio sees mostly artistry and is the noisiest, so it is the least
informative; because the factors are correlated and the nuisance is shared, a missing modality can in
part be inferred from the others. The judge score is a nonlinear function of the factor trajectories
plus judge noise, mapped onto [0, score_range].

The generator also reports its noise ceiling: the Spearman correlation of the noise-free score with
the noisy label on the test split, which no model can be expected to beat.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from limssr.config import SyntheticConfig
from limssr.data.samples import Sample, SampleSet

FACTORS = ("difficulty", "execution", "artistry")
FACTOR_CORRELATION = 0.45
NUISANCE_DIM = 4
HIDDEN = 32  # width of the low-dimensional manifold each modality's features live on

# How strongly each known modality sees (difficulty, execution, artistry), and its noise level.
VIEWS: dict[str, tuple[tuple[float, float, float], float]] = {
    "video": ((1.0, 1.0, 0.7), 1.6),
    "flow": ((1.0, 0.8, 0.2), 2.0),
    "audio": ((0.1, 0.05, 0.9), 2.5),
}

LABEL_CENTRE = 0.55  # labels / score_range are centred here ...
LABEL_SPREAD = 0.15  # ... with this standard deviation of the noise-free part
JUDGE_NOISE = 0.35  # judge noise as a fraction of LABEL_SPREAD
_CALIBRATION_SEED = 20260501
_CALIBRATION_SIZE = 20000


def _view(name: str, index: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Factor weights and noise of a modality; unknown names get seeded weights, less informative
    the later they come."""
    if name in VIEWS:
        weights, noise = VIEWS[name]
        return np.asarray(weights), noise
    weights = rng.uniform(0.2, 1.0, size=len(FACTORS)) / (1.0 + 0.3 * index)
    return weights, 0.8 + 0.2 * index


def _latents(n: int, clips: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Performer levels (n, 3) and per-clip factor trajectories (n, clips, 3)."""
    k = len(FACTORS)
    cov = np.full((k, k), FACTOR_CORRELATION) + (1 - FACTOR_CORRELATION) * np.eye(k)
    level = rng.multivariate_normal(np.zeros(k), cov, size=n)
    rho = 0.8
    wander = np.empty((n, clips, k))
    wander[:, 0] = rng.standard_normal((n, k))
    for t in range(1, clips):
        wander[:, t] = rho * wander[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((n, k))
    fatigue = np.abs(rng.normal(0.0, 0.5, size=n))
    traj = level[:, None, :] + 0.6 * wander
    traj[:, :, 1] -= fatigue[:, None] * np.linspace(0.0, 1.0, clips)[None, :]
    return level, traj


def _raw_score(traj: np.ndarray) -> np.ndarray:
    """Noise-free judge score before scaling: technical merit (difficulty rewarded only when
    executed well), artistry with diminishing returns, and consistency of execution."""
    d, e, a = traj[..., 0], traj[..., 1], traj[..., 2]
    technical = np.mean(np.log1p(np.exp(1.2 * d)) / (1 + np.exp(-1.5 * e)), axis=1)
    artistry = np.tanh(0.8 * a.mean(axis=1))
    consistency = -0.3 * e.std(axis=1)
    return technical + 0.6 * artistry + 0.3 * e.mean(axis=1) + consistency


def _raw_artistic(traj: np.ndarray) -> np.ndarray:
    """A second, artistry-led judge score (a PCS to the main score's TES)."""
    e, a = traj[..., 1], traj[..., 2]
    return np.tanh(0.9 * a.mean(axis=1)) + 0.4 * e.mean(axis=1) - 0.2 * e.std(axis=1)


def _calibration(clips: int) -> dict[str, tuple[float, float]]:
    """Mean and std of each raw score over a large fixed population, so that every split and every
    seed share one label scale."""
    rng = np.random.default_rng(_CALIBRATION_SEED)
    _, traj = _latents(_CALIBRATION_SIZE, clips, rng)
    return {k: (float(f(traj).mean()), float(f(traj).std()))
            for k, f in (("score", _raw_score), ("artistic", _raw_artistic))}


def _per_length(fn, traj: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`fn` over each sample's first `length` clips (the part of the performance that was filmed)."""
    out = np.empty(len(traj))
    for length in np.unique(lengths):
        rows = lengths == length
        out[rows] = fn(traj[rows, :length])
    return out


def _ar1(shape: tuple[int, int, int], rho: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 1 (clips)."""
    out = np.empty(shape)
    out[:, 0] = rng.standard_normal((shape[0], shape[2]))
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((shape[0], shape[2]))
    return out


def _observe(traj: np.ndarray, nuisance: np.ndarray, weights: np.ndarray, noise: float, dim: int,
             maps: tuple[np.ndarray, np.ndarray, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    a1, b1, a2 = maps
    # The modality perceives the factors with its own error, persistent over neighbouring clips
    # (a camera angle, a stretch of loud music): it cannot be averaged away across feature dims.
    perceived = traj + noise * _ar1(traj.shape, 0.5, rng)
    inputs = np.concatenate([perceived * weights, 0.7 * nuisance], axis=-1)  # (n, T, 3 + NUISANCE_DIM)
    signal = np.tanh(inputs @ a1.T + b1) @ a2.T  # (n, T, dim)
    return (signal + 0.3 * rng.standard_normal(signal.shape)).astype(np.float32)


def generate(cfg: SyntheticConfig, modalities: list[str] | None = None) -> SampleSet:
    """Generate the train and test splits; identical for identical `cfg` (and modalities)."""
    modalities = list(modalities or cfg.dims.keys())
    missing = [m for m in modalities if m not in cfg.dims]
    if missing:
        raise ValueError(f"synthetic data: no dim for modality '{missing[0]}' in data.synthetic.dims")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_train + cfg.n_test
    _, traj = _latents(n, cfg.clips, rng)
    nuisance = rng.standard_normal((n, cfg.clips, NUISANCE_DIM))

    # the second generator keeps the main stream (and so the default data) independent of these
    extra = np.random.default_rng([cfg.seed, 1])
    low = cfg.min_clips if cfg.min_clips is not None else cfg.clips
    lengths = extra.integers(low, cfg.clips + 1, size=n)
    calib = _calibration(cfg.clips)
    mean, std = calib["score"]
    clean01 = LABEL_CENTRE + LABEL_SPREAD * (_per_length(_raw_score, traj, lengths) - mean) / std
    noisy01 = clean01 + JUDGE_NOISE * LABEL_SPREAD * rng.standard_normal(n)
    clean01 = np.clip(clean01, 0.0, 1.0)
    noisy01 = np.clip(noisy01, 0.0, 1.0)
    mean, std = calib["artistic"]
    artistic01 = LABEL_CENTRE + LABEL_SPREAD * (_per_length(_raw_artistic, traj, lengths) - mean) / std
    artistic01 = np.clip(artistic01 + JUDGE_NOISE * LABEL_SPREAD * extra.standard_normal(n), 0.0, 1.0)

    features: dict[str, np.ndarray] = {}
    for index, m in enumerate(modalities):
        weights, noise = _view(m, index, rng)
        k_in = len(FACTORS) + NUISANCE_DIM
        maps = (rng.standard_normal((HIDDEN, k_in)) * 1.5 / np.sqrt(k_in),
                rng.normal(0.0, 0.3, HIDDEN),
                rng.standard_normal((cfg.dims[m], HIDDEN)) / np.sqrt(HIDDEN) * 1.5)
        features[m] = _observe(traj, nuisance, weights, noise, cfg.dims[m], maps, rng)

    samples = [
        Sample(name=f"perf_{i:05d}", features={m: features[m][i, : lengths[i]] for m in modalities},
               score=float(noisy01[i] * cfg.score_range),
               meta={"clean_score": float(clean01[i] * cfg.score_range)},
               labels={"score": float(noisy01[i] * cfg.score_range), "artistic01": float(artistic01[i])})
        for i in range(n)
    ]
    test = samples[cfg.n_train:]
    ceiling = noise_ceiling(test)
    return SampleSet(
        modalities=modalities,
        dims={m: cfg.dims[m] for m in modalities},
        score_range=cfg.score_range,
        splits={"train": samples[: cfg.n_train], "test": test},
        info={"source": "synthetic", "seed": cfg.seed, "noise_ceiling": ceiling},
    )


def noise_ceiling(samples: list[Sample]) -> float:
    """Spearman of the noise-free score against the noisy label: the best a model can hope for."""
    clean = [s.meta["clean_score"] for s in samples]
    noisy = [s.score for s in samples]
    if len(samples) < 3:
        return float("nan")
    return float(spearmanr(clean, noisy).statistic)
