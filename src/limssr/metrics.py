"""Metrics: Spearman rank correlation, MSE in raw score units, Fisher-z averaging.

Documented edge cases: Spearman is 0.0 when either side is constant or there are fewer than 3
samples (no ranking information); the Fisher-z mean clips |r| to 1 - 1e-12 so that r = +-1 stays
finite and averages of perfect correlations come back as +-1 (results are rounded to 10 decimals).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import spearmanr

FISHER_CLIP = 1.0 - 1e-12


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
