"""The `limssr` command line: one function per verb, its arguments beside it, and `VERBS`, the table
the parser is built from (`limssr --help` lists them).

Each verb imports what it runs when it runs (and the error types are imported only when one is
raised): `limssr --help` and the data verbs do not load torch, Lightning and transformers first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DESCRIPTION = """\
LIMSSR: sequence-to-score learning from incomplete multimodal observations.

Train a judge-like scorer on per-clip features (video, audio, optical flow, or your own
modalities) when some modalities are missing, even in the training data, then score it on
every modality subset.
"""

EPILOG = """\
examples:
  limssr demo                                     train + evaluate on built-in synthetic data
  limssr train --preset demo --backbone tiny --epochs 2 --out runs/quick
  limssr train --config my.yaml train.lr=1e-4 model.lora.r=8
  limssr train --resume runs/quick                continue from the last checkpoint
  limssr evaluate runs/quick                      7-subset table -> runs/quick/eval/
  limssr predict runs/quick sample.npz            score one sample (any subset of modalities)
  limssr extract videos/ feats --weights video=swin3d_b_22k-7c6ae6fa.pth,audio=ast-dir,flow=raft.pth,flow_imagenet.pt
  limssr predict runs/extracted clip.mp4          extract as for training, then score a video
  limssr train --preset demo --method mcmoe       any registered method (see `limssr methods`)
  limssr benchmark --preset demo --methods limssr,mcmoe,zero-fill --regimes strict,complete --out bench
