"""Scoring a trained model on every modality subset, and the summary the paper's tables report.

For each non-empty subset the test set is scored with exactly that subset shown (intersected with
what each sample actually has; a sample left with nothing is skipped and not counted in `n`).
"Average" is over the incomplete subsets: Fisher-z mean of Spearman, arithmetic mean of MSE. The
complete subset is reported on its own. MSE is in raw score units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import torch

from limssr.data.dataset import AQADataset, Batch, hide
from limssr.metrics import fisher_z_mean, mse, spearman
from limssr.precision import autocast_for
from limssr.subsets import all_subsets, subset_name


class SubsetMetrics(TypedDict):
    spearman: float
    mse: float  # raw score units
    n: int


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
    dataset: str
    modalities: list[str]
    score_range: float
    score_type: str | None
    noise_ceiling: float | None  # synthetic data: Spearman of the noise-free score with the label
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
            batch = _select(batch, keep)
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


def _select(batch, keep: torch.Tensor):
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


def subset_results(preds: dict[str, Predictions], modalities: list[str], train_mean: float) -> Results:
    """Per-subset Spearman / MSE / n, the average over incomplete subsets, and the train-mean baseline."""
    complete = subset_name([True] * len(modalities), modalities)
    subsets, baseline = {}, {}
    for name, p in preds.items():
        subsets[name] = {"spearman": spearman(p.score, p.label), "mse": mse(p.score, p.label), "n": len(p.names)}
        baseline[name] = mse([train_mean] * len(p.label), p.label)
    incomplete = [n for n in subsets if n != complete and subsets[n]["n"] > 0]
    average = {
        "spearman": fisher_z_mean([subsets[n]["spearman"] for n in incomplete]) if incomplete else float("nan"),
        "mse": float(np.mean([subsets[n]["mse"] for n in incomplete])) if incomplete else float("nan"),
        "n": int(sum(subsets[n]["n"] for n in incomplete)),
    }
    return {"subsets": subsets, "average": average, "complete_subset": complete,
            "average_over": incomplete, "baseline_train_mean_mse": baseline, "train_mean": train_mean}
