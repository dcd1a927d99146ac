"""How much of a score from an incomplete recording is imagined: three measures of hallucination.

LIMSSR motivates its mask-aware heads by "hallucination under severe missingness" without saying
what that is. limssr measures it three ways (docs/trust.md gives the reading of each):

1. **Score shift** (any method). For each test sample that has every modality, the shift
   |score(subset) - score(complete)| of each subset, its mean / median / 90th percentile, and the
   Spearman correlation of the shift with the subset's own absolute error |score(subset) - label|:
   a model that moves its score only where the missing modality mattered has shifts unrelated to
   (or reducing) error; a model that invents has large shifts that come with large errors. The
   extra error the subset costs (mean |error(subset)| - mean |error(complete)|) is reported too.
2. **Imputation fidelity** (LLM methods: LIMSSR and its ablations). Hide one modality m of a
   complete test sample and read the LLM's hidden states at m's span (its `<missing_m>`
   placeholders, or zero-filled projections without PCMI); show it, and read the same span (the
   real projected features). Per layer, the two span states are averaged over the real time steps,
   centred over the test samples (the part every sample shares removed), and compared by cosine
   similarity: *fidelity* pairs each sample with itself, the *control* with another sample (a fixed
   derangement). fidelity - control > 0: the placeholders hold something of this sample's hidden
   modality, inferred from what is shown; about 0: they hold nothing sample-specific. Layer 0 is
   the input embedding: a placeholder is one learned vector, so its fidelity there is 0.
3. **Confidence against error.** The disagreement of the two heads (LIMSSR: |Path 1 - Path 2|)
   against the absolute error per subset (Spearman over the test samples), and Path 2's learned
   confidence sigmoid(lambda_m) of each modality when it is missing, beside the mean error of the
   subsets that miss it.
"""

from __future__ import annotations

import numpy as np
import torch

from limssr.data.dataset import hide
from limssr.evaluation import Predictions, select_samples
from limssr.methods.base import step_masks
from limssr.metrics import spearman
from limssr.sequence import gather_spans
from limssr.subsets import subset_name


def _quantiles(x: np.ndarray) -> dict:
    return {"mean": float(x.mean()), "median": float(np.median(x)), "p90": float(np.quantile(x, 0.9))}


def score_shift(preds: dict[str, Predictions], complete: str) -> dict:
    """Per incomplete subset: the shift from the complete-input score of the samples that have every
    modality, its spread, and its Spearman with the subset's absolute error (raw score units)."""
    base = preds[complete]
    full = {n: (y, s) for n, y, s, shown in zip(base.names, base.label, base.score, base.shown) if shown == complete}
    out = {}
    for name, p in preds.items():
        if name == complete:
            continue
        rows = [(abs(s - full[n][1]), abs(s - y), abs(full[n][1] - y))
                for n, y, s, shown in zip(p.names, p.label, p.score, p.shown) if n in full and shown == name]
        if len(rows) < 3:
            out[name] = {"n": len(rows)}
            continue
        shift, err, err_full = (np.array(c) for c in zip(*rows))
        out[name] = {"n": len(rows), "shift": _quantiles(shift), "shift_error_spearman": spearman(shift, err),
                     "extra_abs_error": float(err.mean() - err_full.mean())}
    return out


def confidence_vs_error(preds: dict[str, Predictions], complete: str, model) -> dict:
    """Heads' disagreement against absolute error per subset; Path 2's confidence per modality."""
    out: dict = {"disagreement": {}, "path2_confidence": None}
    for name, p in preds.items():
        heads = sorted(p.heads)
        if len(heads) != 2 or len(p.names) < 3:
            continue
        gap = np.abs(np.array(p.heads[heads[0]]) - np.array(p.heads[heads[1]]))
        err = np.abs(np.array(p.score) - np.array(p.label))
        out["disagreement"][name] = {"heads": heads, "mean": float(gap.mean()),
                                     "spearman_with_abs_error": spearman(gap, err)}
    path2 = getattr(model, "path2", None)
    if path2 is not None and hasattr(path2, "confidence"):
        conf = torch.sigmoid(path2.confidence.detach().float()).cpu().tolist()
        mods = list(model.modalities)
        abs_err = {n: float(np.mean(np.abs(np.array(p.score) - np.array(p.label)))) for n, p in preds.items() if p.names}
        out["path2_confidence"] = {
            m: {"confidence_when_missing": conf[j],
                "mean_abs_error_of_subsets_missing_it": float(np.mean([e for n, e in abs_err.items() if m[0] not in n]))}
            for j, m in enumerate(mods)}
        out["mean_abs_error"] = abs_err
    return out


def _span_states(model, batch, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (embeddings first), every modality's span states averaged over real steps: (B, M, H)."""
    tm = step_masks(batch.time_mask, len(model.modalities))
    valid = tm if model.cfg.mask_padding else torch.ones_like(tm)
    shown = hide(batch, mask)
    embeds, attend, positions, layout = model.assemble(shown.features, shown.mask, valid)
    out = model.backbone(inputs_embeds=embeds.to(model.compute_dtype), position_ids=positions,
                         attention_mask=None if bool(attend.all()) else attend.long(), output_hidden_states=True)
    states = []
    for h in out.hidden_states:
        span, exists = gather_spans(h.float(), layout)  # (B, M, Tmax, H), (M, Tmax)
        w = (valid[:, :, :span.shape[2]] & exists).to(torch.float32)[..., None]
        states.append((span * w).sum(2) / w.sum(2).clamp(min=1.0))
    return states


def _centred_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of a and b after removing each one's mean row; a row that is (up to float
    rounding, 1e-5 of its norm) its mean, like a placeholder's embedding, has no direction: 0."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    na, nb = np.linalg.norm(ca, axis=1), np.linalg.norm(cb, axis=1)
    real = (na > 1e-5 * np.linalg.norm(a, axis=1)) & (nb > 1e-5 * np.linalg.norm(b, axis=1))
    return np.where(real, (ca * cb).sum(1) / np.maximum(na * nb, 1e-30), 0.0)


