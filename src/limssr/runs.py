"""Run directories and the user's verbs: train, evaluate, predict.

A run directory holds everything needed to reproduce and reuse a run:

    config.yaml              the resolved configuration (dims and modalities filled from the data)
    env.json                 the software and machine of the latest training attempt (not compared on reuse)
    train_masks.csv          the fixed training masks (strict protocol)
    logs/metrics.csv         training curves (CSV logger)
    checkpoints/last.safetensors   full training state, for --resume (pickle-free)
    model.safetensors        the trained weights (trainable part only) with the config embedded
    eval/                    results.json, results.md, results.csv, predictions.csv, results.png
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import signal
import time
import warnings
from dataclasses import replace
from pathlib import Path

import lightning as L
import yaml

from limssr.aggregate import across_score_types, aggregate_seeds, latest_results, score_types_markdown, seeds_markdown
from limssr.checkpoint import CheckpointError, load_training_checkpoint, load_weights, save_weights, training_checkpoint_epoch
from limssr.config import RunConfig, config_from_dict, with_scoring
from limssr.conformal import CALIBRATION_FILE, Calibration, apply, calibrate, interval_results
from limssr.data import DataError, SampleSet, load_data
from limssr.data.loaders import make_dataset, make_loader, training_parts
from limssr.environment import environment
from limssr.evaluation import Results, evaluate_subsets, subset_results
from limssr.export import CONFIG as EXPORT_CONFIG
from limssr.export import is_export, load_export, write_export
from limssr import plots
from limssr import trust as measures
from limssr.plots import latest_eval_dir
from limssr.precision import best_device, resolve_precision, scoring_precision
from limssr.atomic import atomic_write_json, atomic_write_text, read_results_json
from limssr.report import print_table, write_results
from limssr.subsets import subset_name
from limssr.training import (BEST_CHECKPOINT, LAST_CHECKPOINT, LimssrDataModule, TrainingModule, TrainingTime,
                             best_validation_score, build_model, check_loggers, is_worker_process, make_trainer,
                             selection_label)

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
SELECTION_FILE = "selection.json"
DATA_FILE = "data.json"  # the fingerprint of the data the run was trained on
TIMING_FILE = "timing.json"  # wall and CPU seconds spent training, over every attempt
EXTRACT_FILE = "extract.json"  # how the data's features were extracted from video (`limssr extract`), if they were
ENV_FILE = "env.json"  # limssr.environment(): versions, git commit, machine; a record, never a config
# config keys that change where a run reads from or how it reports, never what it computes
PRESENTATION_KEYS = ("name", "data.path", "train.num_workers", "train.log_every_n_steps", "train.loggers")


class RunError(RuntimeError):
    """A run directory cannot be created, resumed or read; the message names the path."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT); `run_dir` is where `limssr train --resume` continues."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


QUIET_WARNINGS = (".*is_gradient_checkpointing.*", ".*does not have many workers.*",
                  ".*number of training batches.*", ".*`isinstance\\(treespec, LeafSpec\\)`.*",
                  ".*Checkpoint directory .* exists and is not empty.*")
QUIET_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda")


@contextlib.contextmanager
def quiet_libraries():
    """While training, scoring or predicting (a context manager and a decorator): silence library
    chatter that says nothing actionable to a limssr user. Warning filters and logger levels are
    restored afterwards, so the caller's process keeps its own."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def resolve(cfg: RunConfig, data: SampleSet) -> RunConfig:
    """Fill the modalities, feature dims and span lengths from the data; refuse dims that contradict
    the config."""
    for m, d in cfg.model.dims.items():
        if m in data.dims and data.dims[m] != d:
            raise DataError(f"config key 'model.dims.{m}' is {d} but the data's '{m}' features have dim {data.dims[m]}")
    train = data.splits.get("train", [])
    spans = {m: min(cfg.data.clip_num, max((s.features[m].shape[0] for s in train if m in s.features), default=1))
             for m in data.own_length}
    model = replace(cfg.model, modalities=list(data.modalities), dims=dict(data.dims), span_lengths=spans)
    data_cfg = replace(cfg.data, score_range=float(data.score_range),
                       path=str(Path(cfg.data.path).resolve()) if cfg.data.path else None,
                       score_type=data.info.get("score_type", cfg.data.score_type))
    return config_from_dict(replace(cfg, model=model, data=data_cfg).to_dict())


def unique_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... (before any file suffix), whichever does not exist yet."""
    if not base.exists():
        return base
    i = 2
    while (candidate := base.with_name(f"{base.stem}-{i}{base.suffix}")).exists():
        i += 1
    return candidate


