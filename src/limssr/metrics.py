"""Metrics: Spearman rank correlation, MSE in raw score units, relative L2, Fisher-z averaging,
and percentile-bootstrap intervals for Spearman.

Documented edge cases: Spearman is 0.0 when either side is constant or there are fewer than 3
samples (no ranking information); the Fisher-z mean clips |r| to 1 - 1e-12 so that r = +-1 stays
finite and averages of perfect correlations come back as +-1 (results are rounded to 10 decimals).
The bootstrap replicates follow the same conventions (a resample with a constant side or fewer
than 3 samples counts as 0.0; ties get average ranks, as scipy.stats.spearmanr gives them).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import rankdata, spearmanr

FISHER_CLIP = 1.0 - 1e-12
BOOTSTRAP_RESAMPLES = 2000  # replicates of the Spearman intervals
BOOTSTRAP_SEED = 0  # the intervals are reproducible: the same samples give the same interval
BOOTSTRAP_LEVEL = 0.95
_CHUNK = 1_000_000  # replicates x samples ranked at once, to bound memory on large test sets


def spearman(pred, target) -> float:
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    if pred.shape != target.shape:
        raise ValueError(f"spearman: {pred.shape} predictions against {target.shape} targets")
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(target) == 0:
        return 0.0
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("spearman: predictions or targets hold NaN or Inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(pred, target).statistic)


def mse(pred, target) -> float:
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return float(np.mean((pred - target) ** 2)) if len(pred) else float("nan")


def fisher_z_mean(rs) -> float:
    """tanh(mean(atanh(r))), the average of correlations used by PAMFN, MCMoE and LIMSSR."""
    rs = np.asarray(list(rs), dtype=float)
    if len(rs) == 0 or not np.isfinite(rs).all():
        raise ValueError(f"fisher_z_mean needs finite correlations, got {rs.tolist()}")
    z = np.arctanh(np.clip(rs, -FISHER_CLIP, FISHER_CLIP))
    r = math.tanh(float(z.mean()))
    return float(np.clip(np.round(r, 10), -1.0, 1.0))


def rl2(pred, target, label_min: float, label_max: float) -> float:
    """Relative L2 distance (R-l2) of CoRe, FineDiving and the AQA benchmarks:
    mean over samples of (|target - pred| / (label_max - label_min))^2, unscaled (the tables show it
    x 100, as those papers report it). `label_min`/`label_max`: the label range to normalise by
    (limssr.evaluation passes the min and max of the test labels, as CoRe's and FineDiving's code
    do). NaN without samples or with an empty range."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    if pred.shape != target.shape:
        raise ValueError(f"rl2: {pred.shape} predictions against {target.shape} targets")
    span = float(label_max) - float(label_min)
    if not len(pred) or not math.isfinite(span) or span <= 0:
        return float("nan")
    return float(np.mean((np.abs(target - pred) / span) ** 2))


def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n) sample indices drawn with replacement; the same (n, resamples, seed), the same draw."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    return np.random.default_rng(seed).integers(0, max(n, 1), size=(resamples, n), dtype=np.int32)


def spearman_replicates(pred, target, idx: np.ndarray, present=None) -> np.ndarray:
    """Spearman of `pred` against `target` on each row of `idx` (from `bootstrap_indices`), as
    `spearman` computes it on that resample: average ranks for ties, 0.0 for a resample with fewer
    than 3 samples or a constant side. `present` (bool per sample, default all): draws of samples
    not present are left out of that replicate, so several subsets scored on overlapping samples
    can share one draw (a joint bootstrap)."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    present = np.ones(len(pred), dtype=bool) if present is None else np.asarray(present, dtype=bool)
    if not (np.isfinite(pred[present]).all() and np.isfinite(target[present]).all()):
        raise ValueError("spearman_replicates: predictions or targets hold NaN or Inf")
    idx = np.asarray(idx)
    out = np.zeros(len(idx))
    if idx.shape[1] == 0:
        return out
    step = max(1, _CHUNK // idx.shape[1])
    for start in range(0, len(idx), step):
        block = idx[start:start + step]
        keep = present[block]
        m = keep.sum(axis=1)
        centre = ((m + 1.0) / 2.0)[:, None]
        # absent draws rank above every present one (+inf), so present ranks are their ranks among
        # the present draws; they are then zeroed out of the sums
        dp = np.where(keep, rankdata(np.where(keep, pred[block], np.inf), axis=1) - centre, 0.0)
        dt = np.where(keep, rankdata(np.where(keep, target[block], np.inf), axis=1) - centre, 0.0)
        vp, vt = (dp * dp).sum(axis=1), (dt * dt).sum(axis=1)
        ok = (m >= 3) & (vp > 0) & (vt > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + step] = np.where(ok, (dp * dt).sum(axis=1) / np.sqrt(vp * vt), 0.0)
    return np.clip(out, -1.0, 1.0)


def fisher_z_rows(rs) -> np.ndarray:
    """`fisher_z_mean` of each row of a (replicates, correlations) array (same clip and rounding)."""
    z = np.arctanh(np.clip(np.asarray(rs, dtype=float), -FISHER_CLIP, FISHER_CLIP))
    return np.clip(np.round(np.tanh(z.mean(axis=1)), 10), -1.0, 1.0)


def percentile_interval(values, level: float = BOOTSTRAP_LEVEL) -> list[float]:
    """[lo, hi]: the (1 - level) / 2 and (1 + level) / 2 quantiles of bootstrap replicates."""
    lo, hi = np.percentile(np.asarray(values, dtype=float), [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def spearman_interval(pred, target, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                      level: float = BOOTSTRAP_LEVEL) -> list[float] | None:
    """Percentile-bootstrap interval [lo, hi] of `spearman(pred, target)` over the samples
    (`resamples` draws with replacement, seeded: deterministic). None with fewer than 3 samples."""
    pred = np.asarray(pred, dtype=float)
    if len(pred) < 3:
        return None
    return percentile_interval(spearman_replicates(pred, target, bootstrap_indices(len(pred), resamples, seed)),
                               level)
