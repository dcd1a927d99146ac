"""Inception-v1 I3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017), written
here from the paper's architecture: Inception-v1 with every 2-D kernel inflated to 3-D and
TensorFlow-style "same" padding, so the 1024-channel output of its last Inception block is the
flow feature the released AQA data uses (I3D on optical flow, one vector per clip).

Parameter names follow the widely distributed PyTorch conversion of DeepMind's Kinetics
checkpoints (endpoint names such as `Mixed_4b`, branches `b0 b1a b1b b2a b2b b3b`, each unit a
`conv3d` with an optional `bn`), so its `flow_imagenet.pt` state dict loads by path with
`load_state_dict(strict=True)`. `width` scales every channel count, for small test models.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (in, [b0, b1a, b1b, b2a, b2b, b3b]) of each Inception block, as in Inception-v1
_BLOCKS = {
    "Mixed_3b": [64, 96, 128, 16, 32, 32],
    "Mixed_3c": [128, 128, 192, 32, 96, 64],
    "Mixed_4b": [192, 96, 208, 16, 48, 64],
    "Mixed_4c": [160, 112, 224, 24, 64, 64],
    "Mixed_4d": [128, 128, 256, 24, 64, 64],
    "Mixed_4e": [112, 144, 288, 32, 64, 64],
    "Mixed_4f": [256, 160, 320, 32, 128, 128],
    "Mixed_5b": [256, 160, 320, 32, 128, 128],
    "Mixed_5c": [384, 192, 384, 48, 128, 128],
}


def same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad (B, C, T, H, W) so that a kernel/stride gives ceil(size / stride) outputs (TF "SAME")."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads.append((total // 2, total - total // 2))
    w, h, t = pads[2], pads[1], pads[0]
    return F.pad(x, (*w, *h, *t))


class Unit3D(nn.Module):
    """Conv3d ("same" padding) -> BatchNorm (eps 1e-3) -> ReLU; the logits unit has a bias and neither."""

    def __init__(self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), norm: bool = True,
                 relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, self.stride, padding=0, bias=not norm)
        self.bn = nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01) if norm else None

    def forward(self, x):
        x = self.conv3d(same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        # zero padding, as the converted checkpoints were trained with (inputs after ReLU are >= 0)
        return F.max_pool3d(same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1."""

    def __init__(self, c_in: int, widths: list[int]):
        super().__init__()
        self.b0 = Unit3D(c_in, widths[0])
        self.b1a = Unit3D(c_in, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(c_in, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(c_in, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class I3D(nn.Module):
    """I3D up to its last Inception block; `features(x)` averages it over time and space.

    x: (B, in_channels, T, H, W), flow scaled to [-1, 1] (RGB also works with in_channels=3).
    `features` returns (B, 1024) at width 1.
    """

    def __init__(self, in_channels: int = 2, num_classes: int = 400, width: float = 1.0):
        super().__init__()

        def c(n: int) -> int:
            return max(1, math.ceil(n * width))

        self.Conv3d_1a_7x7 = Unit3D(in_channels, c(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64))
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        channels = c(192)
        for name, widths in _BLOCKS.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
            block = Inception(channels, [c(w) for w in widths])
            setattr(self, name, block)
            channels = block.out_channels
        self.dim = channels  # 1024 at width 1
        # kept so the distributed checkpoints load strictly; features() does not use it
        self.logits = Unit3D(channels, num_classes, norm=False, relu=False)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name != "logits":
                x = module(x)
        return x  # (B, dim, T', H', W')

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x).mean(dim=(2, 3, 4))  # (B, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes), averaged over the remaining time steps."""
        x = self._trunk(x)
        x = F.adaptive_avg_pool3d(x, (x.shape[2], 1, 1))
        return self.logits(x).mean(dim=(2, 3, 4))
