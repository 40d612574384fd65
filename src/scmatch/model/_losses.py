"""Metric-learning losses on an in-batch similarity matrix whose diagonal holds the true pairs."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum()


def triplet_hardest(
    sim: torch.Tensor, *, margin: float = 0.2, hardest: bool = True, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Bidirectional triplet ranking loss.

    For each true pair (R, A) on the diagonal of ``sim``:
    ``max[0, m - S(R, A) + S(R, A^)] + max[0, m - S(R, A) + S(R^, A)]`` with ``A^`` the hardest negative of R in
    the batch (largest off-diagonal entry of its row) and ``R^`` likewise for A (its column).
    With ``hardest=False`` the hinge is averaged over all negatives instead, the gentler form used for warm-up,
    since hardest-negative training can collapse early.

    Parameters
    ----------
    sim
        Square (B x B) similarity matrix; ``sim[i, i]`` is the i-th true pair.
    margin
        Margin ``m``.
    hardest
        Hardest negative (True) or mean over negatives (False).
    weight
        Optional per-pair weights (B,), e.g. coreset weights.
    """
    n = sim.shape[0]
    positive = sim.diagonal()
    off = ~torch.eye(n, dtype=torch.bool, device=sim.device)
    cost_rows = (margin - positive[:, None] + sim).clamp(min=0) * off
    cost_cols = (margin - positive[None, :] + sim).clamp(min=0) * off
    if hardest:
        per_pair = cost_rows.max(dim=1).values + cost_cols.max(dim=0).values
    else:
        per_pair = (cost_rows.sum(dim=1) + cost_cols.sum(dim=0)) / max(n - 1, 1)
    return _weighted_mean(per_pair, weight)


def info_nce(sim: torch.Tensor, *, temperature: float = 0.1, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: cross-entropy of each row and each column of ``sim / temperature`` on the diagonal."""
    logits = sim / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    per_pair = F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none")
    return _weighted_mean(per_pair / 2, weight)