"""

Formatter = argparse.HelpFormatter  # subcommands: wrapped prose
DATA_HELP = "data directory: the generic layout or a released FS1000, Fis-V or RG layout, detected"


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, list[str]], int]
    aliases: tuple[str, ...] = ()


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"error: {what} takes integers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _config_source(args):
    """The preset, file and overrides the command line names (a method's own defaults apply beneath them)."""
    from limssr.config import ConfigSource, with_data

    overrides = list(args.overrides)
    if getattr(args, "trust_remote_code", False):
        overrides.append("model.trust_remote_code=true")
    pairs = [("model.backbone", args.backbone), ("train.epochs", getattr(args, "epochs", None)),
             ("seed", getattr(args, "seed", None)), ("method", getattr(args, "method", None))]
    for key, value in pairs:
        if value is not None:
            overrides.append(f"{key}={value}")
    return with_data(ConfigSource(preset=args.preset, path=args.config, overrides=tuple(overrides)), args.data)


# ----------------------------------------------------------------------------------------- demo


def demo_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--out", help="run directory (default: demo-run, or demo-run-2, ... if taken)")
    d.add_argument("--backbone", default="default", metavar="NAME|PATH",
                   help="default (SmolLM2-135M-Instruct, the default) | tiny | tiny-qwen | a HF causal-LM directory")
    d.add_argument("--epochs", type=int, metavar="N", help="override the preset's epoch count (8)")


def demo(args, argv) -> int:
    from limssr import runs
    from limssr.config import load_config

    overrides = [f"model.backbone={args.backbone}"] + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    cfg = load_config(preset="demo", overrides=overrides)
    out = Path(args.out) if args.out else runs.unique_dir(Path("demo-run"))
    print(f"limssr demo: backbone '{cfg.model.backbone}', {cfg.train.epochs} epochs, "
          f"'{cfg.train.missing}' training-time missingness; run directory {out}", flush=True)
    runs.train_then_evaluate(cfg, out=out)
    return 0


# ---------------------------------------------------------------------------------------- train


def train_arguments(t: argparse.ArgumentParser) -> None:
    from limssr.config import preset_names

    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="YAML config file")
    src.add_argument("--preset", metavar="NAME", help=f"built-in preset: {', '.join(preset_names())}")
    src.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--data", metavar="DIR", help=f"{DATA_HELP} (default: the config's; the presets' built-in synthetic data)")
    t.add_argument("--method", metavar="NAME", help="limssr (default) or a baseline; see `limssr methods`")
    t.add_argument("--backbone", metavar="NAME|PATH",
                   help="default | tiny | tiny-qwen | a local Hugging Face causal-LM directory")
    t.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    t.add_argument("--seed", type=int, metavar="N", help="random seed")
    t.add_argument("--out", metavar="DIR", help="run directory (default: runs/NAME-TIMESTAMP); must be new")
    t.add_argument("--no-eval", action="store_true", help="skip the 7-subset evaluation after training")
    t.add_argument("--trust-remote-code", action="store_true",
                   help="allow a backbone directory's own Python code to run (refused by default)")
    t.add_argument("--seeds", metavar="N,N,...", help="one run per seed in OUT/seed-N, then mean +- std in "
                   "OUT/summary.md (finished seeds are not redone)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def train(args, argv) -> int:
    from limssr import runs

    if args.seeds:
        if args.resume:
            print("error: --seeds resumes by itself: run the same command again", file=sys.stderr)
            return 2
        runs.train_seeds(_config_source(args).load(), _ints(args.seeds, "--seeds"), out=args.out)
        return 0
    if args.resume and (args.overrides or args.data or args.backbone or args.epochs or args.seed is not None):
        print("error: --resume continues a run with its own saved config; drop the other options", file=sys.stderr)
        return 2
    cfg = None if args.resume else _config_source(args).load()
    runs.train_then_evaluate(cfg, out=args.out, resume=args.resume, evaluate_after=not args.no_eval, announce=True)
    return 0  # None from train_then_evaluate: an extra process of a multi-process run, the main one reports


# ------------------------------------------------------------------------------ evaluate, predict


RUN_HELP = ("a run directory, a folder from `limssr export`, or hub:OWNER/NAME@REVISION (an exported model "
            "on the Hugging Face Hub; needs --allow-download)")


def _model_source(args, out_given: bool) -> str:
    """The local folder RUN_DIR names: a hub id is fetched (pinned, when allowed) into the Hub's cache,
    which is not a place to write results, so it needs --out."""
    from limssr.export import resolve

    local = resolve(args.run_dir, allow_download=args.allow_download)
    if str(local) != args.run_dir and not out_given:
        raise SystemExit(f"error: {args.run_dir}: a model from the Hub needs --out (results are not written "
                         "into the Hub's cache)")
    return str(local)


def evaluate_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("run_dir", metavar="RUN_DIR", help=RUN_HELP)
    e.add_argument("--data", metavar="DIR", help=f"{DATA_HELP} (default: the data the run was trained on)")
    e.add_argument("--out", metavar="DIR", help="directory for the results (default: a new RUN_DIR/eval*)")
    e.add_argument("--allow-download", action="store_true", help="let RUN_DIR be a hub: id (pinned to a revision)")
    e.add_argument("--coverage", type=float, metavar="P",
                   help="target coverage of the conformal score intervals (default: eval.coverage, 0.9)")
    _scoring_arguments(e)


def _scoring_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize", choices=("none", "int8"),
                   help="LIMSSR's backbone in int8 for scoring (CPU; faster than fp32 on CPUs without "
                        "native bf16, slower than bf16 where it has it; default: the run's eval.quantize)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the backbone for scoring: pays off over thousands of scorings "
                        "(default: the run's eval.compile)")


def evaluate(args, argv) -> int:
    from limssr import runs

    source = _model_source(args, out_given=args.out is not None)
    if args.out is not None and Path(args.out).exists():
        raise SystemExit(f"error: '{args.out}' already exists; choose another --out")
    runs.evaluate(source, data_path=args.data, out_dir=Path(args.out) if args.out else None, coverage=args.coverage,
                  quantize=args.quantize, compile=args.compile)
    return 0


def predict_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("run_dir", metavar="RUN_DIR", help=RUN_HELP)
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a .npz file, a directory of them, a generic-layout directory, or video files")
    r.add_argument("--out", metavar="FILE", help="CSV to write (default: RUN_DIR/predictions/INPUT.csv)")
    r.add_argument("--coverage", type=float, metavar="P",
                   help="coverage of the lo, hi interval (default: the run's calibrated one, eval.coverage)")
    _extractor_arguments(r, "(video input; default: as recorded for the run's training data)")
    _scoring_arguments(r)


