"""Loss blocks shared by methods: the batch-hard cosine triplet loss over fusion/query tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_cosine_triplet(embeddings: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Batch-hard triplet loss over fusion tokens with cosine distance d = 1 - cos.

    embeddings: (B, K, H). Rows are labelled by their token index k; for every row the hardest
    positive is the farthest row with the same k (another sample) and the hardest negative is the
    nearest row with a different k. Loss = mean(relu(d_ap - d_an + margin)). With B = 1 there is no
    positive (d_ap = 0); with K = 1 there is no negative and the loss is 0.
    """
    bsz, k, _ = embeddings.shape
    if k < 2:
        return embeddings.new_zeros(())
    x = F.normalize(embeddings.float().reshape(bsz * k, -1), dim=-1)
    dist = (1.0 - x @ x.t()).clamp(min=0.0)
    labels = torch.arange(k, device=x.device).repeat(bsz)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(bsz * k, dtype=torch.bool, device=x.device)
    hardest_pos = (dist * (same & ~eye)).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    return F.relu(hardest_pos - hardest_neg + margin).mean()
