"""Built-in synthetic AQA data: performances with latent quality factors seen through modalities.

Each performance has three latent quality factors (difficulty, execution, artistry), correlated
across performers, that evolve over T clips (an AR(1) wander around the performer's level, plus a
fatigue drift in execution). Every modality observes the factors and a shared per-clip nuisance
(camera, pose, scene) through its own random nonlinear map into its feature space, with its own
factor weights and noise. Audio sees mostly artistry and is the noisiest, so it is the least
informative; because the factors are correlated and the nuisance is shared, a missing modality can in
part be inferred from the others. The judge score is a nonlinear function of the factor trajectories
plus judge noise, mapped onto [0, score_range].

This is the default kind, `data.synthetic.kind: additive`: the score is nonlinear but largely a sum
of per-factor terms, so a model that adds up what each modality says gets most of the way.

`data.synthetic.kind: interaction` makes the score depend on an interaction BETWEEN modalities. A
fourth latent factor, timing (synchrony with the music, an AR(1) trajectory like the others but
independent of them), is observed well only by audio (weight 1.0, noise 1.0; video and flow weight
it 0.05), while audio barely sees execution (0.05), which video and flow see well. With P the clip
mean of execution_t x timing_t, the raw score is sign(P) |P|^0.6 (execution counts in proportion to
timing; the power only tames the heavy tails of a product) plus smaller additive terms: 0.2 mean
execution + 0.15 mean timing + 0.25 tanh(0.8 mean artistry) + 0.15 mean difficulty - 0.2 std of
execution. Because execution and timing are centred and independent, the product has (almost) no additive
part: the best function of the form f(execution) + g(timing) + ... recovers only the small terms
(Spearman ~0.35 with the clean score on the latent factors, against ~0.95-0.99 once the product of
the two means is allowed). So video/flow alone (execution without timing), audio alone (timing without
execution), and any linear fusion (a sum of per-modality contributions) fall far short of the
ceiling (ridge on concatenated clip-averaged features: ~0.3), while fusing the two multiplicatively
gets much further (~0.7 with products of their leading principal components). Labels, scaling,
lengths, the second (artistic) label and the noise ceiling work as in the additive kind; the label
scale is calibrated per kind.

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

# The `interaction` kind adds a fourth factor, timing (synchrony with the music), independent of the
# other three. Audio observes it well (and with less noise than in the additive kind); video and flow
# barely see it, while audio barely sees execution.
KINDS = ("additive", "interaction")
INTERACTION_FACTORS = FACTORS + ("timing",)
INTERACTION_VIEWS: dict[str, tuple[tuple[float, float, float, float], float]] = {
    "video": ((1.0, 1.0, 0.7, 0.05), 1.6),
    "flow": ((1.0, 0.8, 0.2, 0.05), 2.0),
    "audio": ((0.1, 0.05, 0.6, 1.0), 1.0),
}

LABEL_CENTRE = 0.55  # labels / score_range are centred here ...
LABEL_SPREAD = 0.15  # ... with this standard deviation of the noise-free part
JUDGE_NOISE = 0.35  # judge noise as a fraction of LABEL_SPREAD
_CALIBRATION_SEED = 20260501
_CALIBRATION_SIZE = 20000


def _view(name: str, index: int, rng: np.random.Generator, views=VIEWS,
          factors: tuple[str, ...] = FACTORS) -> tuple[np.ndarray, float]:
    """Factor weights and noise of a modality; unknown names get seeded weights, less informative
    the later they come."""
    if name in views:
        weights, noise = views[name]
        return np.asarray(weights), noise
    weights = rng.uniform(0.2, 1.0, size=len(factors)) / (1.0 + 0.3 * index)
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


def _interaction_latents(n: int, clips: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Levels (n, 4) and trajectories (n, clips, 4): the additive kind's three factors, then timing,
    independent of them, with the same AR(1) wander around the performer's level (and no drift)."""
    level, traj = _latents(n, clips, rng)
    timing_level = rng.standard_normal(n)
    rho = 0.8
    wander = np.empty((n, clips))
    wander[:, 0] = rng.standard_normal(n)
    for t in range(1, clips):
        wander[:, t] = rho * wander[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    timing = timing_level[:, None] + 0.6 * wander
    return np.concatenate([level, timing_level[:, None]], 1), np.concatenate([traj, timing[..., None]], -1)


def _raw_score_interaction(traj: np.ndarray) -> np.ndarray:
    """Noise-free score of the interaction kind: execution counts in proportion to timing, clip by
    clip (P = mean of e_t * s_t, both centred on the field's average, so the product has no additive
    part), compressed as sign(P) |P|^0.6 (a plain product is heavy-tailed: most performances would
    crowd the middle of the scale, where judge noise reorders them), plus smaller additive terms in
    execution, timing, artistry and difficulty."""
    d, e, a, s = traj[..., 0], traj[..., 1], traj[..., 2], traj[..., 3]
    product = np.mean(e * s, axis=1)
    synchrony = np.sign(product) * np.abs(product) ** 0.6
    return (synchrony + 0.2 * e.mean(axis=1) + 0.15 * s.mean(axis=1)
            + 0.25 * np.tanh(0.8 * a.mean(axis=1)) + 0.15 * d.mean(axis=1) - 0.2 * e.std(axis=1))


def _raw_artistic(traj: np.ndarray) -> np.ndarray:
    """A second, artistry-led judge score (a PCS to the main score's TES)."""
    e, a = traj[..., 1], traj[..., 2]
    return np.tanh(0.9 * a.mean(axis=1)) + 0.4 * e.mean(axis=1) - 0.2 * e.std(axis=1)


def _calibration(clips: int, kind: str = "additive") -> dict[str, tuple[float, float]]:
    """Mean and std of each raw score over a large fixed population, so that every split and every
    seed share one label scale."""
    rng = np.random.default_rng(_CALIBRATION_SEED)
    latents, raw_score = ((_interaction_latents, _raw_score_interaction) if kind == "interaction"
                          else (_latents, _raw_score))
    _, traj = latents(_CALIBRATION_SIZE, clips, rng)
    return {k: (float(f(traj).mean()), float(f(traj).std()))
            for k, f in (("score", raw_score), ("artistic", _raw_artistic))}


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
    if cfg.kind not in KINDS:
        raise ValueError(f"synthetic data: config key 'data.synthetic.kind' must be one of "
                         f"{', '.join(KINDS)}; got {cfg.kind!r}")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_train + cfg.n_test
    if cfg.kind == "interaction":
        _, traj = _interaction_latents(n, cfg.clips, rng)
        raw_score, views, factors = _raw_score_interaction, INTERACTION_VIEWS, INTERACTION_FACTORS
    else:
        _, traj = _latents(n, cfg.clips, rng)
        raw_score, views, factors = _raw_score, VIEWS, FACTORS
    nuisance = rng.standard_normal((n, cfg.clips, NUISANCE_DIM))

    # the second generator keeps the main stream (and so the default data) independent of these
    extra = np.random.default_rng([cfg.seed, 1])
    low = cfg.min_clips if cfg.min_clips is not None else cfg.clips
    lengths = extra.integers(low, cfg.clips + 1, size=n)
    calib = _calibration(cfg.clips, cfg.kind)
    mean, std = calib["score"]
    clean01 = LABEL_CENTRE + LABEL_SPREAD * (_per_length(raw_score, traj, lengths) - mean) / std
    noisy01 = clean01 + JUDGE_NOISE * LABEL_SPREAD * rng.standard_normal(n)
    clean01 = np.clip(clean01, 0.0, 1.0)
    noisy01 = np.clip(noisy01, 0.0, 1.0)
    mean, std = calib["artistic"]
    artistic01 = LABEL_CENTRE + LABEL_SPREAD * (_per_length(_raw_artistic, traj, lengths) - mean) / std
    artistic01 = np.clip(artistic01 + JUDGE_NOISE * LABEL_SPREAD * extra.standard_normal(n), 0.0, 1.0)

    features: dict[str, np.ndarray] = {}
    for index, m in enumerate(modalities):
        weights, noise = _view(m, index, rng, views, factors)
        k_in = len(factors) + NUISANCE_DIM
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
