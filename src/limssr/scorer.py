"""A trained run, ready to score new performances from arrays: what `limssr.load` returns and what
`limssr predict` uses (on feature files, or on video files through `limssr.extract`).

    scorer = limssr.load("runs/demo")
    scorer.predict({"video": video_feats, "audio": audio_feats})   # -> array([87.3]); flow missing
    scorer.predict([{"video": v1}, {"video": v2, "flow": f2}])     # one score per performance
    scorer.intervals({"video": video_feats})   # -> (score, lo, hi): the conformal interval of its
                                               #    pattern of shown modalities (limssr.conformal)
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from limssr.atomic import atomic_write_text
from limssr.config import RunConfig, with_scoring
from limssr.conformal import Calibration, ConformalError, apply
from limssr.data.dataset import AQADataset
from limssr.data.generic import read_unlabelled
from limssr.data.loaders import make_loader
from limssr.data.samples import DataError, Sample, check_sample
from limssr.evaluation import Predictions, predict
from limssr.extract.pipeline import RECORD, extract_videos, plan_from_record
from limssr.precision import scoring_precision
from limssr.runs import RunError, latest_calibration, load_trained, quiet_libraries, read_run_config, unique_dir


class Scorer:
    """A trained model in inference mode (adapters merged, prompt prefixes cached). Scores come in
    raw score units (the normalised output times the run's score range)."""

    def __init__(self, cfg: RunConfig, model, source: str = "model", calibration: Calibration | None = None):
        self.cfg = cfg
        self.source = source
        self.calibration = calibration  # None: the run was not calibrated (see limssr.conformal)
        self.precision = scoring_precision(cfg.train.precision, cfg.method, cfg.eval.quantize)
        self.model = model.prepare_inference(self.precision, cfg.eval.quantize, cfg.eval.compile)
        self.modalities = list(model.modalities)
        self.dims = dict(model.dims)
        self.score_range = float(cfg.data.score_range)

    @classmethod
    def from_run(cls, run_dir: str | Path, quantize: str | None = None, compile: bool | None = None) -> "Scorer":
        """The run's model; quantize / compile: eval.quantize / eval.compile for scoring (None: the run's)."""
        cfg, model = load_trained(run_dir)
        cfg = with_scoring(cfg, quantize, compile)
        return cls(cfg, model, source=str(run_dir), calibration=latest_calibration(Path(run_dir)))

    def predict_samples(self, samples: list[Sample], where: str = "input", coverage: float | None = None) -> Predictions:
        """Predictions (raw units) for `samples`, each scored with the modalities it has; with a
        calibration, their intervals too (at `coverage`, default the calibrated one)."""
        for s in samples:
            check_sample(s, self.modalities, self.dims, where, own_length=list(self.cfg.model.span_lengths))
        dataset = AQADataset(samples, self.modalities, self.dims, 1.0, self.cfg.data.clip_num, train=False,
                             test_crop=self.cfg.data.test_crop, span_lengths=self.cfg.model.span_lengths)
        loader = make_loader(dataset, self.cfg.eval.batch_size, shuffle=False)
        device = next(self.model.parameters()).device
        preds = predict(self.model, loader, None, device, self.precision, 1.0)
        # to raw units in Python floats, as the CSV always had
        preds.score = [x * self.score_range for x in preds.score]
        preds.heads = {k: [x * self.score_range for x in v] for k, v in preds.heads.items()}
        if self.calibration is not None:
            apply(self.calibration, {"input": preds}, coverage)
        return preds

    def predict(self, features: dict[str, np.ndarray] | list[dict[str, np.ndarray]]) -> np.ndarray:
        """Scores for one performance (a dict modality -> (T, D) array) or a list of them; a modality
        left out is missing for that performance. Returns a float array, one score each."""
        return self._arrays(list(features) if isinstance(features, (list, tuple)) else [features], None)[0]

    def intervals(self, features: dict[str, np.ndarray] | list[dict[str, np.ndarray]],
                  coverage: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, lo, hi) arrays, as `predict`, with each score's conformal interval at `coverage`
        (default the calibrated one); lo and hi are nan where its pattern had too few calibration
        samples. Needs a calibrated run (trained with data.calibration_fraction or train.selection=val,
        then evaluated)."""
        if self.calibration is None:
            raise ConformalError(f"{self.source}: no calibration (conformal.json); intervals need a run trained "
                                 "with data.calibration_fraction (e.g. 0.2) or train.selection=val, then evaluated "
                                 "(`limssr evaluate RUN_DIR`)")
        return self._arrays(list(features) if isinstance(features, (list, tuple)) else [features], coverage)

    def _arrays(self, items, coverage):
        samples = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise DataError(f"performance {i}: expected a dict modality -> (T, D) array, got "
                                f"{type(item).__name__}")
            samples.append(Sample(name=str(i), features={m: np.asarray(a, dtype=np.float32) for m, a in item.items()}))
        preds = self.predict_samples(samples, where="predict()", coverage=coverage)
        order = [{name: j for j, name in enumerate(preds.names)}[str(i)] for i in range(len(items))]
        score = np.array([preds.score[j] for j in order], dtype=float)
        if not preds.lo:
            return score, None, None
        lo = np.array([np.nan if preds.lo[j] is None else preds.lo[j] for j in order], dtype=float)
        hi = np.array([np.nan if preds.hi[j] is None else preds.hi[j] for j in order], dtype=float)
        return score, lo, hi


@quiet_libraries()
def predict_files(run_dir: str | Path, inputs: str | Path, out: str | Path | None = None, show: bool = True,
                  coverage: float | None = None, quantize: str | None = None, compile: bool | None = None) -> Path:
    """Score unlabelled samples with any subset of modalities; writes name, score, lo, hi (the
    conformal interval of the run's calibration, empty without one) and what was shown."""
    run_dir = Path(run_dir)
    scorer = Scorer.from_run(run_dir, quantize, compile)
    preds = scorer.predict_samples(read_unlabelled(inputs, scorer.modalities), where=str(inputs), coverage=coverage)
    mods = scorer.modalities
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", "score", "lo", "hi", "present", "missing"] + [f"has_{m}" for m in mods])
    for i, (name, score, shown) in enumerate(zip(preds.names, preds.score, preds.shown)):
        present = [m for m in mods if m[0] in shown]
        missing = [m for m in mods if m not in present]
        lo, hi = (preds.lo[i], preds.hi[i]) if preds.lo else (None, None)
        writer.writerow([name, f"{score:.4f}", "" if lo is None else f"{lo:.4f}", "" if hi is None else f"{hi:.4f}",
                         "+".join(present), "+".join(missing) or "-"] + [int(m in present) for m in mods])
    out_path = Path(out) if out else unique_dir(run_dir / "predictions" / f"{Path(inputs).stem}.csv")
    if out and out_path.exists():
        raise RunError(f"'{out_path}' already exists; choose another --out")
    atomic_write_text(out_path, buf.getvalue())
    if show:
        print(buf.getvalue().rstrip())
        cal = scorer.calibration
        print(f"lo, hi: {100 * (coverage or cal.coverage):g}% conformal interval, calibrated per pattern of shown "
              f"modalities on the {cal.split}" if cal else
              "lo, hi empty: the run has no calibration (train with data.calibration_fraction=0.2, then "
              "`limssr evaluate`)")
        print(f"predictions written to {out_path}")
    return out_path


def predict_videos(run_dir: str | Path, videos: list[str | Path], plan=None, out: str | Path | None = None,
                   device: str = "auto", batch: int = 4, show: bool = True, coverage: float | None = None,
                   quantize: str | None = None, compile: bool | None = None) -> Path:
    """Extract features from video files as the run's training data was extracted (its extract.json,
    or `plan`), then score them: one command from a video to a score."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if plan is None:
        cfg = read_run_config(run_dir)
        candidates = [run_dir / RECORD] + ([Path(cfg.data.path) / RECORD] if cfg.data.path else [])
        record_path = next((p for p in candidates if p.is_file()), None)
        if record_path is None:
            raise RunError(f"{run_dir}: the run was not trained on features from `limssr extract` (no {RECORD}); "
                           "name the extractors with --extractors and --weights")
        plan = plan_from_record(json.loads(record_path.read_text(encoding="utf-8")), str(record_path))
        plan.device, plan.batch = device, batch
    with tempfile.TemporaryDirectory(prefix=".video-", dir=run_dir) as tmp:
        record = extract_videos(videos, Path(tmp) / "features", plan, show=show)
        if not record["videos"]:
            raise RunError(f"no video could be decoded: {'; '.join(record['failed'].values())}")
        name = Path(videos[0]).stem if len(videos) == 1 else "videos"
        path = predict_files(run_dir, Path(tmp) / "features", out=out or unique_dir(
            run_dir / "predictions" / f"{name}.csv"), show=show, coverage=coverage, quantize=quantize, compile=compile)
    if show:
        print(f"scored {len(record['videos'])} video(s) in {time.perf_counter() - started:.1f} s "
              f"(extractors: {', '.join(f'{m}={n}' for m, n in plan.extractors.items())})")
    return path
