"""The `limssr` command line: demo, train, evaluate, predict."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
  limssr train --preset demo --method mcmoe       any registered method (see `limssr methods`)
  limssr benchmark --preset demo --methods limssr,mcmoe,zero-fill --regimes strict,complete --out bench
"""


Formatter = argparse.HelpFormatter  # subcommands: wrapped prose


def _parser() -> argparse.ArgumentParser:
    from limssr.config import preset_names

    p = argparse.ArgumentParser(prog="limssr", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="train and evaluate on the built-in synthetic data (default backbone)",
                       description="Train LIMSSR with the default backbone on the built-in synthetic AQA data, "
                                   "with modalities missing from every training sample (strict protocol), then "
                                   "print and write the 7-subset table. Sized for a 2-core CPU (about 10 minutes).",
                       formatter_class=Formatter)
    d.add_argument("--out", help="run directory (default: demo-run, or demo-run-2, ... if taken)")
    d.add_argument("--backbone", default="default", metavar="NAME|PATH",
                   help="default (SmolLM2-135M-Instruct, the default) | tiny | tiny-qwen | a HF causal-LM directory")
    d.add_argument("--epochs", type=int, metavar="N", help="override the preset's epoch count (8)")

    t = sub.add_parser("train", help="train a model from a preset or a YAML config",
                       description="Train LIMSSR. Start from a preset or a YAML file and override any key with "
                                   "key=value (dotted, e.g. train.lr=1e-4). The resolved config is saved in the "
                                   "run directory; the model is evaluated on every subset at the end.",
                       formatter_class=Formatter)
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="YAML config file")
    src.add_argument("--preset", metavar="NAME", help=f"built-in preset: {', '.join(preset_names())}")
    src.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--data", metavar="DIR", help="data directory in the generic layout (default: synthetic)")
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

    e = sub.add_parser("evaluate", help="score a trained run on every modality subset",
                       description="Evaluate a run's model on the test split under every non-empty modality "
                                   "subset; writes results.json/.md/.csv, predictions.csv and results.png "
                                   "into a new RUN_DIR/eval* directory.", formatter_class=Formatter)
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--data", metavar="DIR", help="evaluate on this generic-layout directory instead")

    s = sub.add_parser("summarize", help="Spearman per score type and their Fisher-z average",
                       description="Collect the newest evaluation of each run (or the summary of a multi-seed "
                                   "directory), one per score type of a dataset, into one table with the "
                                   "Fisher-z average over score types (labelled apart from the average over "
                                   "subsets).", formatter_class=Formatter)
    s.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    s.add_argument("--out", metavar="DIR", help="also write score_types.json and .md there (a new directory)")

    pt = sub.add_parser("paper-tables", help="the paper's tables from the runs of benchmarks/paper.sh",
                        description="Read the finished runs under OUT/<protocol>/<preset>/ (protocol: val, last or "
                                    "paper; one `limssr benchmark` tree per preset) and write OUT/tables/: per "
                                    "dataset and selection protocol, one Spearman and one MSE table per score type "
                                    "(rows: methods; columns: the 7 modality subsets and Avg) and the Fisher-z "
                                    "average over score types, as Markdown, CSV and JSON. Tables under the paper "
                                    "protocol are labelled PAPER PROTOCOL.", formatter_class=Formatter)
    pt.add_argument("out", metavar="OUT")
    pt.add_argument("--methods", metavar="A,B,...", help="rows, in this order (default: every method found, "
                    "the baselines first and LIMSSR last)")

    b = sub.add_parser("benchmark", help="methods x training regimes x seeds -> one comparison table",
                       description="Train and evaluate several methods (LIMSSR, its ablations, the baselines) under "
                                   "one or both training regimes (strict: every training sample misses a "
                                   "modality; complete: complete training data) for several seeds, then write "
                                   "OUT/comparison.{md,csv,json,png}. Finished runs are reused, so the command "
                                   "resumes, and the table covers every finished run under OUT.",
                       formatter_class=Formatter)
    bsrc = b.add_mutually_exclusive_group(required=True)
    bsrc.add_argument("--config", metavar="FILE", help="YAML config file for the shared settings")
    bsrc.add_argument("--preset", metavar="NAME", help="preset for the shared settings (e.g. demo)")
    b.add_argument("--methods", required=True, metavar="A,B,...",
                   help="registry names or ablations, e.g. limssr,limssr-no-pcmi,mcmoe,zero-fill (see `limssr methods`)")
    b.add_argument("--regimes", default="strict", metavar="R,...", help="strict and/or complete (default: strict)")
    b.add_argument("--seeds", default="1,2,3", metavar="N,...", help="seeds (default: 1,2,3)")
    b.add_argument("--out", required=True, metavar="DIR", help="benchmark directory (reused to resume)")
    b.add_argument("--data", metavar="DIR", help="data directory (default: the config's)")
    b.add_argument("--backbone", metavar="NAME|PATH", help="LIMSSR backbone")
    b.add_argument("--baseline-set", action="append", default=[], metavar="key=value",
                   help="overrides for the baselines only (repeatable), e.g. train.epochs=40")
    b.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every method")

    sub.add_parser("methods", help="list the methods and ablations", formatter_class=Formatter)

    be = sub.add_parser("bench", help="speed and memory: limssr's fast path against a reference-equivalent setup",
                        description="Measure, in one run on this machine and at one set of shapes, the training "
                                    "step time, samples/s, peak memory and inference samples/s of (a) a "
                                    "reference-equivalent configuration (fp32, vocabulary logits computed, whole "
                                    "embedding trainable, features re-read per sample, LoRA unmerged) and (b) "
                                    "limssr's fast path, each in its own process; print the ratios and write JSON. "
                                    "Also times the pickled-dict loader against limssr's read-once dataset.",
                        formatter_class=Formatter)
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
    be.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"], help="fast path precision")
    be.add_argument("--device", metavar="DEV", help="cpu or cuda (default: cuda when available)")
    be.add_argument("--only", choices=["reference", "fast"], help="measure one configuration only")
    be.add_argument("--loader-videos", type=int, default=500, metavar="N",
                    help="videos in the loader benchmark's dict files (Fis-V size: 500; 0 skips it)")
    be.add_argument("--peak-tflops", type=float, metavar="X", help="peak bf16 TFLOP/s for the utilisation figure")
    be.add_argument("--fast-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the fast configuration only, e.g. model.share_prompt=false (repeatable)")
    be.add_argument("--profile", metavar="DIR",
                    help="also write torch.profiler operator tables of 3 training steps and 3 scoring batches per configuration to DIR")
    be.add_argument("--out", metavar="FILE", help="JSON report (default: bench-<time>.json)")

    data = sub.add_parser("data", help="check, convert or synthesize datasets",
                          description="Work with data directories: the released FS1000, Fis-V and RG layouts "
                                      "and the generic layout.", formatter_class=Formatter)
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = dsub.add_parser("check", help="report counts, lengths, dims, score ranges and every problem",
                        description="Read a data directory as training will and list every problem with its "
                                    "file and key (missing keys, NaN/Inf, wrong dims, malformed label lines, "
                                    "features without labels). Exits 1 if there is any.", formatter_class=Formatter)
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--dataset", choices=["fs1000", "fisv", "rg", "generic"], help="layout (default: detected)")
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
    y.add_argument("--layout", required=True, choices=["fs1000", "fisv", "rg", "generic"])
    y.add_argument("out", metavar="OUT")
    y.add_argument("--n-train", type=int, metavar="N", help="training samples (per apparatus for RG)")
    y.add_argument("--n-test", type=int, metavar="N", help="test samples (per apparatus for RG)")
    y.add_argument("--small", action="store_true", help="small feature dims and clip lengths (for tests)")
    y.add_argument("--seed", type=int, default=0, metavar="N")
    y.add_argument("--header", action="store_true", help="Fis-V: give the label files a header line")

    r = sub.add_parser("predict", help="score new samples that have any subset of modalities",
                       description="Score unlabelled samples. INPUT is a .npz file (one array (T, D) per "
                                   "modality name; leave out the missing ones), a directory of .npz files, or a "
                                   "generic-layout directory. Writes name, score and the modalities present.",
                       formatter_class=Formatter)
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("input", metavar="INPUT")
    r.add_argument("--out", metavar="FILE", help="CSV to write (default: RUN_DIR/predictions/INPUT.csv)")
    return p