def predict(args, argv) -> int:
    from limssr.extract.decode import VIDEO_SUFFIXES
    from limssr.scorer import predict_files, predict_videos

    args.run_dir = _model_source(args, out_given=args.out is not None)
    videos = [p for p in args.inputs if Path(p).suffix.lower() in VIDEO_SUFFIXES]
    if videos:
        if len(videos) != len(args.inputs):
            raise SystemExit("error: give either video files or one feature input, not both")
        _need_video_extra()
        plan = _plan(args) if args.extractors or args.weights or args.small else None
        predict_videos(args.run_dir, videos, plan=plan, out=args.out, device=args.device, batch=args.batch,
                       coverage=args.coverage, quantize=args.quantize, compile=args.compile)
        return 0
    if len(args.inputs) != 1:
        raise SystemExit("error: give one feature input (.npz file or directory), or video files")
    predict_files(args.run_dir, args.inputs[0], out=args.out, coverage=args.coverage, quantize=args.quantize,
                  compile=args.compile)
    return 0


# -------------------------------------------------------------------------------------- export


def export_arguments(x: argparse.ArgumentParser) -> None:
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("out", metavar="OUT", help="the folder to write (must not exist)")
    x.add_argument("--base-model", metavar="HUB_ID",
                   help="the backbone's name on a model hub, written into adapter_config.json "
                        "(default: known for `default`, else the backbone spec)")
    x.add_argument("--revision", metavar="REV", help="the backbone's revision on that hub")


def export(args, argv) -> int:
    from limssr import runs

    out = runs.export_run(args.run_dir, args.out, base_model=args.base_model, revision=args.revision)
    print(f"exported {args.run_dir} to {out}/ (PEFT adapter, limssr heads, config.json, README.md model card); "
          f"load it with limssr.load('{out}') or `limssr predict {out} INPUT`")
    return 0


# ------------------------------------------------------------------------------------- extract


def _extractor_arguments(p: argparse.ArgumentParser, default_note: str) -> None:
    p.add_argument("--extractors", metavar="M=NAME,...",
                   help=f"extractor per modality, e.g. video=swin3d_b,audio=ast,flow=raft_small+i3d {default_note}")
    p.add_argument("--weights", action="append", default=[], metavar="M=PATH",
                   help="weights per modality: a file or directory, `random`, or `download` (with --allow-download); "
                        "flow takes RAFT_FILE,I3D_FILE; repeat or separate with commas")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second sampled (default 25)")
    p.add_argument("--clip", type=int, default=32, help="frames per clip: one feature vector each (default 32)")
    p.add_argument("--crop", type=int, default=224,
                   help="frames resized to a short side of crop*8/7, then centre-cropped to crop x crop (default 224)")
    p.add_argument("--small", action="store_true",
                   help="small randomly initialised variants of the extractors (for tests and smoke runs)")
    p.add_argument("--device", default="auto", help="auto (a GPU when present), cpu or cuda")
    p.add_argument("--batch", type=int, default=4, help="clips per forward pass (default 4)")
    p.add_argument("--allow-download", action="store_true",
                   help="let `download` weights fetch from their hubs (predict: and RUN_DIR be a hub: id)")


def _need_video_extra() -> None:
    import importlib.util

    if importlib.util.find_spec("av") is None or importlib.util.find_spec("torchvision") is None:
        raise SystemExit("error: video input needs PyAV and torchvision: pip install 'limssr[video]' "
                         "(`make install` includes them)")