def prepare_run_dir(out: str | Path | None, cfg: RunConfig) -> Path:
    if out is None:
        return unique_dir(Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out = Path(out)
    if (out / CONFIG_FILE).exists() or (out / WEIGHTS_FILE).exists():
        raise RunError(f"'{out}' already holds a run; pass a new --out, or resume it with "
                       f"`limssr train --resume {out}`")
    if out.exists() and not out.is_dir():
        raise RunError(f"'{out}' exists and is not a directory; pass a new --out directory")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"'{out}' exists and is not empty; pass a new --out directory")
    try:  # can it be made? (under a file, in /proc, read-only: say so now, not as a traceback later)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the run directory '{out}': {err.strerror or err}; choose another --out") from None
    return out


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and key not in ("dims", "prompt_names"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: RunConfig, wanted: RunConfig) -> list[str]:
    """'key: saved -> wanted' for every computation-relevant key where two resolved configs differ."""
    a, b = _flat(saved.to_dict()), _flat(wanted.to_dict())
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in PRESENTATION_KEYS and a.get(k) != b.get(k)]


def write_data_record(run_dir: Path, data: SampleSet) -> None:
    record = {"fingerprint": data.fingerprint(), "source": data.info.get("source"),
              "splits": {k: len(v) for k, v in data.splits.items()}}
    atomic_write_text(run_dir / DATA_FILE, json.dumps(record, indent=2) + "\n")
    extracted = Path(data.info.get("path") or "") / EXTRACT_FILE
    if data.info.get("path") and extracted.is_file():  # so `limssr predict RUN_DIR video.mp4` extracts alike
        atomic_write_text(run_dir / EXTRACT_FILE, extracted.read_text(encoding="utf-8"))


def check_same_run(run_dir: Path, cfg: RunConfig, data: SampleSet) -> None:
    """Refuse to reuse or resume `run_dir` for `cfg` (resolved on `data`) unless its saved config and
    data fingerprint are the ones requested; the message names every key that differs."""
    diffs = config_differences(read_run_config(run_dir), cfg)
    record = run_dir / DATA_FILE
    saved_fp = json.loads(record.read_text()).get("fingerprint") if record.is_file() else None
    if saved_fp != data.fingerprint():
        diffs.append("the data (fingerprint " + (f"{saved_fp[:12]}..." if saved_fp else "not recorded")
                     + f" -> {data.fingerprint()[:12]}...)")
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise RunError(f"'{run_dir}' holds a run of another configuration ({shown}); pass another --out, "
                       "or delete that directory to run it again")


def run_state(run_dir: Path) -> str:
    """'evaluated' (results written; its weights may have been pruned, see
    `benchmarks/archive_runs.py`), 'trained' (weights, no evaluation), 'interrupted' (a checkpoint
    to resume), 'failed' (a directory without a checkpoint: a start that failed) or 'new'."""
    if (run_dir / CONFIG_FILE).is_file() and list(run_dir.glob("eval*/results.json")):
        return "evaluated"
    if (run_dir / WEIGHTS_FILE).is_file():
        return "trained"
    if (run_dir / "checkpoints" / LAST_CHECKPOINT).is_file():
        return "interrupted"
    return "failed" if run_dir.exists() else "new"


def train_and_evaluate(cfg: RunConfig, run_dir: Path, data: SampleSet | None = None, progress: bool = True,
                       show: bool = True) -> Results:
    """The results of `cfg` in `run_dir`, doing only what is not done yet: a finished run of the same
    config and data is reused, an interrupted one resumed, a failed start moved aside (`*.failed`);
    a run of another config or data is refused (RunError naming the differences)."""
    data = data if data is not None else load_data(cfg)
    resolved = resolve(cfg, data)
    state = run_state(run_dir)
    if state in ("evaluated", "trained", "interrupted"):
        check_same_run(run_dir, resolved, data)
    if state == "evaluated":
        return latest_results(run_dir)
    if state == "trained":
        return evaluate(run_dir, data=data, show=show)[0]
    if state == "failed":
        run_dir.rename(unique_dir(run_dir.with_name(run_dir.name + ".failed")))
    resume = run_dir if state == "interrupted" else None
    done = train_then_evaluate(None if resume else cfg, out=None if resume else run_dir, resume=resume,
                               progress=progress, data=data, show=show)
    if done is None:
        raise RunError("train_and_evaluate runs in the main process only (this is a worker of a multi-process run)")
    return done[1]


