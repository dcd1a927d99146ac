"""Split-conformal score intervals, calibrated separately for each pattern of shown modalities.

A score predicted from video alone is less certain than one from video, audio and flow, so one
interval width for every input would be too wide for some and too narrow for others. Here the
nonconformity scores of the held-out validation split are kept per *shown pattern* (the modality
initials the model saw, e.g. "va"), and a new score predicted from that pattern gets

    [score - q * s, score + q * s],   q = the ceil((n + 1) * coverage)-th smallest calibration score

of its pattern's n calibration samples (split conformal regression: if calibration and test
samples are exchangeable, the interval holds the label with probability >= coverage). The
nonconformity score is |label - score| / s with s = 1 (`scale="none"`, absolute residuals) or
s = |head_1 - head_2| + beta (`scale="heads"`: the disagreement of a method's two heads, e.g.
LIMSSR's Path 1 and Path 2, as a per-sample difficulty; beta is the median disagreement on the
calibration split, so that s never vanishes).

A pattern with fewer than ceil(1 / (1 - coverage)) - 1 calibration samples has no finite
quantile: it gets no interval (None), and the results say so, rather than a meaningless one.
The validation split also chose the epoch (train.selection=val), which can make the calibration
residuals slightly smaller than fresh ones; the measured test coverage in results.json shows how
much that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from limssr.evaluation import Predictions

CALIBRATION_FILE = "conformal.json"  # written beside results.json by `limssr evaluate`
DEFAULT_COVERAGE = 0.9
SCALES = ("none", "heads")


class ConformalError(ValueError):
    """A calibration cannot be built or read; the message names what is wrong."""


def min_calibration(coverage: float) -> int:
    """The fewest calibration samples that give a finite interval at `coverage`."""
    return max(1, math.ceil(1.0 / (1.0 - coverage) - 1e-9) - 1)


def _check_coverage(coverage: float) -> float:
    if not (isinstance(coverage, (int, float)) and 0.0 < coverage < 1.0):
        raise ConformalError(f"coverage must be a number strictly between 0 and 1 (e.g. 0.9), got {coverage!r}")
    return float(coverage)


@dataclass
class Calibration:
    """Nonconformity scores of the calibration split, by shown pattern; what `interval` reads."""

    coverage: float = DEFAULT_COVERAGE
    scale: str = "none"
    scores: dict[str, list[float]] = field(default_factory=dict)  # pattern -> sorted nonconformity scores
    beta: float | None = None  # scale="heads": added to every head disagreement
    heads: list[str] = field(default_factory=list)  # scale="heads": the two heads compared
    split: str = "validation"

    def quantile(self, pattern: str, coverage: float | None = None) -> float | None:
        """q for `pattern` at `coverage` (default the calibrated one); None if too few samples."""
        coverage = _check_coverage(self.coverage if coverage is None else coverage)
        s = self.scores.get(pattern, [])
        k = math.ceil((len(s) + 1) * coverage - 1e-9)
        return float(s[k - 1]) if 0 < k <= len(s) else None

    def scale_of(self, heads: dict[str, float]) -> float:
        """s for one prediction, from its head scores (raw units)."""
        if self.scale == "none":
            return 1.0
        a, b = (heads[h] for h in self.heads)
        return abs(a - b) + float(self.beta)

    def interval(self, pattern: str, score: float, heads: dict[str, float] | None = None,
                 coverage: float | None = None) -> tuple[float, float] | None:
        q = self.quantile(pattern, coverage)
        if q is None:
            return None
        half = q * self.scale_of(heads or {})
        return score - half, score + half

    def to_dict(self) -> dict:
        return {"coverage": self.coverage, "scale": self.scale, "beta": self.beta, "heads": self.heads,
                "split": self.split, "min_calibration": min_calibration(self.coverage),
                "n": {p: len(s) for p, s in self.scores.items()}, "scores": self.scores}

    @classmethod
    def from_dict(cls, d: dict, where: str = "conformal.json") -> "Calibration":
        try:
            cal = cls(coverage=_check_coverage(d["coverage"]), scale=d["scale"],
                      scores={str(p): sorted(float(x) for x in s) for p, s in d["scores"].items()},
                      beta=None if d.get("beta") is None else float(d["beta"]), heads=list(d.get("heads", [])),
                      split=str(d.get("split", "validation")))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConformalError(f"{where}: not a limssr calibration ({err.__class__.__name__}: {err})") from None
        if cal.scale not in SCALES or (cal.scale == "heads" and (len(cal.heads) != 2 or cal.beta is None)):
            raise ConformalError(f"{where}: scale {cal.scale!r} with heads {cal.heads} is not a valid calibration")
        return cal


def _by_pattern(preds: dict[str, Predictions]):
    """Each (sample, shown pattern) once, whichever requested subset scored it."""
    seen = set()
    for p in preds.values():
        for i, (name, shown) in enumerate(zip(p.names, p.shown)):
            if (name, shown) in seen:
                continue
            seen.add((name, shown))
            yield shown, p.label[i], p.score[i], {h: v[i] for h, v in p.heads.items()}


def calibrate(preds: dict[str, Predictions], coverage: float = DEFAULT_COVERAGE, scale: str = "none",
              split: str = "validation") -> Calibration:
    """A calibration from per-subset predictions of a held-out split (raw units, labels known)."""
    coverage = _check_coverage(coverage)
    if scale not in SCALES:
        raise ConformalError(f"eval.interval_scale must be one of {', '.join(SCALES)}, got {scale!r}")
    rows = list(_by_pattern(preds))
    cal = Calibration(coverage=coverage, scale=scale, split=split)
    if scale == "heads":
        heads = sorted(rows[0][3]) if rows else []
        if len(heads) != 2:
            raise ConformalError(f"eval.interval_scale=heads needs a method with two heads (LIMSSR with both "
                                 f"paths); this one has {heads or 'none'}: use eval.interval_scale=none")
        cal.heads = heads
        cal.beta = float(np.median([abs(h[heads[0]] - h[heads[1]]) for *_, h in rows]))
        if cal.beta <= 0:  # the heads agree everywhere: fall back to a unit offset in score units
            cal.beta = 1.0
    for shown, label, score, heads in rows:
        cal.scores.setdefault(shown, []).append(abs(label - score) / cal.scale_of(heads))
    cal.scores = {p: sorted(s) for p, s in sorted(cal.scores.items(), key=lambda kv: (-len(kv[0]), kv[0]))}
    return cal


def apply(cal: Calibration, preds: dict[str, Predictions], coverage: float | None = None) -> None:
    """Fill `lo` and `hi` of every prediction (None where its pattern has too few calibration samples)."""
    for p in preds.values():
        p.lo, p.hi = [], []
        for i in range(len(p.names)):
            iv = cal.interval(p.shown[i], p.score[i], {h: v[i] for h, v in p.heads.items()}, coverage)
            p.lo.append(None if iv is None else iv[0])
            p.hi.append(None if iv is None else iv[1])


def interval_results(cal: Calibration, preds: dict[str, Predictions]) -> dict:
    """Per requested subset: test coverage and mean width of the intervals, and how many test
    samples had one; for results.json (`preds` must have been through `apply`)."""
    out = {}
    for name, p in preds.items():
        pairs = [(y, lo, hi) for y, lo, hi in zip(p.label, p.lo, p.hi) if lo is not None]
        patterns = sorted(set(p.shown))
        entry = {"n_calibration": {s: len(cal.scores.get(s, [])) for s in patterns}, "n_with_interval": len(pairs),
                 "n": len(p.names),
                 "coverage": float(np.mean([lo <= y <= hi for y, lo, hi in pairs])) if pairs else None,
                 "width": float(np.mean([hi - lo for _, lo, hi in pairs])) if pairs else None}
        if len(pairs) < len(p.names):
            entry["note"] = (f"{len(p.names) - len(pairs)} test sample(s) have no interval: fewer than "
                             f"{min_calibration(cal.coverage)} calibration samples showed their modalities")
        out[name] = entry
    covered = [v for v in out.values() if v["coverage"] is not None]
    return {"target": cal.coverage, "scale": cal.scale, "calibration_split": cal.split,
            "min_calibration": min_calibration(cal.coverage), "subsets": out,
            "mean_coverage": float(np.mean([v["coverage"] for v in covered])) if covered else None}