def _plan(args):
    from limssr.extract import extractors
    from limssr.extract.decode import Grid
    from limssr.extract.pipeline import Plan, parse_assignments

    chosen = parse_assignments(args.extractors, "--extractors") if args.extractors else dict(extractors.DEFAULT)
    weights = {}
    for text in args.weights:
        weights.update(parse_assignments(text, "--weights"))
    unknown = sorted(set(weights) - set(chosen))
    if unknown:
        raise SystemExit(f"error: --weights {unknown[0]}=...: no extractor for modality '{unknown[0]}' "
                         f"(--extractors names {', '.join(chosen)})")
    if args.fps <= 0 or args.clip < 2 or args.batch < 1 or args.crop < 32:
        raise SystemExit("error: --fps must be positive, --clip at least 2, --batch at least 1 and --crop at least 32")
    grid = Grid(fps=args.fps, clip=args.clip, resize=round(args.crop * 8 / 7), crop=args.crop)
    return Plan(extractors=chosen, weights=weights, grid=grid, small=args.small, device=args.device,
                batch=args.batch, allow_download=args.allow_download)


def extract_arguments(x: argparse.ArgumentParser) -> None:
    x.add_argument("paths", nargs="*", metavar="VIDEOS... OUT",
                   help="video files and directories of them, then the data directory to write (generic layout)")
    _extractor_arguments(x, "(default: all three)")
    x.add_argument("--list", action="store_true", help="list the extractors and where their weights come from")


def extract(args, argv) -> int:
    if args.list:
        from limssr.extract.extractors import describe

        for name, e in describe().items():
            print(f"{name:16s} {e.modality:6s} {e.dim:5d}  {e.summary}\n{'':29s}weights: {e.weights_from}")
        return 0
    if len(args.paths) < 2:
        raise SystemExit("error: usage: limssr extract VIDEOS... OUT (or --list)")
    _need_video_extra()
    from limssr.extract.pipeline import extract_videos

    extract_videos(args.paths[:-1], args.paths[-1], _plan(args))
    return 0


# ---------------------------------------------------------------- summarize, benchmark, paper-tables


def summarize_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    s.add_argument("--out", metavar="DIR", help="also write score_types.json and .md there (a new directory)")


def summarize(args, argv) -> int:
    from limssr import runs

    runs.summarize(args.run_dirs, out=args.out)
    return 0


def plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (its newest eval*) or an eval* directory")
    p.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: the evaluation directory)")


def plot(args, argv) -> int:
    from limssr.plots import CURVES, plot_run

    written = plot_run(args.run_dir, out=args.out)
    for path in written:
        print(path)
    if not any(p.name == CURVES for p in written):
        print("(no training log, logs/metrics.csv, in the run directory: no curves.png)")
    return 0


def trust_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("run_dir", metavar="RUN_DIR", help=RUN_HELP)
    t.add_argument("--data", metavar="DIR", help=f"{DATA_HELP} (default: the data the run was trained on)")
    t.add_argument("--out", metavar="DIR", help="directory for the report (default: a new RUN_DIR/trust*)")


def trust(args, argv) -> int:
    from limssr import runs

    if args.out is not None and Path(args.out).exists():
        raise SystemExit(f"error: '{args.out}' already exists; choose another --out")
    runs.trust_run(args.run_dir, data_path=args.data, out_dir=args.out)
    return 0


def benchmark_arguments(b: argparse.ArgumentParser) -> None:
    bsrc = b.add_mutually_exclusive_group(required=True)
    bsrc.add_argument("--config", metavar="FILE", help="YAML config file for the shared settings")
    bsrc.add_argument("--preset", metavar="NAME", help="preset for the shared settings (e.g. demo)")
    b.add_argument("--methods", required=True, metavar="A,B,...",
                   help="registry names or ablations, e.g. limssr,limssr-no-pcmi,mcmoe,zero-fill (see `limssr methods`)")
    b.add_argument("--regimes", default="strict", metavar="R,...", help="strict and/or complete (default: strict)")
    b.add_argument("--seeds", default="1,2,3", metavar="N,...", help="seeds (default: 1,2,3)")
    b.add_argument("--out", required=True, metavar="DIR", help="benchmark directory (reused to resume)")
    b.add_argument("--data", metavar="DIR", help=f"{DATA_HELP} (default: the config's)")
    b.add_argument("--backbone", metavar="NAME|PATH", help="LIMSSR backbone")
    b.add_argument("--baseline-set", action="append", default=[], metavar="key=value",
                   help="overrides for the baselines only (repeatable), e.g. train.epochs=40")
    b.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every method")