def train_then_evaluate(cfg: RunConfig | None, out: str | Path | None = None, resume: str | Path | None = None,
                        data: SampleSet | None = None, progress: bool = True, show: bool = True,
                        evaluate_after: bool = True, announce: bool = False) -> tuple[Path, dict | None] | None:
    """`train` (or resume), then score the model it leaves on every subset with the run's saved
    config: (run directory, results), results None without `evaluate_after` (`announce`: print the
    run directory once trained). None in an extra
    process of a multi-process run (the main one reports)."""
    done = train(cfg, out=out, resume=resume, progress=progress, data=data)
    if done is None:
        return None
    run_dir, module, data = done
    if announce:
        print(f"run written to {run_dir}")
    if not evaluate_after:
        return run_dir, None
    return run_dir, evaluate(run_dir, model=module.model.eval(), cfg=read_run_config(run_dir), data=data,
                             show=show)[0]


def read_run_config(run_dir: Path) -> RunConfig:
    if is_export(run_dir):
        return config_from_dict(json.loads((Path(run_dir) / EXPORT_CONFIG).read_text(encoding="utf-8"))["config"])
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a limssr run directory ({CONFIG_FILE} is missing)")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def _write_masks(run_dir: Path, dm: LimssrDataModule, modalities: list[str]) -> None:
    """Fixed per-sample training masks, once; protocols drawn every step append as they go."""
    rows = dm.fixed_masks()
    if rows is None:
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", "shown"] + modalities)
    for name, mask in rows:
        writer.writerow([name, subset_name(mask, modalities)] + [int(x) for x in mask])
    atomic_write_text(run_dir / "train_masks.csv", buf.getvalue())


