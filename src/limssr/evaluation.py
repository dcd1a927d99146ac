"""Scoring a trained model on every modality subset, and the summary the paper's tables report.

For each non-empty subset the test set is scored with exactly that subset shown (intersected with
what each sample actually has; a sample left with nothing is skipped and not counted in `n`).
"Average" is over the incomplete subsets: Fisher-z mean of Spearman, arithmetic mean of MSE and of
R-l2. The complete subset is reported on its own. MSE is in raw score units.

R-l2 (relative L2, CoRe / FineDiving): mean of ((|label - score|) / (max - min))^2 with max and min
the largest and smallest label among the scored test samples (every subset of one evaluation uses
the same range, kept in results["rl2_range"]; results.json holds it unscaled, the tables x 100).
The test labels are used because results carry no training labels, and CoRe's and FineDiving's
code normalise by the test labels' range too; `subset_results(label_range=...)` overrides it.

Spearman intervals (`spearman_ci`, [lo, hi]): 95% percentile bootstrap over the test samples, 2000
resamples, seed 0 (reproducible). One draw of the test samples (matched by name) is shared by every
subset, so the interval of the average is that of the Fisher-z mean over the incomplete subsets of
one resampled test set (a sample a subset skipped is left out of that subset's replicate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import torch

from limssr.data.dataset import AQADataset, Batch, hide
from limssr.metrics import (BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_indices,
                             fisher_z_mean, fisher_z_rows, mse, percentile_interval, rl2, spearman,
                             spearman_replicates)
from limssr.precision import autocast_for
from limssr.subsets import all_subsets, subset_name


class _SubsetMetrics(TypedDict):
    spearman: float
    mse: float  # raw score units
    n: int


class SubsetMetrics(_SubsetMetrics, total=False):
    # absent from results.json files written before these were added
    spearman_ci: list[float] | None  # [lo, hi], 95% percentile bootstrap; None: fewer than 3 samples
    rl2: float  # relative L2, unscaled (tables show x 100)
    n_exact: int  # of the n samples, those that have every modality of the subset (the others show fewer)


class Protocol(TypedDict, total=False):
    training_missingness: str  # train.missing
    selection: str  # how the scored model was chosen (a label; selection.json has the details)
    test_crop: str
    clip_num: int


class Results(TypedDict, total=False):
    """One evaluation, as results.json holds it (`limssr evaluate`, `limssr.evaluate`)."""

    method: str  # registry name of the method scored
    subsets: dict[str, SubsetMetrics]  # by modality initials, e.g. "vaf", "va", ..., "f"
    average: SubsetMetrics  # Fisher-z mean of Spearman, mean MSE, over `average_over`
    complete_subset: str
    average_over: list[str]  # the incomplete subsets
    baseline_train_mean_mse: dict[str, float]  # MSE of always predicting the training mean
    train_mean: float
    rl2_range: list[float]  # [min, max] of the labels R-l2 is normalised by (the test labels)
    bootstrap: dict  # how spearman_ci was drawn: method, resamples, seed, level
    dataset: str
    modalities: list[str]
    score_range: float
    score_type: str | None
    noise_ceiling: float | None  # synthetic data: Spearman of the noise-free score with the label
    intervals: dict  # conformal intervals per subset (limssr.conformal.interval_results), or why there are none
    protocol: Protocol
    backbone: str
    seed: int
    eval_seconds: float


@dataclass
class Predictions:
    """Per-sample predictions of one subset, in raw score units."""

    names: list[str] = field(default_factory=list)
    label: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    heads: dict[str, list[float]] = field(default_factory=dict)  # the method's own heads (Method.head_scores)
    shown: list[str] = field(default_factory=list)  # modalities the model saw, by initials
    lo: list[float | None] = field(default_factory=list)  # conformal interval (limssr.conformal.apply);
    hi: list[float | None] = field(default_factory=list)  # empty when not calibrated, None: too few samples


@torch.inference_mode()
def predict(model, loader, subset: tuple[bool, ...] | None, device: torch.device,
            precision: str, score_range: float) -> Predictions:
    """Score every sample of `loader` showing `subset` (None: whatever each sample has)."""
    model.eval()
    out = Predictions()
    for batch in loader:
        wanted = batch.available if subset is None else torch.tensor(subset).expand_as(batch.available)
        keep = (wanted & batch.available).any(dim=1)
        if not keep.any():
            continue
        if not keep.all():
            batch = select_samples(batch, keep)
            wanted = wanted[keep]
        batch = hide(batch, wanted).to(device)
        with autocast_for(device, precision):
            res = model(batch.features, batch.mask, batch.time_mask)
        score = res.score.float().cpu().numpy() * score_range
        if not np.isfinite(score).all():
            bad = batch.names[int(np.flatnonzero(~np.isfinite(score))[0])]
            raise FloatingPointError(f"the model produced a non-finite score for sample '{bad}'")
        out.names += batch.names
        out.label += (batch.label.cpu().numpy() * score_range).tolist()
        out.score += score.tolist()
        for name, part in model.head_scores(res).items():
            out.heads.setdefault(name, []).extend((part.float().cpu().numpy() * score_range).tolist())
        out.shown += [subset_name(row.tolist(), model.modalities) for row in batch.mask.cpu()]
    return out


def select_samples(batch: Batch, keep: torch.Tensor) -> Batch:
    """The rows of `batch` where `keep` (B,) is True."""
    return Batch(features={m: x[keep] for m, x in batch.features.items()}, time_mask=batch.time_mask[keep],
                 available=batch.available[keep], mask=batch.mask[keep], label=batch.label[keep],
                 index=batch.index[keep], names=[n for n, k in zip(batch.names, keep.tolist()) if k])


def evaluate_subsets(model, dataset: AQADataset, loader, device: torch.device,
                     precision: str, progress=None) -> dict[str, Predictions]:
    """Predictions for every non-empty subset, keyed by subset name ('vaf', 'va', ...)."""
    results = {}
    for subset in all_subsets(len(dataset.modalities)):
        name = subset_name(subset, dataset.modalities)
        results[name] = predict(model, loader, subset, device, precision, dataset.score_range)
        if progress is not None:
            progress(name)
    return results


def subset_results(preds: dict[str, Predictions], modalities: list[str], train_mean: float,
                   label_range: tuple[float, float] | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED, level: float = BOOTSTRAP_LEVEL) -> Results:
    """Per-subset Spearman (with its bootstrap interval) / MSE / R-l2 / n, the average over the
    incomplete subsets, and the train-mean baseline. `label_range`: (min, max) R-l2 normalises by;
    default the min and max of the labels of every scored test sample (see the module docstring)."""
    complete = subset_name([True] * len(modalities), modalities)
    if label_range is None:
        labels = [x for p in preds.values() for x in p.label]
        label_range = (min(labels), max(labels)) if labels else (float("nan"), float("nan"))
    lo, hi = float(label_range[0]), float(label_range[1])
    boot = _joint_spearman_replicates(preds, resamples, seed)
    subsets, baseline = {}, {}
    for name, p in preds.items():
        n = len(p.names)
        exact = sum(shown == name for shown in p.shown)  # samples shown every modality of the subset
        subsets[name] = {"n_exact": exact,
                         "spearman": spearman(p.score, p.label) if n >= 3 else float("nan"),  # undefined below 3
                         "mse": mse(p.score, p.label) if n else float("nan"), "n": n,
                         "spearman_ci": percentile_interval(boot[name], level) if n >= 3 else None,
                         "rl2": rl2(p.score, p.label, lo, hi) if n else float("nan")}
        baseline[name] = mse([train_mean] * len(p.label), p.label)
    incomplete = [n for n in subsets if n != complete and subsets[n]["n"] > 0]
    ranked = [n for n in incomplete if subsets[n]["n"] >= 3]  # Spearman is defined on 3 samples or more
    average = {
        "spearman": (fisher_z_mean([subsets[n]["spearman"] for n in ranked]) if ranked else float("nan")),
        "mse": float(np.mean([subsets[n]["mse"] for n in incomplete])) if incomplete else float("nan"),
        "n": int(sum(subsets[n]["n"] for n in incomplete)),
        "spearman_ci": (percentile_interval(fisher_z_rows(np.stack([boot[n] for n in incomplete], axis=1)), level)
                        if incomplete and all(subsets[n]["spearman_ci"] is not None for n in incomplete) else None),
        "rl2": float(np.mean([subsets[n]["rl2"] for n in incomplete])) if incomplete else float("nan"),
    }
    return {"subsets": subsets, "average": average, "complete_subset": complete,
            "average_over": incomplete, "baseline_train_mean_mse": baseline, "train_mean": train_mean,
            "rl2_range": [lo, hi],
            "bootstrap": {"method": "percentile, over test samples, one draw shared by every subset",
                          "resamples": resamples, "seed": seed, "level": level}}


def _joint_spearman_replicates(preds: dict[str, Predictions], resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Per subset, its Spearman on each of `resamples` draws of the test samples, one draw shared by
    every subset: samples are matched by name (the k-th occurrence of a name with the k-th)."""
    keys: dict[tuple[str, int], int] = {}
    positions = {}
    for name, p in preds.items():
        seen: dict[str, int] = {}
        pos = []
        for sample in p.names:
            k = seen[sample] = seen.get(sample, -1) + 1
            pos.append(keys.setdefault((sample, k), len(keys)))
        positions[name] = np.asarray(pos, dtype=np.int64)
    idx = bootstrap_indices(len(keys), resamples, seed)
    out = {}
    for name, p in preds.items():
        score, label = np.zeros(len(keys)), np.zeros(len(keys))
        present = np.zeros(len(keys), dtype=bool)
        score[positions[name]], label[positions[name]] = p.score, p.label
        present[positions[name]] = True
        out[name] = spearman_replicates(score, label, idx, present)
    return out