def benchmark(args, argv) -> int:
    from limssr.benchmark import run_benchmark

    base = _config_source(args)
    base.load()  # refuse a bad config before anything runs
    run_benchmark(base, _names(args.methods), _names(args.regimes), _ints(args.seeds, "--seeds"), args.out,
                  baseline_overrides=args.baseline_set, command="limssr " + " ".join(argv))
    print((Path(args.out) / "comparison.md").read_text())
    print(f"comparison written to {args.out}/comparison.md, .csv, .json and .png")
    return 0


def paper_tables_arguments(pt: argparse.ArgumentParser) -> None:
    pt.add_argument("out", metavar="OUT")
    pt.add_argument("--methods", metavar="A,B,...", help="rows, in this order (default: every method found, "
                    "the baselines first and LIMSSR last)")


def paper_tables(args, argv) -> int:
    from limssr.paper_tables import write_tables

    _, target = write_tables(args.out, _names(args.methods) if args.methods else None)
    print((target / "tables.md").read_text())
    print(f"tables written to {target}/ (tables.md, tables.json, and per protocol Markdown and CSV)")
    return 0


def methods(args, argv) -> int:
    from limssr.benchmark import ABLATIONS
    from limssr.methods import describe

    for name, summary in describe().items():
        print(f"  {name:24s} {summary}")
    for name, keys in ABLATIONS.items():
        print(f"  {name:24s} LIMSSR ablation: {' '.join(keys)}")
    print(f"  {'limssr-k<N>':24s} LIMSSR with N fusion tokens")
    return 0


# ---------------------------------------------------------------------------------------- speed


def speed_arguments(be: argparse.ArgumentParser) -> None:
    be.add_argument("--backbone", default="default", metavar="NAME|PATH", help="default, tiny, tiny-qwen or a path")
    be.add_argument("--preset", default="fs1000-tes", metavar="NAME",
                    help="shapes (batch, clip_num, feature dims) from this preset (default: fs1000-tes: 8 x 95)")
    be.add_argument("--batch", type=int, metavar="N", help="override the batch size")
    be.add_argument("--clips", type=int, metavar="T", help="override the clip count T")
    be.add_argument("--steps", type=int, default=3, metavar="N", help="timed training steps per round (default: 3)")
    be.add_argument("--rounds", type=int, default=2, metavar="N",
                    help="times each configuration runs, alternating, each in a fresh process (default: 2)")
    be.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed warm-up steps (default: 1)")
    be.add_argument("--infer-batches", type=int, default=3, metavar="N", help="timed inference batches (default: 3)")
    be.add_argument("--latency-programmes", type=int, default=20, metavar="N",
                    help="programmes scored one at a time (batch 1) for the latency figures (default: 20)")
    be.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="fast path precision")
    be.add_argument("--quantize", choices=["none", "int8"],
                    help="score the fast path with eval.quantize (int8: dynamic int8 backbone, CPU)")
    be.add_argument("--compile", action="store_true", help="score the fast path with eval.compile=true")
    be.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda when available)")
    be.add_argument("--only", choices=["reference", "fast"], help="measure one configuration only")
    be.add_argument("--loader-videos", type=int, default=500, metavar="N",
                    help="videos in the loader benchmark's dict files (Fis-V size: 500; 0 skips it)")
    be.add_argument("--peak-tflops", type=float, metavar="X", help="peak bf16 TFLOP/s for the utilisation figure")
    be.add_argument("--fast-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the fast configuration only, e.g. model.share_prompt=false (repeatable)")
    be.add_argument("--profile", metavar="DIR",
                    help="also write torch.profiler operator tables of 3 training steps and 3 scoring batches per "
                         "configuration to DIR")
    be.add_argument("--out", metavar="FILE", help="JSON report (default: speed-<time>.json)")


