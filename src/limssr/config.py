"""Run configuration: plain dataclasses, loaded from YAML presets/files and `key=value` overrides.

Every field has a default; a YAML file or an override only names what it changes. Unknown keys and
values of the wrong type are refused with the dotted key in the message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from limssr.subsets import parse_subset


class ConfigError(ValueError):
    """A configuration file, preset or override is invalid; the message names the key."""


@dataclass
class SyntheticConfig:
    """The built-in synthetic AQA generator (see `limssr.data.synthetic`)."""

    n_train: int = 320
    n_test: int = 100
    clips: int = 12  # clips per performance (the longest, when min_clips is set)
    min_clips: int | None = None  # lengths vary uniformly in [min_clips, clips] when set
    dims: dict[str, int] = field(default_factory=lambda: {"video": 768, "audio": 768, "flow": 1024})
    score_range: float = 130.0
    seed: int = 0
    kind: str = "additive"  # "additive" (the score sums factor terms) or "interaction" (execution x timing)


@dataclass
class DataConfig:
    """Where samples come from, which score is learned, and how sequences are cut."""

    # "synthetic" (built in), "auto" (detect the layout of `path`), "generic", "fs1000", "fisv", "rg"
    source: str = "synthetic"
    path: str | None = None
    score_type: str | None = None  # e.g. TES, PCS (FS1000, Fis-V), Ball (RG); None: the only/first one
    score_range: float | None = None  # divisor of the labels; None: the dataset's default for the type
    skip_first_line: bool = False  # True: drop line 1 of every label file, as MCMoE/LIMSSR do for Fis-V
    clip_num: int = 12  # T after crop or pad
    train_crop: str = "uniform"  # "uniform" start in [0, L-T]; "reference": [0, L-T) as the reference code
    test_crop: str = "center"  # "center" or "full" (no crop at test; batch pads to the longest)
    max_length_mismatch: int = 1  # modalities of a sample may differ by this many steps (cut to shortest)
    video_2d: bool = False  # FS1000: accept 2-D (T, D) video files instead of (T, N, D), with a warning
    val_fraction: float = 0.2  # validation split carved from train (train.selection = val)
    val_seed: int = 0
    # held out for calibrating score intervals (limssr.conformal), carved before the validation split and
    # never trained or selected on; 0: intervals are calibrated on the validation split instead
    calibration_fraction: float = 0.0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    fast_dropout: bool = True  # LoRA dropout masks from 15-bit draws (same distribution, ~3x cheaper on CPU)


@dataclass
class ModelConfig:
    """LIMSSR architecture (as LIMSSR's public code builds it; departures in docs/deviations.md)."""

    backbone: str = "default"  # "default", "tiny", "tiny-qwen" or a local Hugging Face directory
    # "random": the same architecture with every weight re-initialised (seeded by `seed`): the
    # control that says what the pretrained weights contribute
    backbone_init: str = "pretrained"
    trust_remote_code: bool = False  # allow a backbone directory's own Python code to run (refused by default)
    modalities: list[str] = field(default_factory=lambda: ["video", "audio", "flow"])
    # Display names used in the prompt; the reference says "visual" for video.
    prompt_names: dict[str, str] = field(default_factory=lambda: {"video": "visual"})
    dims: dict[str, int] = field(default_factory=dict)  # filled from the data when empty
    # filled from the data: for each modality with a length of its own (limssr-data.yaml 'own_length'),
    # the steps of its span, min(data.clip_num, its longest training sample); a missing one gets that
    # many placeholders. Time-aligned modalities are absent: their span is the batch's T
    span_lengths: dict[str, int] = field(default_factory=dict)
    num_fusion_tokens: int = 4
    dropout: float = 0.15
    attention_heads: int = 4  # Path 2 cross-modal attention
    lora: LoraSettings = field(default_factory=LoraSettings)
    train_embeddings: bool = False  # True: the whole vocabulary embedding trains, as the reference does
    final_mix: str = "linear"  # "linear" (w1 unconstrained, as the reference) or "sigmoid"
    confidence_init: float = 0.6
    mix_init: float = 0.7
    mask_padding: bool = True  # False: padded steps are attended and pooled, as the reference does
    # run each distinct prompt once and share its keys/values (fewer tokens): once per batch in CPU
    # training (GPU training runs one pass: launch-bound there), once for good at inference. Scores are
    # the same; in training, samples sharing a prompt share one LoRA-dropout draw on the prompt tokens
    # where the reference draws one per sample (docs/deviations.md #23)
    share_prompt: bool = True
    # attention kernel: "auto" (bf16 on a CPU: matrix products over grouped heads, faster there than
    # SDPA's CPU kernel; SDPA everywhere else) or "sdpa" (always; the reference). See limssr.attention
    attention: str = "auto"
    # ablations (all on = LIMSSR): the prompt and <missing> placeholders (PCMI), the fusion tokens
    # (LMRF; off: Path 1 reads the mean hidden state), and each of the two heads of MDA
    pcmi: bool = True
    lmrf: bool = True
    path1: bool = True
    path2: bool = True


@dataclass
class BaselineConfig:
    """Shared settings of the baselines (limssr.methods): hidden size and depth of their encoders."""

    hidden: int = 256
    heads: int = 4
    layers: int = 2
    n_query: int = 4  # GDLT grade queries (MCMoE)
    dropout: float = 0.3
    modality_dropout: bool = True  # the method's own training-time modality dropout (one subset per batch)
    recon_weight: float = 1.0  # reconstruction (+ KL for MCMoE) loss weight
    mcmoe_mode: str = "faithful"  # "faithful": the query encoding indexed by batch position; "fixed": none
    stage_fraction: float = 0.5  # MoMKE: share of the epochs spent in stage 1
    window: int = 2  # GCNet: temporal graph window (past and future)


@dataclass
class LossConfig:
    """L = alpha_mse * MSE(final, y) + alpha * triplet(fusion tokens) + alpha_con * MSE(main, aux)."""

    alpha_mse: float = 10.0
    alpha: float = 1.0
    alpha_con: float = 1.0
    margin: float = 1.0


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" (decoupled weight decay) or "adam" (L2 weight decay, as MCMoE trains)
    warmup: int = 5
    decay_rate: float = 0.1
    grad_clip: float = 1.0
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "auto" (bf16 where the CPU/GPU has it)
    missing: str = "strict"  # training-time missingness protocol, see limssr.masking
    missing_rate: float = 0.5  # `rate` protocol: probability that each modality is hidden
    complete_fraction: float = 0.0  # `strict` protocol: fraction of training samples left complete
    fixed_subset: str | None = None  # `fixed` protocol: the subset shown, by initials (e.g. "vf")
    # model selection: "val" (best epoch on the validation split), "last" (fixed epoch count), or
    # "paper" (best epoch on the TEST set, as the published code does; labelled in every output)
    selection: str = "val"
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int = 1  # processes / GPUs per node; batch_size is split among them
    num_nodes: int = 1
    strategy: str = "auto"  # "auto", "ddp", "ddp_spawn", "fsdp" (Lightning strategies)
    shuffle: bool = True  # shuffle the training set each epoch
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, more time
    bf16_weights: bool = True  # with bf16 precision, keep the frozen backbone weights in bf16
    # torch.compile the backbone's decoder layers: "off", "default", "reduce-overhead" (CUDA graphs
    # on a GPU) or "max-autotune"; the first steps pay the compilation
    compile: str = "off"
    nonfinite: str = "stop"  # a NaN/Inf loss: "stop" (keeping the last checkpoint) or "skip" the batch
    # deterministic algorithms (torch.use_deterministic_algorithms): two runs of one config give the
    # same numbers. On this project's 2-core CPU it costs 2% of a step (benchmarks/deterministic.json);
    # on a GPU an op without a deterministic kernel warns instead of failing (cost there unmeasured)
    deterministic: bool = True
    log_every_n_steps: int = 5
    # where training metrics go: any of "csv" (RUN_DIR/logs/metrics.csv, what `limssr plot` reads),
    # "tensorboard", "wandb", "mlflow" (Lightning's loggers; each needs the extra of that name)
    loggers: list[str] = field(default_factory=lambda: ["csv"])


@dataclass
class EvalConfig:
    batch_size: int = 16  # scoring batches (no gradients: larger batches are cheap and faster)
    # conformal score intervals, calibrated per shown pattern on the validation split (limssr.conformal)
    coverage: float = 0.9
    interval_scale: str = "none"  # "none": absolute residuals; "heads": scaled by the two heads' disagreement
    # LIMSSR scoring speed-ups (docs/speed.md): "int8" quantizes the frozen backbone's linear layers
    # (dynamic int8, CPU, fp32 activations: for CPUs without native bf16, where it beats fp32; on a
    # bf16 CPU bf16 is faster); compile: torch.compile the backbone for scoring (about a minute and a
    # half to compile on 2 cores, then 1.6x faster batches: worth it for thousands of scorings)
    quantize: str = "none"
    compile: bool = False


@dataclass
class RunConfig:
    """Everything a run needs; saved resolved into every run directory and checkpoint."""

    name: str = "limssr"
    seed: int = 42
    method: str = "limssr"  # see `limssr methods`: limssr, mcmoe, momke, gcnet, actionmae, zero-fill, late-fusion
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- building from dicts


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where lossless (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"config key '{key}' has an invalid value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"'{prefix}.{unknown[0]}'" if prefix else f"'{unknown[0]}'"
        raise ConfigError(f"unknown config key {where}; known keys here: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("dims", "prompt_names"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Build a validated RunConfig; `values` may name only the fields it changes."""
    merged = _merge(RunConfig().to_dict(), values or {})
    cfg = _build(RunConfig, merged)
    validate(cfg)
    return cfg


def with_scoring(cfg: RunConfig, quantize: str | None = None, compile: bool | None = None) -> RunConfig:
    """`cfg` with the scoring options a caller asked for (None: the run's own), validated."""
    evaluation = replace(cfg.eval, **({} if quantize is None else {"quantize": quantize}),
                         **({} if compile is None else {"compile": bool(compile)}))
    out = replace(cfg, eval=evaluation)
    validate(out)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `a.b.c=value`; the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value (e.g. train.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': value is not valid YAML ({err})") from None
    # YAML 1.1 reads "1e-4" as a string; accept it as the number a user meant.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = _merge({}, values)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[path[-1]] = value
    return out


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("limssr.presets").iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    return data


def preset_dict(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(names)}")
    text = resources.files("limssr.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def _method_defaults(layer: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, dict]]:
    """A preset/file layer without its `method_defaults` section, and that section: per method, the
    settings that method uses by default on this dataset (e.g. MCMoE's own schedule)."""
    layer = dict(layer)
    defaults = layer.pop("method_defaults", None) or {}
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ConfigError(f"{where}: key 'method_defaults' must map method names to config sections")
    return layer, defaults


def raw_values(path: str | Path | None = None, preset: str | None = None,
               overrides: list[str] | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merged preset (or `base` values in its place), file and overrides, before defaults and
    validation. A preset's or file's `method_defaults.<method>` section applies beneath the file and
    the overrides when `<method>` is the method they end up naming."""
    layers: list[dict[str, Any]] = []
    defaults: dict[str, dict] = {}
    for layer, where in ((base, "config"), (preset_dict(preset) if preset is not None else None, f"preset '{preset}'"),
                         (read_yaml(path) if path is not None else None, f"config file '{path}'")):
        if layer is not None:
            layer, found = _method_defaults(layer, where)
            layers.append(layer)
            for method, section in found.items():
                defaults[method] = _merge(defaults.get(method, {}), section)
    values: dict[str, Any] = {}
    for layer in layers:
        values = _merge(values, layer)
    method = apply_overrides(values, overrides or []).get("method", RunConfig.method)
    if method in defaults:
        values = _merge(layers[0], defaults[method]) if layers else dict(defaults[method])
        for layer in layers[1:]:
            values = _merge(values, layer)
    return apply_overrides(values, overrides or [])


def load_config(path: str | Path | None = None, preset: str | None = None,
                overrides: list[str] | None = None) -> RunConfig:
    """Resolve a config from a preset or a file, then apply `key=value` overrides."""
    return config_from_dict(raw_values(path, preset, overrides))


@dataclass(frozen=True)
class ConfigSource:
    """Where a run config comes from, its layers kept apart so that variants (another method, seed or
    setting) can be derived with each method's own defaults beneath the user's choices."""

    preset: str | None = None
    path: str | None = None
    overrides: tuple[str, ...] = ()
    base: dict[str, Any] | None = None  # a values layer in place of a preset

    def load(self, extra: list[str] | tuple[str, ...] = ()) -> RunConfig:
        """The config with `extra` overrides after the user's own."""
        return config_from_dict(raw_values(self.path, self.preset, [*self.overrides, *extra], base=self.base))


def with_data(source: ConfigSource, data: str | Path | None) -> ConfigSource:
    """`source` reading the data directory `data`: a preset for a released dataset keeps its reader,
    otherwise the layout is detected (generic, FS1000, Fis-V or RG). The one meaning of `--data`."""
    if data is None:
        return source
    raw = raw_values(source.path, source.preset, list(source.overrides), base=source.base)
    detect = (raw.get("data") or {}).get("source", "synthetic") == "synthetic"
    extra = [f"data.path={data}"] + (["data.source=auto"] if detect else [])
    return dataclasses.replace(source, overrides=(*source.overrides, *extra))


# Names other layers define, listed here so that a config is checked without importing them
# (limssr.methods.registry and limssr.masking check they agree).
METHODS = ("limssr", "mcmoe", "momke", "gcnet", "actionmae", "zero-fill", "late-fusion")
MISSINGNESS_PROTOCOLS = ("strict", "per-batch", "per-sample", "rate", "fixed", "natural", "complete")

CHOICES = {
    "method": METHODS,
    "train.missing": MISSINGNESS_PROTOCOLS,
    "data.source": ("synthetic", "auto", "generic", "fs1000", "fisv", "rg"),
    "data.test_crop": ("center", "full"),
    "data.train_crop": ("uniform", "reference"),
    "data.synthetic.kind": ("additive", "interaction"),
    "train.selection": ("val", "last", "paper"),
    "eval.interval_scale": ("none", "heads"),
    "train.strategy": ("auto", "ddp", "ddp_spawn", "fsdp"),
    "train.nonfinite": ("stop", "skip"),
    "baseline.mcmoe_mode": ("faithful", "fixed"),
    "model.final_mix": ("linear", "sigmoid"),
    "model.attention": ("auto", "sdpa"),
    "model.backbone_init": ("pretrained", "random"),
    "train.precision": ("fp32", "bf16", "auto"),
    "train.optimizer": ("adamw", "adam"),
    "train.compile": ("off", "default", "reduce-overhead", "max-autotune"),
    "eval.quantize": ("none", "int8"),
}


LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")


def _non_finite(values: dict, prefix: str = "") -> tuple[str, float] | None:
    """The first number in a nested config dict that is nan or infinite, with its dotted key."""
    for key, value in values.items():
        if isinstance(value, dict):
            found = _non_finite(value, f"{prefix}{key}.")
            if found:
                return found
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{prefix}{key}", value
    return None


def validate(cfg: RunConfig) -> None:
    """Checks that need more than one field or a value range."""
    bad = _non_finite(cfg.to_dict())
    if bad:
        raise ConfigError(f"config key '{bad[0]}' must be a finite number, got {bad[1]}")
    for key, allowed in CHOICES.items():
        value = cfg
        for part in key.split("."):  # dotted path, e.g. data.synthetic.kind
            value = getattr(value, part)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(allowed)}; got {value!r}")
    if cfg.eval.quantize != "none" and cfg.method != "limssr":
        raise ConfigError(f"config key 'eval.quantize': quantization is for LIMSSR's LLM backbone; "
                          f"method '{cfg.method}' has none (leave eval.quantize=none)")
    mods = cfg.model.modalities
    if not mods:
        raise ConfigError("config key 'model.modalities' must name at least one modality")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"config key 'model.modalities' repeats a name: {mods}")
    initials = [m[0] for m in mods]
    if len(set(initials)) != len(initials):
        raise ConfigError(f"config key 'model.modalities': names must start with distinct letters "
                          f"(subsets are named by initials), got {mods}")
    positive = {"data.clip_num": cfg.data.clip_num, "train.epochs": cfg.train.epochs,
                "train.batch_size": cfg.train.batch_size, "eval.batch_size": cfg.eval.batch_size,
                "model.num_fusion_tokens": cfg.model.num_fusion_tokens, "model.lora.r": cfg.model.lora.r,
                "model.attention_heads": cfg.model.attention_heads}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be at least 1, got {value}")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"config key 'model.dropout' must be in [0, 1), got {cfg.model.dropout}")
    if cfg.train.lr <= 0:
        raise ConfigError(f"config key 'train.lr' must be positive, got {cfg.train.lr}")
    if cfg.train.warmup < 0:
        raise ConfigError(f"config key 'train.warmup' must be at least 0, got {cfg.train.warmup}")
    if cfg.data.source != "synthetic" and not cfg.data.path:
        raise ConfigError(f"config key 'data.path' is required when data.source is '{cfg.data.source}' "
                          "(use --data DIR)")
    unknown = [name for name in cfg.train.loggers if name not in LOGGERS]
    if unknown or len(set(cfg.train.loggers)) != len(cfg.train.loggers):
        raise ConfigError(f"config key 'train.loggers' takes distinct names from {', '.join(LOGGERS)}; "
                          f"got {cfg.train.loggers}")
    if not 0 <= cfg.data.val_fraction < 1:
        raise ConfigError(f"config key 'data.val_fraction' must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.train.selection == "val" and cfg.data.val_fraction == 0:
        raise ConfigError("train.selection 'val' needs data.val_fraction > 0 (or use train.selection=last)")
    if not 0 <= cfg.data.calibration_fraction < 1:
        raise ConfigError(f"config key 'data.calibration_fraction' must be in [0, 1), got {cfg.data.calibration_fraction}")
    if not 0 < cfg.eval.coverage < 1:
        raise ConfigError(f"config key 'eval.coverage' must be in (0, 1), e.g. 0.9, got {cfg.eval.coverage}")
    if not 0 < cfg.train.missing_rate < 1:
        raise ConfigError(f"config key 'train.missing_rate' must be in (0, 1), got {cfg.train.missing_rate}")
    if not 0 <= cfg.train.complete_fraction <= 1:
        raise ConfigError(f"config key 'train.complete_fraction' must be in [0, 1], got {cfg.train.complete_fraction}")
    if cfg.train.missing == "fixed":
        if not cfg.train.fixed_subset:
            raise ConfigError("train.missing 'fixed' needs train.fixed_subset (e.g. train.fixed_subset=vf)")
        try:
            parse_subset(cfg.train.fixed_subset, mods)
        except ValueError as err:
            raise ConfigError(f"config key 'train.fixed_subset': {err}") from None
    for m, n in cfg.model.span_lengths.items():
        if m not in mods or n < 1:
            raise ConfigError(f"config key 'model.span_lengths.{m}' must name a modality of model.modalities "
                              f"{mods} with at least 1 step, got {n}")
    for m, d in cfg.model.dims.items():
        if m not in mods:
            raise ConfigError(f"config key 'model.dims.{m}' names a modality not in model.modalities {mods}")
        if d < 1:
            raise ConfigError(f"config key 'model.dims.{m}' must be at least 1, got {d}")