@quiet_libraries()
def train(cfg: RunConfig | None, out: str | Path | None = None, resume: str | Path | None = None,
          progress: bool = True, callbacks: list | None = None,
          data: SampleSet | None = None) -> tuple[Path, TrainingModule, SampleSet]:
    """Train a model; with `resume`, continue the run in that directory from its last checkpoint
    (its saved config is used and `cfg` is ignored). `callbacks` are extra Lightning callbacks;
    `data`, the already loaded data of the config (read from it otherwise)."""
    worker = is_worker_process()
    existed = True  # the run directory was there before this call (a resume, or --out given as one)
    if cfg is not None:
        check_loggers(cfg.train.loggers)  # a missing logger library is refused before anything is written
    if resume is not None:
        run_dir = Path(resume)
        cfg = read_run_config(run_dir)
        ckpt = run_dir / "checkpoints" / LAST_CHECKPOINT
        if (run_dir / WEIGHTS_FILE).is_file():
            raise RunError(f"'{run_dir}' has finished training already ({WEIGHTS_FILE} exists); score it with "
                           f"`limssr evaluate {run_dir}`")
        if not ckpt.is_file():
            raise RunError(f"'{run_dir}' has no checkpoint to resume from ({ckpt} is missing)")
    elif worker:  # the main process (rank 0) makes the run directory; this one only trains
        if out is None:
            raise RunError("a multi-process run needs --out: every process must name the same run directory")
        run_dir, ckpt = Path(out), None
    else:
        existed = out is not None and Path(out).exists()
        run_dir, ckpt = prepare_run_dir(out, cfg), None
    fresh = not worker and ckpt is None  # prepare_run_dir made sure the directory is empty
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        data = data if data is not None else load_data(cfg)
        cfg = resolve(cfg, data)
        if ckpt is not None:
            check_same_run(run_dir, cfg, data)  # the data of a resumed run must be what it started on
        if not worker:
            run_dir.mkdir(parents=True, exist_ok=True)
            if ckpt is None:
                atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
                write_data_record(run_dir, data)
            atomic_write_text(run_dir / ENV_FILE, json.dumps(environment(), indent=2) + "\n")  # every attempt
        dm = LimssrDataModule(cfg, data)
        if not worker:
            _write_masks(run_dir, dm, cfg.model.modalities)
        module = TrainingModule(cfg)
        timing = [TrainingTime(run_dir / TIMING_FILE)] if not worker else []
        trainer = make_trainer(cfg, run_dir, enable_progress_bar=progress, extra_callbacks=timing + (callbacks or []),
                               resume_epoch=training_checkpoint_epoch(ckpt) if ckpt is not None else None)
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
        except SystemExit:
            if not trainer.interrupted:
                raise
            # Lightning answers Ctrl-C by exiting the process, with SIGINT left ignored: restore it and
            # say how to resume instead
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise Interrupted(run_dir) from None
    except Exception:
        # a start that failed before its first checkpoint leaves nothing behind (it could be neither
        # resumed nor reused): the same --out works once the cause is mended
        if fresh and not (run_dir / "checkpoints" / LAST_CHECKPOINT).is_file():
            for child in sorted(run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
            if not existed:
                run_dir.rmdir()
        raise
    if trainer.interrupted:
        raise Interrupted(run_dir)
    if trainer.global_rank != 0:
        return None
    selection = {"selection": cfg.train.selection, "label": selection_label(cfg), "epochs": cfg.train.epochs}
    if cfg.train.selection != "last":
        best = load_training_checkpoint(run_dir / "checkpoints" / BEST_CHECKPOINT)
        module.model.load_trainable_state_dict({k[len("model."):]: v for k, v in best["state_dict"].items()},
                                               "best checkpoint")
        selection.update({"best_epoch": int(best["epoch"]) + 1, "val_n": len(dm.val_set),
                          "val_spearman": best_validation_score(trainer)})
    atomic_write_text(run_dir / SELECTION_FILE, json.dumps(selection, indent=2) + "\n")
    save_weights(module.model.trainable_state_dict(), cfg.to_dict(), run_dir / WEIGHTS_FILE,
                 backbone=module.model.backbone_signature())
    return run_dir, module, data


def train_seeds(cfg: RunConfig, seeds: list[int], out: str | Path | None = None, progress: bool = True,
                show: bool = True) -> Path:
    """One run per seed in OUT/seed-N (finished seeds are kept, not redone), each evaluated, then
    OUT/summary.{json,md} with mean +- std over the seeds."""
    root = Path(out) if out else unique_dir(Path("runs") / f"{cfg.name}-seeds-{time.strftime('%Y%m%d-%H%M%S')}")
    data = load_data(cfg)  # the same data for every seed (its config does not depend on the seed)
    results = [train_and_evaluate(replace(cfg, seed=seed), root / f"seed-{seed}", data, progress, show)
               for seed in seeds]
    summary = aggregate_seeds(results)
    atomic_write_json(root / "summary.json", summary)
    atomic_write_text(root / "summary.md", seeds_markdown(summary))
    if show:
        print(seeds_markdown(summary))
        print(f"summary written to {root}/summary.json and summary.md")
    return root


def summarize(run_dirs: list[str | Path], out: str | Path | None = None, show: bool = True) -> dict:
    """Spearman per score type (one run or multi-seed directory each) and their Fisher-z average."""
    by_type = {}
    for run_dir in run_dirs:
        res = latest_results(run_dir)
        key = res.get("score_type") or Path(run_dir).name
        if key in by_type:
            key = f"{key} ({Path(run_dir).name})"
        by_type[key] = res
    summary = across_score_types(by_type)
    text = score_types_markdown(summary)
    if out:
        out = Path(out)
        if out.exists():
            raise RunError(f"'{out}' already exists; choose a new --out")
        atomic_write_json(out / "score_types.json", summary)
        atomic_write_text(out / "score_types.md", text)
    if show:
        print(text)
    return summary


def load_trained(run_dir: str | Path):
    """(config, model) of a finished run or an export folder (`limssr export`), the model in eval
    mode on the best available device."""
    run_dir = Path(run_dir)
    if is_export(run_dir):
        cfg, model = load_export(run_dir)
        return cfg, model.to(best_device()).eval()
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        hint = (f"; training did not finish - continue it with `limssr train --resume {run_dir}`"
                if (run_dir / "checkpoints" / LAST_CHECKPOINT).is_file() else "")
        raise RunError(f"'{run_dir}' holds no trained model ({weights} is missing){hint}")
    try:
        state, cfg_dict, signature = load_weights(weights, with_backbone=True)
    except CheckpointError as err:
        raise RunError(str(err)) from None
    cfg = config_from_dict(cfg_dict)
    model = build_model(cfg)
    if signature and signature != model.backbone_signature():
        raise CheckpointError(f"'{weights}' was trained on another backbone ({signature}) than the one its config "
                              f"now loads, '{cfg.model.backbone}' ({model.backbone_signature()}): its adapters "
                              "do not fit it")
    model.load_trainable_state_dict(state, str(weights))
    return cfg, model.to(best_device()).eval()


def export_run(run_dir: str | Path, out: str | Path, base_model: str | None = None,
               revision: str | None = None) -> Path:
    """Write a finished run as an export folder (see limssr.export): PEFT adapter, heads, config,
    model card with the run's latest 7-subset results."""
    run_dir = Path(run_dir)
    if is_export(run_dir):
        raise RunError(f"'{run_dir}' is an export already")
    cfg, model = load_trained(run_dir)
    latest = latest_eval_dir(run_dir)  # the evaluation latest_calibration and `limssr plot` read too
    results = read_results_json(latest / "results.json") if latest and (latest / "results.json").is_file() else None
    calibration = latest / CALIBRATION_FILE if latest and (latest / CALIBRATION_FILE).is_file() else None
    return write_export(cfg, model.cpu(), out, results=results, run_dir=run_dir, base_model=base_model,
                        revision=revision, calibration=calibration)


@quiet_libraries()
def evaluate(run_dir: str | Path, data_path: str | None = None, model=None, cfg: RunConfig | None = None,
             data: SampleSet | None = None, out_dir: Path | None = None, show: bool = True,
             coverage: float | None = None, quantize: str | None = None,
             compile: bool | None = None) -> tuple[Results, Path]:
    """Score the run's model on every subset of the test split and write the report files; with a
    validation split, calibrate score intervals on it (at `coverage`, default eval.coverage).
    quantize / compile: eval.quantize / eval.compile for this scoring (None: the run's own)."""
    run_dir = Path(run_dir)
    if model is None:
        cfg, model = load_trained(run_dir)
    if coverage is not None:
        if not 0 < coverage < 1:
            raise RunError(f"--coverage must be strictly between 0 and 1 (e.g. 0.9), got {coverage}")
        cfg = replace(cfg, eval=replace(cfg.eval, coverage=float(coverage)))
    cfg = with_scoring(cfg, quantize, compile)
    cfg, data, test, loader = _test_split(cfg, model, data_path, data)
    device = best_device()
    precision = scoring_precision(cfg.train.precision, cfg.method, cfg.eval.quantize)
    model = model.to(device).prepare_inference(precision, cfg.eval.quantize, cfg.eval.compile)
    t0 = time.time()
    preds = evaluate_subsets(model, test, loader, device, precision,
                             progress=(lambda n: print(f"  evaluated subset {{{','.join(n)}}}", flush=True))
                             if show else None)
    train_scores = [s.score for s in data.split("train") if s.score is not None]
    results = subset_results(preds, model.modalities, float(sum(train_scores) / len(train_scores)))
    calibration, why = _calibrate(cfg, data, model, device, precision)
    if calibration is not None:
        apply(calibration, preds)
        results["intervals"] = interval_results(calibration, preds)
    else:
        results["intervals"] = {"target": cfg.eval.coverage, "why_none": why}
    results.update({
        "method": cfg.method,
        "dataset": data.info.get("source", "data") if data.info.get("source") != "generic" else data.info["path"],
        "modalities": model.modalities,
        "score_range": data.score_range,
        "noise_ceiling": data.info.get("noise_ceiling"),
        "protocol": {"training_missingness": cfg.train.missing, "selection": _selection(run_dir, cfg),
                     "test_crop": cfg.data.test_crop, "clip_num": cfg.data.clip_num},
        "score_type": data.info.get("score_type"),
        "backbone": cfg.model.backbone,
        "seed": cfg.seed,
        "eval_seconds": round(time.time() - t0, 1),
        "env": environment(),  # of this evaluation (the training's is the run's env.json)
    })
    out_dir = out_dir or unique_dir(run_dir / "eval")
    write_results(results, preds, out_dir, calibration)
    if show:
        print_table(results)
        extra = ", conformal.json, intervals.png" if calibration is not None else ""
        print(f"results written to {out_dir}/ (results.json/.md/.csv, predictions.csv{extra}; results.png, "
              "scatter.png, residuals.png, calibration.png, curves.png)")
    return results, out_dir


def _test_split(cfg: RunConfig, model, data_path: str | None, data: SampleSet | None):
    """(cfg, data, test dataset, its loader) for scoring `model`; `data_path` reads other data through
    the same reader table as training (the layout is detected), checked against the model's dims."""
    if data_path is not None:
        cfg = replace(cfg, data=replace(cfg.data, source="auto", path=str(data_path)))
    if data is None:
        data = load_data(cfg)
    if data.modalities != model.modalities or data.dims != model.dims:
        raise DataError(f"the data has modalities/dims {data.dims}, the model was trained on {model.dims}")
    test = make_dataset(cfg, data, data.split("test"), train=False)
    return cfg, data, test, make_loader(test, cfg.eval.batch_size, shuffle=False)


@quiet_libraries()
def trust_run(run_dir: str | Path, data_path: str | None = None, out_dir: str | Path | None = None,
              show: bool = True) -> tuple[dict, Path]:
    """The hallucination measures of limssr.trust for a run's model on its test split, written to
    RUN_DIR/trust*/ (trust.json, trust.md, shift.png, fidelity.png)."""
    run_dir = Path(run_dir)
    cfg, model = load_trained(run_dir)
    cfg, data, test, loader = _test_split(cfg, model, data_path, None)
    device = best_device()
    model = model.to(device)
    t0 = time.time()
    preds = evaluate_subsets(model, test, loader, device, resolve_precision(cfg.train.precision, cfg.method))
    report = measures.trust_report(preds, model.modalities, model, loader, device)
    report.update({"method": cfg.method, "backbone": cfg.model.backbone, "seed": cfg.seed,
                   "ablations": {k: getattr(cfg.model, k) for k in ("pcmi", "lmrf", "path1", "path2")},
                   "seconds": round(time.time() - t0, 1), "env": environment()})
    out = Path(out_dir) if out_dir else unique_dir(run_dir / "trust")
    if out_dir and out.exists():
        raise RunError(f"'{out}' already exists; choose another --out")
    out.mkdir(parents=True)
    title = f"{cfg.method} {run_dir.resolve().name}"
    text = measures.markdown(report, title)
    atomic_write_json(out / "trust.json", report)
    atomic_write_text(out / "trust.md", text)
    if any("shift" in r for r in report["score_shift"].values()):
        plots.plot_shift(report, out / plots.SHIFT, title)
    if report["fidelity"] and "modalities" in report["fidelity"]:
        plots.plot_fidelity(report, out / plots.FIDELITY, title)
    if show:
        print(text)
        print(f"trust report written to {out}/ (trust.json, trust.md, shift.png, fidelity.png)")
    return report, out


def _calibrate(cfg: RunConfig, data: SampleSet, model, device, precision: str) -> tuple[Calibration | None, str]:
    """Conformal calibration on the run's calibration split (data.calibration_fraction), else on its
    validation split, or (None, why there is none)."""
    if cfg.data.calibration_fraction <= 0 and cfg.train.selection != "val":
        return None, (f"train.selection={cfg.train.selection} holds out no calibration split (intervals need "
                      "samples the model was not trained on): set data.calibration_fraction (e.g. 0.2)")
    try:
        _, val, held_out = training_parts(cfg, data.split("train"))
    except ValueError as err:
        return None, f"no split to calibrate on: {err}"
    if held_out:
        part, label = held_out, (f"calibration split ({len(held_out)} samples held out from training and model "
                                 f"selection, data.calibration_fraction={cfg.data.calibration_fraction:g})")
    else:
        part, label = val, (f"validation split ({len(val)} samples, data.val_seed={cfg.data.val_seed}; it also "
                            "chose the epoch, which can make the intervals cover less than the target: set "
                            "data.calibration_fraction for a split of their own)")
    part_set = make_dataset(cfg, data, part, train=False)
    preds = evaluate_subsets(model, part_set, make_loader(part_set, cfg.eval.batch_size, shuffle=False), device,
                             precision)
    return calibrate(preds, cfg.eval.coverage, cfg.eval.interval_scale, split=label), ""


def latest_calibration(run_dir: Path) -> Calibration | None:
    """The calibration of a run's latest evaluation (or of an export folder), if it has one."""
    latest = latest_eval_dir(run_dir) if run_dir.is_dir() else None
    found = [p for p in [run_dir / CALIBRATION_FILE, latest and latest / CALIBRATION_FILE] if p and p.is_file()]
    if not found:
        return None
    path = found[-1]
    try:
        return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); run `limssr evaluate "
                       f"{run_dir}` to write a new calibration") from None


def _selection(run_dir: Path, cfg: RunConfig) -> str:
    path = run_dir / SELECTION_FILE
    if not path.is_file():
        return selection_label(cfg)
    info = json.loads(path.read_text())
    if "best_epoch" in info:
        return f"{info['label']}: epoch {info['best_epoch']} of {info['epochs']}"
    return info["label"]
