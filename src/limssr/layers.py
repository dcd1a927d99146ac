"""Building blocks shared by LIMSSR and the baselines."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TimeProjection(nn.Module):
    """Two kernel-1 convolutions with BatchNorm: a per-time-step MLP `in_dim -> mid -> out`.

    Applied to the real time steps of shown modalities only (`rows` is (N, D), the valid steps
    gathered), so neither padding nor hidden modalities enter the BatchNorm statistics.
    """

    def __init__(self, in_dim: int, out: int, dropout: float = 0.0, mid: int | None = None):
        super().__init__()
        mid = mid or out
        self.conv1 = nn.Conv1d(in_dim, mid, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(mid)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(mid, out, kernel_size=1)
        self.bn2 = nn.BatchNorm1d(out)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows: (N, D) time steps -> (N, out)."""
        x = rows.t().unsqueeze(0)  # (1, D, N): BatchNorm statistics over the N steps
        x = self.dropout(F.relu(self._bn(self.bn1, self.conv1(x))))
        return self._bn(self.bn2, self.conv2(x)).squeeze(0).t()

    @staticmethod
    def _bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        if bn.training and x.shape[-1] < 2:  # one step has no batch statistics: use the running ones
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return bn(x)

    def sequence(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Project the steps of `x` (B, T, D) selected by `rows` (B, T); zeros elsewhere -> (B, T, out)."""
        out = x.new_zeros(x.shape[0], x.shape[1], self.bn2.num_features, dtype=torch.float32)
        if rows.any():
            out[rows] = self(x[rows]).float()
        return out


def regressor(hidden: int, dropout: float) -> nn.Sequential:
    """Linear(H, H/2) -> LayerNorm -> GELU -> Dropout -> Linear(H/2, 1), as LIMSSR's heads."""
    return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.LayerNorm(hidden // 2), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden // 2, 1))


def masked_mean(x: torch.Tensor, valid: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean of `x` over `dim` where `valid` (broadcastable, without the feature axis) is True."""
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=dim) / w.sum(dim=dim).clamp(min=1.0)
