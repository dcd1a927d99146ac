"""limssr from Python: the same runs as the command line, with arrays in and out.

    import limssr

    run = limssr.train("demo", backbone="tiny", train__epochs=2, out="runs/quick")
    run.results["average"]["spearman"]                 # what `limssr evaluate` reports
    again = limssr.evaluate("runs/quick")              # a new eval-2/ directory, same numbers
    scorer = limssr.load("runs/quick")
    scorer.predict({"video": v, "audio": a})           # -> array([score]); flow is missing

Overrides are config keys with `__` for the dots (`train__epochs=2` is `train.epochs=2`), or an
`overrides` dict/list of dotted keys; `backbone`, `method` and `seed` are shortcuts as on the
command line. A run directory is what `limssr train` writes: config, weights, evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limssr import runs
from limssr.config import ConfigError, ConfigSource, RunConfig, preset_names, with_data
from limssr.export import resolve
from limssr.scorer import Scorer

SHORTCUTS = {"backbone": "model.backbone", "method": "method", "seed": "seed", "epochs": "train.epochs"}


@dataclass
class Run:
    """A trained run: its directory and, when it was evaluated, the results (as results.json)."""

    dir: Path
    results: dict | None

    def load(self) -> Scorer:
        return Scorer.from_run(self.dir)


def _override_strings(overrides: dict | list | tuple | None, kwargs: dict[str, Any]) -> list[str]:
    out = []
    if isinstance(overrides, dict):
        out += [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    elif overrides:
        out += [str(x) for x in overrides]
    for key, value in kwargs.items():
        if value is None:
            continue
        dotted = SHORTCUTS.get(key, key.replace("__", "."))
        out.append(f"{dotted}={json.dumps(value)}")  # JSON is YAML: numbers, lists and strings keep their types
    return out


def run_config(config: str | Path | RunConfig = "demo", data: str | Path | None = None,
               overrides: dict | list | None = None, **kwargs) -> RunConfig:
    """The run config a preset name, a YAML file or a RunConfig gives, with `data` and overrides."""
    extra = _override_strings(overrides, kwargs)
    if isinstance(config, RunConfig):
        source = ConfigSource(base=config.to_dict(), overrides=tuple(extra))
    elif str(config) in preset_names():
        source = ConfigSource(preset=str(config), overrides=tuple(extra))
    elif Path(config).is_file():
        source = ConfigSource(path=str(config), overrides=tuple(extra))
    else:
        raise ConfigError(f"'{config}' is neither a preset ({', '.join(preset_names())}) nor a YAML file")
    return with_data(source, data).load()


def train(config_or_preset: str | Path | RunConfig = "demo", data: str | Path | None = None,
          out: str | Path | None = None, *, evaluate: bool = True, progress: bool = True,
          overrides: dict | list | None = None, **kwargs) -> Run:
    """Train (and by default evaluate on every modality subset) as `limssr train` does; `out` must be
    a new directory (default: runs/NAME-TIMESTAMP)."""
    cfg = run_config(config_or_preset, data, overrides, **kwargs)
    done = runs.train_then_evaluate(cfg, out=out, progress=progress, evaluate_after=evaluate, show=progress)
    if done is None:
        raise runs.RunError("limssr.train runs in the main process only (this is a worker of a multi-process run)")
    return Run(*done)


def evaluate(run_dir: str | Path, data: str | Path | None = None, show: bool = False) -> dict:
    """Score a trained run on every modality subset (a new eval* directory); returns its results."""
    return runs.evaluate(run_dir, data_path=None if data is None else str(data), show=show)[0]


def load(run_dir: str | Path, allow_download: bool = False, quantize: str | None = None,
         compile: bool | None = None) -> Scorer:
    """A trained run ready to score arrays: `load(dir).predict({"video": (T, D) array, ...})`.
    `run_dir` may also be a folder from `export_run`, or `hub:OWNER/NAME@REVISION` for one on the
    Hugging Face Hub (fetched only with `allow_download=True`, and only pinned to a revision).
    quantize="int8" / compile=True: faster scoring on some machines (docs/speed.md)."""
    return Scorer.from_run(resolve(run_dir, allow_download=allow_download), quantize, compile)


def export_run(run_dir: str | Path, out: str | Path, base_model: str | None = None,
               revision: str | None = None) -> Path:
    """Write a finished run as a shareable folder (PEFT adapter, heads, config, model card)."""
    return runs.export_run(run_dir, out, base_model=base_model, revision=revision)