def speed(args, argv) -> int:
    from limssr.atomic import atomic_write_text
    from limssr.runs import unique_dir
    from limssr.speed import compare, print_report

    if argv and argv[0] == "bench":
        print("note: `limssr bench` is now `limssr speed` (so that it is not mistaken for `limssr benchmark`); "
              "the old name will be removed in the next release", file=sys.stderr)
    report = compare(backbone=args.backbone, preset=args.preset, batch=args.batch, clips=args.clips,
                     steps=args.steps, warmup=args.warmup, infer_batches=args.infer_batches,
                     precision=args.precision, device=args.device,
                     kinds=(args.only,) if args.only else ("reference", "fast"),
                     loader_videos=args.loader_videos, peak_tflops=args.peak_tflops, rounds=args.rounds,
                     fast_set=tuple(args.fast_set) + ((f"eval.quantize={args.quantize}",) if args.quantize else ())
                     + (("eval.compile=true",) if args.compile else ()),
                     profile=args.profile, latency_programmes=args.latency_programmes)
    report["command"] = "limssr " + " ".join(argv)
    print_report(report)
    out = Path(args.out) if args.out else unique_dir(Path(f"speed-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"report written to {out}")
    return 0


# ----------------------------------------------------------------------------------------- data


def data_arguments(data: argparse.ArgumentParser) -> None:
    from limssr.data.released import LAYOUTS

    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = dsub.add_parser("check", help="report counts, lengths, dims, score ranges and every problem",
                        description="Read a data directory as training will and list every problem with its "
                                    "file and key (missing keys, NaN/Inf, wrong dims, malformed label lines, "
                                    "features without labels). Exits 1 if there is any.", formatter_class=Formatter)
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--dataset", choices=LAYOUTS, help="layout (default: detected)")
    c.add_argument("--max-length-mismatch", type=int, default=1, metavar="N",
                   help="allowed difference in T between the modalities of a sample (default: 1)")
    v = dsub.add_parser("convert", help="write a pickle-free copy in the same layout",
                        description="Copy a dataset so that nothing in it needs pickle: pickled feature dicts "
                                    "become .npz archives that the same readers load. DST must be new.",
                        formatter_class=Formatter)
    v.add_argument("src", metavar="SRC")
    v.add_argument("dst", metavar="DST")
    y = dsub.add_parser("synth", help="write a small synthetic dataset in a released layout",
                        description="Write synthetic data in exactly the FS1000, Fis-V, RG or generic layout, "
                                    "with the awkward cases of the real files (short and long videos, audio "
                                    "one step short, optional Fis-V header line).", formatter_class=Formatter)
    y.add_argument("--layout", required=True, choices=LAYOUTS)
    y.add_argument("out", metavar="OUT")
    y.add_argument("--n-train", type=int, metavar="N", help="training samples (per apparatus for RG)")
    y.add_argument("--n-test", type=int, metavar="N", help="test samples (per apparatus for RG)")
    y.add_argument("--small", action="store_true", help="small feature dims and clip lengths (for tests)")
    y.add_argument("--seed", type=int, default=0, metavar="N")
    y.add_argument("--header", action="store_true", help="Fis-V: give the label files a header line")


def data(args, argv) -> int:
    if args.data_command == "check":
        from limssr.data.check import check_directory
        from limssr.report import print_check

        report = check_directory(args.dir, args.dataset, args.max_length_mismatch)
        print_check(report)
        return 0 if report.ok else 1
    if args.data_command == "convert":
        from limssr.data.convert import convert

        done = convert(args.src, args.dst, progress=lambda name: print(f"  converted {name}", flush=True))
        print(f"{done['layout']} copy written to {args.dst}: {done['converted']} pickled dict file(s) converted "
              f"to .npz, {done['copied']} file(s) checked and copied")
        return 0
    from limssr.data.synth_layouts import write_layout

    kwargs = {"small": args.small, "seed": args.seed}
    if args.n_train:
        kwargs["n_train"] = args.n_train
    if args.n_test:
        kwargs["n_test"] = args.n_test
    if args.header:
        if args.layout != "fisv":
            print("error: --header applies to --layout fisv only", file=sys.stderr)
            return 2
        kwargs["header"] = True
    out = write_layout(args.layout, args.out, **kwargs)
    print(f"synthetic {args.layout} data written to {out}")
    return 0


def _none(parser: argparse.ArgumentParser) -> None:
    """A verb without arguments."""


VERBS = [
    Verb("demo", "train and evaluate on the built-in synthetic data (default backbone)",
         "Train LIMSSR with the default backbone on the built-in synthetic AQA data, with modalities missing from "
         "every training sample (strict protocol), then print and write the 7-subset table. Sized for a 2-core "
         "CPU (about 10 minutes).", demo_arguments, demo),
    Verb("train", "train a model from a preset or a YAML config",
         "Train LIMSSR. Start from a preset or a YAML file and override any key with key=value (dotted, e.g. "
         "train.lr=1e-4). The resolved config is saved in the run directory; the model is evaluated on every "
         "subset at the end.", train_arguments, train),
    Verb("evaluate", "score a trained run on every modality subset",
         "Evaluate a run's model on the test split under every non-empty modality subset; writes "
         "results.json/.md/.csv, predictions.csv and the plots into a new RUN_DIR/eval* directory (or --out).",
         evaluate_arguments, evaluate),
    Verb("predict", "score new samples that have any subset of modalities, or video files",
         "Score unlabelled samples. INPUT is a .npz file (one array (T, D) per modality name; leave out the "
         "missing ones), a directory of .npz files, a generic-layout directory, or video files (extracted as the "
         "run's training data was, see `limssr extract`). Writes name, score, lo, hi (the conformal interval "
         "calibrated for the modalities present, when the run has one) and the modalities present.",
         predict_arguments, predict),
    Verb("export", "a trained run as a shareable folder (PEFT adapter, heads, model card)",
         "Write RUN_DIR as a folder a model hub understands: the LoRA adapter in PEFT's format "
         "(adapter_config.json, adapter_model.safetensors) naming its base model, the LIMSSR heads and added "
         "tokens (limssr_heads.safetensors), config.json and a README.md model card with the 7-subset results. "
         "`limssr evaluate`/`predict` and limssr.load accept the folder.", export_arguments, export),
    Verb("extract", "video files -> per-clip features (Video Swin, AST, RAFT + I3D) in the generic layout",
         "Decode videos with PyAV at --fps, cut them into clips of --clip frames (one time grid for every "
         "modality), run one extractor per modality and write OUT/features/<modality>/<name>.npy (T, D), "
         "limssr-data.yaml and extract.json (extractors, weight sha256, grid, library versions). A video without "
         "an audio track gets no audio file; an undecodable file is skipped by name; rerunning resumes. Weights "
         "are local files (see --list); `random` gives randomly initialised extractors.",
         extract_arguments, extract),
    Verb("summarize", "Spearman per score type and their Fisher-z average",
         "Collect the newest evaluation of each run (or the summary of a multi-seed directory), one per score "
         "type of a dataset, into one table with the Fisher-z average over score types (labelled apart from the "
         "average over subsets).", summarize_arguments, summarize),
    Verb("plot", "scatter, residual, calibration and training-curve plots of a run",
         "Plot a run's newest evaluation from its predictions.csv: predicted against true score and residuals "
         "against the label per subset, calibration by label bin, and the training/validation curves from "
         "logs/metrics.csv. Writes scatter.png, residuals.png, calibration.png and curves.png into the evaluation "
         "directory (or --out) and prints their paths.", plot_arguments, plot),
    Verb("trust", "how much of a score is imagined: score shift, imputation fidelity, confidence vs error",
         "Measure hallucination for a run on its test split (docs/trust.md): the shift of each subset's score "
         "from the complete-input score and its link to error; for LLM methods, how close the hidden states at a "
         "missing modality's placeholders come to those with its real features, per layer, against a "
         "shuffled-sample control; the heads' disagreement and Path 2's confidence against error. Writes "
         "trust.json, trust.md, shift.png and fidelity.png into RUN_DIR/trust* (or --out).",
         trust_arguments, trust),
    Verb("benchmark", "methods x training regimes x seeds -> one comparison table",
         "Train and evaluate several methods (LIMSSR, its ablations, the baselines) under one or both training "
         "regimes (strict: every training sample misses a modality; complete: complete training data) for "
         "several seeds, then write OUT/comparison.{md,csv,json,png}. Finished runs are reused, so the command "
         "resumes, and the table covers every finished run under OUT.", benchmark_arguments, benchmark),
    Verb("paper-tables", "the paper's tables from the runs of benchmarks/paper.sh",
         "Read the finished runs under OUT/<protocol>/<preset>/ (protocol: val, last or paper; one `limssr "
         "benchmark` tree per preset) and write OUT/tables/: per dataset and selection protocol, one Spearman and "
         "one MSE table per score type (rows: methods; columns: the 7 modality subsets and Avg) and the Fisher-z "
         "average over score types, as Markdown, CSV and JSON. Tables under the paper protocol are labelled PAPER "
         "PROTOCOL.", paper_tables_arguments, paper_tables),
    Verb("methods", "list the methods and ablations", "List the registered methods and LIMSSR's ablations.",
         _none, methods),
    Verb("speed", "speed and memory: limssr's fast path against a reference-equivalent setup",
         "Measure, in one run on this machine and at one set of shapes, the training step time, samples/s, peak "
         "memory and inference samples/s of (a) a reference-equivalent configuration (fp32, vocabulary logits "
         "computed, whole embedding trainable, features re-read per sample, LoRA unmerged) and (b) limssr's fast "
         "path, each in its own process; print the ratios and write JSON. Also times the pickled-dict loader "
         "against limssr's read-once dataset. (Formerly `limssr bench`.)", speed_arguments, speed,
         aliases=("bench",)),
    Verb("data", "check, convert or synthesize datasets",
         "Work with data directories: the released FS1000, Fis-V and RG layouts and the generic layout.",
         data_arguments, data),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="limssr", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for verb in VERBS:
        v = sub.add_parser(verb.name, help=verb.help, description=verb.description, formatter_class=Formatter,
                           aliases=list(verb.aliases))
        verb.arguments(v)
        v.set_defaults(verb=verb)
    return p


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides after an option (`a.b=1 --epochs 1 c.d=2`) belong with the others
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    return args.verb.run(args, argv)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can mend (bad config, data, backbone, checkpoint or run directory): one line
    each. Imported only once one is raised, so that `limssr --help` loads no model library."""
    from limssr.backbone import BackboneError
    from limssr.checkpoint import CheckpointError
    from limssr.config import ConfigError
    from limssr.conformal import ConformalError
    from limssr.data import DataError
    from limssr.export import ExportError
    from limssr.extract.decode import ExtractError
    from limssr.plots import PlotError
    from limssr.runs import RunError

    return (ConfigError, DataError, BackboneError, CheckpointError, RunError, ExtractError, ExportError,
            PlotError, ConformalError, FileExistsError)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except KeyboardInterrupt as err:
        where = getattr(err, "run_dir", None)  # runs.Interrupted names its run directory
        print(f"interrupted; resume with `limssr train --resume {where or 'RUN_DIR'}`", file=sys.stderr)
        code = 130
    except Exception as err:
        if isinstance(err, _user_errors()):
            print(f"error: {err}", file=sys.stderr)
        elif isinstance(err, PermissionError):
            print(f"error: no permission to write '{err.filename}' ({err.strerror}); choose another --out",
                  file=sys.stderr)
        elif isinstance(err, OSError) and err.errno == 28:  # ENOSPC
            print(f"error: the disk is full while writing '{err.filename or 'a file'}'; files written before are "
                  "intact (writes go to a temporary name first). Free space and resume with --resume.",
                  file=sys.stderr)
        else:
            raise
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
