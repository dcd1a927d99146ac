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
        """Project the steps of `x` (B, T, D) selected by `rows` (B, T); zeros elsewhere -> (B, T, out).
        Off the CPU, `masked_sequence` (the same values without waiting on the device)."""
        if x.device.type != "cpu":
            return self.masked_sequence(x, rows)
        out = x.new_zeros(x.shape[0], x.shape[1], self.bn2.num_features, dtype=torch.float32)
        if rows.any():
            out[rows] = self(x[rows]).float()
        return out

    def masked_sequence(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """`sequence` computed on every step, with the BatchNorm statistics (and their running
        averages) taken over the `rows` steps only. Gathering the selected steps has a shape that
        depends on the data, which makes the host wait for the device (a GPU step bound by kernel
        launches loses its overlap); this has none. Hidden and padded steps cost a little compute."""
        bsz, steps, dim = x.shape
        selected = rows.reshape(bsz * steps)
        h = self.conv1(x.reshape(bsz * steps, dim).t().unsqueeze(0))  # (1, mid, B*T)
        h = self.dropout(F.relu(self._masked_bn(self.bn1, h, selected)))
        h = self._masked_bn(self.bn2, self.conv2(h), selected)
        out = h.squeeze(0).t().reshape(bsz, steps, -1).float()
        return torch.where(rows[..., None], out, 0.0)

    @staticmethod
    def _masked_bn(bn: nn.BatchNorm1d, x: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """BatchNorm of x (1, C, N) with batch statistics over the steps `selected` (N,); with fewer
        than two such steps, the running statistics (as `_bn`), left unchanged."""
        if not bn.training:
            return bn(x)
        xf = x.float().squeeze(0).t()  # (N, C)
        n = selected.sum()
        mean = masked_mean(xf, selected, dim=0)
        var = masked_mean((xf - mean).pow(2), selected, dim=0)  # biased, as BatchNorm normalises
        enough = n >= 2
        use_mean = torch.where(enough, mean, bn.running_mean)
        use_var = torch.where(enough, var, bn.running_var)
        y = (xf - use_mean) * torch.rsqrt(use_var + bn.eps) * bn.weight + bn.bias
        with torch.no_grad():  # running averages as BatchNorm keeps them (unbiased variance)
            m = bn.momentum
            unbiased = var * n / (n - 1).clamp(min=1)
            bn.running_mean.copy_(torch.where(enough, (1 - m) * bn.running_mean + m * mean, bn.running_mean))
            bn.running_var.copy_(torch.where(enough, (1 - m) * bn.running_var + m * unbiased, bn.running_var))
            bn.num_batches_tracked.add_(enough.long())
        return y.t().unsqueeze(0).to(x.dtype)


def regressor(hidden: int, dropout: float) -> nn.Sequential:
    """Linear(H, H/2) -> LayerNorm -> GELU -> Dropout -> Linear(H/2, 1), as LIMSSR's heads."""
    return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.LayerNorm(hidden // 2), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden // 2, 1))


def masked_mean(x: torch.Tensor, valid: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean of `x` over `dim` where `valid` (broadcastable, without the feature axis) is True."""
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=dim) / w.sum(dim=dim).clamp(min=1.0)