def _train_config(args):
    return _config_source(args).load()


def _config_source(args):
    """The preset, file and overrides the command line names (a method's own defaults apply beneath them)."""
    from limssr.config import ConfigSource, raw_values

    overrides = list(args.overrides)
    if getattr(args, "trust_remote_code", False):
        overrides.append("model.trust_remote_code=true")
    pairs = [("model.backbone", args.backbone), ("train.epochs", getattr(args, "epochs", None)),
             ("seed", getattr(args, "seed", None)), ("method", getattr(args, "method", None))]
    for key, value in pairs:
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.data:
        # a preset for a released dataset keeps its reader; otherwise the layout is detected
        source = raw_values(args.config, args.preset, overrides).get("data", {}).get("source", "synthetic")
        overrides += [f"data.path={args.data}"] + (["data.source=auto"] if source == "synthetic" else [])
    return ConfigSource(preset=args.preset, path=args.config, overrides=tuple(overrides))


def _data_command(args) -> int:
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


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if argv is None:
        argv = sys.argv[1:]
    if args.command is None:
        _parser().print_help()
        return 2
    if args.command == "data":  # before importing the training stack: nothing of it is needed
        return _data_command(args)
    from limssr import runs

    if args.command == "demo":
        from limssr.config import load_config

        overrides = [f"model.backbone={args.backbone}"] + ([f"train.epochs={args.epochs}"] if args.epochs else [])
        cfg = load_config(preset="demo", overrides=overrides)
        out = Path(args.out) if args.out else runs.unique_dir(Path("demo-run"))
        print(f"limssr demo: backbone '{cfg.model.backbone}', {cfg.train.epochs} epochs, "
              f"'{cfg.train.missing}' training-time missingness; run directory {out}", flush=True)
        run_dir, module, data = runs.train(cfg, out=out)
        runs.evaluate(run_dir, model=module.model.eval(), cfg=runs.read_run_config(run_dir), data=data)
        return 0
    if args.command == "methods":
        from limssr.benchmark import ABLATIONS
        from limssr.methods import describe

        for name, summary in describe().items():
            print(f"  {name:24s} {summary}")
        for name, keys in ABLATIONS.items():
            print(f"  {name:24s} LIMSSR ablation: {' '.join(keys)}")
        print(f"  {'limssr-k<N>':24s} LIMSSR with N fusion tokens")
        return 0
    if args.command == "bench":
        from limssr.bench import compare, print_report
        from limssr.report import atomic_write_text

        report = compare(backbone=args.backbone, preset=args.preset, batch=args.batch, clips=args.clips,
                         steps=args.steps, warmup=args.warmup, infer_batches=args.infer_batches,
                         precision=args.precision, device=args.device,
                         kinds=(args.only,) if args.only else ("reference", "fast"),
                         loader_videos=args.loader_videos, peak_tflops=args.peak_tflops, rounds=args.rounds,
                         fast_set=tuple(args.fast_set), profile=args.profile)
        report["command"] = "limssr " + " ".join(argv)
        print_report(report)
        out = Path(args.out) if args.out else runs.unique_dir(Path(f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"))
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
        print(f"report written to {out}")
        return 0
    if args.command == "benchmark":
        from limssr.benchmark import run_benchmark

        base = _config_source(args)
        base.load()  # refuse a bad config before anything runs
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        command = "limssr " + " ".join(argv)
        run_benchmark(base, [m.strip() for m in args.methods.split(",") if m.strip()],
                      [r.strip() for r in args.regimes.split(",") if r.strip()], seeds, args.out,
                      baseline_overrides=args.baseline_set, command=command)
        print((Path(args.out) / "comparison.md").read_text())
        print(f"comparison written to {args.out}/comparison.md, .csv, .json and .png")
        return 0
    if args.command == "paper-tables":
        from limssr.paper_tables import write_tables

        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        _, target = write_tables(args.out, methods)
        print((target / "tables.md").read_text())
        print(f"tables written to {target}/ (tables.md, tables.json, and per protocol Markdown and CSV)")
        return 0
    if args.command == "summarize":
        runs.summarize(args.run_dirs, out=args.out)
        return 0
    if args.command == "train" and args.seeds:
        if args.resume:
            print("error: --seeds resumes by itself: run the same command again", file=sys.stderr)
            return 2
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            print(f"error: --seeds takes integers separated by commas, got {args.seeds!r}", file=sys.stderr)
            return 2
        runs.train_seeds(_train_config(args), seeds, out=args.out)
        return 0
    if args.command == "train":
        if args.resume:
            if args.overrides or args.data or args.backbone or args.epochs or args.seed is not None:
                print("error: --resume continues a run with its own saved config; drop the other options",
                      file=sys.stderr)
                return 2
            run_dir, module, data = runs.train(None, resume=args.resume)
        else:
            done = runs.train(_train_config(args), out=args.out)
            if done is None:  # an extra process of a multi-process run: the main one reports
                return 0
            run_dir, module, data = done
        print(f"run written to {run_dir}")
        if not args.no_eval:
            runs.evaluate(run_dir, model=module.model.eval(), cfg=runs.read_run_config(run_dir), data=data)
        return 0
    if args.command == "evaluate":
        runs.evaluate(args.run_dir, data_path=args.data)
        return 0
    if args.command == "predict":
        runs.predict_files(args.run_dir, args.input, out=args.out)
        return 0
    return 2


def main(argv: list[str] | None = None) -> None:
    from limssr.backbone import BackboneError
    from limssr.checkpoint import CheckpointError
    from limssr.config import ConfigError
    from limssr.data import DataError
    from limssr.runs import RunError

    try:
        code = run(argv)
    except (ConfigError, DataError, BackboneError, CheckpointError, RunError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 2
    except PermissionError as err:
        print(f"error: no permission to write '{err.filename}' ({err.strerror}); choose another --out", file=sys.stderr)
        code = 2
    except OSError as err:
        if err.errno != 28:  # ENOSPC
            raise
        print(f"error: the disk is full while writing '{err.filename or 'a file'}'; files written before are "
              "intact (writes go to a temporary name first). Free space and resume with --resume.", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; resume with `limssr train --resume RUN_DIR`", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
