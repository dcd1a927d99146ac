"""A closed-form ridge probe on time-averaged features: the floor any learned scorer should clear.

    python benchmarks/ridge_probe.py DATA_DIR --score-type TES [--out FILE.json]

DATA_DIR is a generic-layout directory (see README, "Your own data"). The features of each modality
present are averaged over time and concatenated; the ridge penalty is chosen on the same validation
split limssr's `train.selection=val` carves (data.val_fraction 0.2, data.val_seed 0) by Spearman,
the model is refitted on the whole training split with that penalty, and the test split is scored
once. Prints and writes Spearman and MSE (raw score units).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from limssr.config import load_config
from limssr.data import load_data
from limssr.data.loaders import carve_validation
from limssr.metrics import mse, spearman

PENALTIES = [10.0 ** k for k in range(-3, 5)]


def features(samples, modalities):
    return np.stack([np.concatenate([s.features[m].mean(axis=0) for m in modalities]) for s in samples])


def fit(x, y, penalty):
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda q: ((q - mu) / sd) @ w + y.mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--score-type", default=None)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    overrides = ["data.source=generic", f"data.path={args.data}"]
    if args.score_type:
        overrides.append(f"data.score_type={args.score_type}")
    cfg = load_config(overrides=overrides)
    data = load_data(cfg)
    train, test = data.split("train"), data.split("test")
    fit_part, val = carve_validation(train, cfg.data.val_fraction, cfg.data.val_seed)
    mods = data.modalities
    y = lambda ss: np.array([s.score for s in ss])  # noqa: E731
    val_rho = {p: spearman(fit(features(fit_part, mods), y(fit_part), p)(features(val, mods)), y(val)) for p in PENALTIES}
    best = max(val_rho, key=val_rho.get)
    pred = fit(features(train, mods), y(train), best)(features(test, mods))
    result = {"probe": "ridge on time-averaged features", "data": args.data, "score_type": data.info.get("score_type"),
              "modalities": mods, "penalty": best, "val_spearman": val_rho[best],
              "test_spearman": spearman(pred, y(test)), "test_mse": mse(pred, y(test)), "n_test": len(test),
              "val_spearman_by_penalty": {str(k): v for k, v in val_rho.items()}}
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
