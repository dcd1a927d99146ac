"""The `limssr` command line: demo, train, evaluate, predict."""

from __future__ import annotations

import argparse
import sys
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
    t.add_argument("--backbone", metavar="NAME|PATH",
                   help="default | tiny | tiny-qwen | a local Hugging Face causal-LM directory")
    t.add_argument("--epochs", type=int, metavar="N", help="number of epochs")
    t.add_argument("--seed", type=int, metavar="N", help="random seed")
    t.add_argument("--out", metavar="DIR", help="run directory (default: runs/NAME-TIMESTAMP); must be new")
    t.add_argument("--no-eval", action="store_true", help="skip the 7-subset evaluation after training")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    e = sub.add_parser("evaluate", help="score a trained run on every modality subset",
                       description="Evaluate a run's model on the test split under every non-empty modality "
                                   "subset; writes results.json/.md/.csv, predictions.csv and results.png "
                                   "into a new RUN_DIR/eval* directory.", formatter_class=Formatter)
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--data", metavar="DIR", help="evaluate on this generic-layout directory instead")

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
    from limssr.config import load_config

    overrides = list(args.overrides)
    if args.data:
        overrides += ["data.source=generic", f"data.path={args.data}"]
    for key, value in (("model.backbone", args.backbone), ("train.epochs", args.epochs), ("seed", args.seed)):
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(path=args.config, preset=args.preset, overrides=overrides)


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from limssr import runs

    if args.command is None:
        _parser().print_help()
        return 2
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
    if args.command == "train":
        if args.resume:
            if args.overrides or args.data or args.backbone or args.epochs or args.seed is not None:
                print("error: --resume continues a run with its own saved config; drop the other options",
                      file=sys.stderr)
                return 2
            run_dir, module, data = runs.train(None, resume=args.resume)
        else:
            run_dir, module, data = runs.train(_train_config(args), out=args.out)
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
    except KeyboardInterrupt:
        print("interrupted; resume with `limssr train --resume RUN_DIR`", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