@torch.inference_mode()
def imputation_fidelity(model, loader, device: torch.device, seed: int = 0) -> dict | None:
    """Per modality and layer: centred-cosine fidelity of the hidden span states with the modality
    hidden against shown, and the shuffled-sample control (see the module docstring). None for a
    method without an LLM sequence (the baselines)."""
    if not hasattr(model, "assemble"):
        return None
    model.eval()
    mods = list(model.modalities)
    if len(mods) < 2:
        return {"n": 0, "note": "one modality: there is nothing to hide while another is shown"}
    shown: dict[int, list[list[np.ndarray]]] = {j: [] for j in range(len(mods))}
    hidden: dict[int, list[list[np.ndarray]]] = {j: [] for j in range(len(mods))}
    for batch in loader:
        keep = batch.available.all(dim=1)
        if not keep.any():
            continue
        batch = select_samples(batch, keep).to(device)
        full = batch.available.clone()
        every = _span_states(model, batch, full)  # the complete input once, every modality's span from it
        for j in range(len(mods)):
            without = full.clone()
            without[:, j] = False
            shown[j].append([x[:, j].cpu().numpy() for x in every])
            hidden[j].append([x[:, j].cpu().numpy() for x in _span_states(model, batch, without)])
    n = sum(len(parts[0]) for parts in shown[0]) if shown[0] else 0
    if n < 3:
        return {"n": n, "note": "fewer than 3 test samples have every modality: fidelity not measured"}
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    other = np.roll(perm, 1)[np.argsort(perm)]  # a derangement: sample i is paired with other[i] != i
    out = {"n": n, "modalities": {}}
    for j, m in enumerate(mods):
        layers = len(shown[j][0])
        a = [np.concatenate([part[layer] for part in shown[j]]) for layer in range(layers)]
        b = [np.concatenate([part[layer] for part in hidden[j]]) for layer in range(layers)]
        fid = [float(_centred_cosine(a[k], b[k]).mean()) for k in range(layers)]
        ctl = [float(_centred_cosine(a[k][other], b[k]).mean()) for k in range(layers)]
        out["modalities"][m] = {"fidelity": fid, "control": ctl, "gap": [f - c for f, c in zip(fid, ctl)],
                                "last_layer_gap": fid[-1] - ctl[-1], "best_layer": int(np.argmax(np.subtract(fid, ctl)))}
    return out


def trust_report(preds: dict[str, Predictions], modalities: list[str], model, loader, device) -> dict:
    """All three measures for one run's test predictions (every subset) and its model."""
    complete = subset_name([True] * len(modalities), modalities)
    return {"score_shift": score_shift(preds, complete),
            "confidence": confidence_vs_error(preds, complete, model),
            "fidelity": imputation_fidelity(model, loader, device)}


def markdown(report: dict, title: str) -> str:
    """The trust report as Markdown tables."""
    lines = [f"### {title}", "", "Score shift from the complete-input score (samples with every modality):", "",
             "| Subset | n | mean shift | median | p90 | Spearman(shift, abs error) | extra abs error | "
             "heads' disagreement | Spearman(disagreement, abs error) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    dis = report["confidence"]["disagreement"]
    for name, r in report["score_shift"].items():
        d = dis.get(name, {})
        if "shift" not in r:
            lines.append(f"| {{{','.join(name)}}} | {r['n']} | - | - | - | - | - | - | - |")
            continue
        lines.append(f"| {{{','.join(name)}}} | {r['n']} | {r['shift']['mean']:.2f} | {r['shift']['median']:.2f} | "
                     f"{r['shift']['p90']:.2f} | {r['shift_error_spearman']:.3f} | {r['extra_abs_error']:+.2f} | "
                     + (f"{d['mean']:.2f} | {d['spearman_with_abs_error']:.3f} |" if d else "- | - |"))
    conf = report["confidence"].get("path2_confidence")
    if conf:
        lines += ["", "Path 2's confidence of a missing modality, and the mean absolute error of the subsets that "
                  "miss it:", "", "| Modality | confidence when missing | mean abs error |", "|---|---:|---:|"]
        lines += [f"| {m} | {c['confidence_when_missing']:.3f} | {c['mean_abs_error_of_subsets_missing_it']:.2f} |"
                  for m, c in conf.items()]
    fid = report.get("fidelity")
    if fid and "modalities" in fid:
        lines += ["", f"Imputation fidelity ({fid['n']} complete test samples; centred cosine of the hidden span "
                  "states, modality hidden vs shown, against a shuffled-sample control):", "",
                  "| Modality | fidelity (last layer) | control | gap | largest gap (layer) |", "|---|---:|---:|---:|---:|"]
        for m, r in fid["modalities"].items():
            k = r["best_layer"]
            lines.append(f"| {m} | {r['fidelity'][-1]:.3f} | {r['control'][-1]:.3f} | {r['last_layer_gap']:+.3f} | "
                         f"{r['gap'][k]:+.3f} ({k}) |")
    elif fid:
        lines += ["", f"Imputation fidelity: {fid['note']}."]
    else:
        lines += ["", "Imputation fidelity: not measured (the method has no LLM sequence)."]
    return "\n".join(lines) + "\n"
