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


def _masks(dist: torch.Tensor, positive: torch.Tensor | None, negative: torch.Tensor | None):
    if positive is None:
        positive = torch.eye(dist.shape[0], dtype=torch.bool, device=dist.device)
    if negative is None:
        negative = ~positive
    return positive, negative


def distance_triplet(
    dist: torch.Tensor,
    *,
    margin: float = 0.2,
    positive: torch.Tensor | None = None,
    negative: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triplet loss on a distance matrix: mean over triplets of ``[d(a, p) - d(a, n) + margin]_+``.

    Every row of ``dist`` is an anchor ``a`` (and, bidirectionally, every column); its positives ``p`` and
    negatives ``n`` are the True entries of ``positive`` and ``negative`` (defaults: the diagonal, i.e. the same
    cell in the other modality, and everything else). The loss of an anchor is the mean over its (p, n) pairs;
    the batch loss is the (weighted) mean over anchors, of rows and columns averaged. With ``dist = d_w`` this is
    the proposal's ``loss="wtriplet"``; with a Euclidean distance its like-for-like counterpart.
    """
    positive, negative = _masks(dist, positive, negative)

    def per_anchor(d, pos, neg):
        hinge = (d[:, :, None] - d[:, None, :] + margin).clamp(min=0)  # (anchor, p, n)
        valid = pos[:, :, None] & neg[:, None, :]
        return (hinge * valid).sum((1, 2)) / valid.sum((1, 2)).clamp(min=1)

    per_pair = (per_anchor(dist, positive, negative) + per_anchor(dist.T, positive.T, negative.T)) / 2
    return _weighted_mean(per_pair, weight)


def distance_contrastive(
    dist: torch.Tensor,
    *,
    margin: float = 0.2,
    positive: torch.Tensor | None = None,
    negative: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contrastive loss on a distance matrix: ``1[same] d(i, j) + 1[different] [margin - d(i, j)]_+``.

    Balanced per anchor: the mean over its positives plus the mean over its negatives (a plain mean over all
    B x B pairs would give the B positives a weight of 1/B); rows and columns averaged, then the (weighted) mean
    over anchors. Masks as in :func:`distance_triplet`. With ``dist = d_w`` this is ``loss="wcontrastive"``.
    """
    positive, negative = _masks(dist, positive, negative)

    def per_anchor(d, pos, neg):
        pull = (d * pos).sum(1) / pos.sum(1).clamp(min=1)
        push = ((margin - d).clamp(min=0) * neg).sum(1) / neg.sum(1).clamp(min=1)
        return pull + push

    per_pair = (per_anchor(dist, positive, negative) + per_anchor(dist.T, positive.T, negative.T)) / 2
    return _weighted_mean(per_pair, weight)


#: loss name -> metric of the joint space it trains (``-sim`` is the distance under a distance metric)
LOSS_METRIC = {
    "triplet": "cosine",
    "infonce": "cosine",
    "wtriplet": "wasserstein",
    "wcontrastive": "wasserstein",
    "winfonce": "wasserstein",
    "etriplet": "euclidean",
    "econtrastive": "euclidean",
}
LOSSES = tuple(LOSS_METRIC)
#: the losses of :class:`~scmatch.model.MatchModel`; the others are :mod:`scmatch.experimental`'s distance losses
COSINE_LOSSES = tuple(name for name, metric in LOSS_METRIC.items() if metric == "cosine")
DISTANCE_LOSSES = tuple(name for name, metric in LOSS_METRIC.items() if metric != "cosine")


def pair_loss(
    sim: torch.Tensor,
    *,
    loss: str,
    margin: float,
    temperature: float,
    warm: bool = False,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss ``loss`` of an in-batch similarity whose diagonal holds the true pairs.

    ``margin`` is the margin of the triplet and contrastive losses, ``temperature`` InfoNCE's; ``warm`` selects the
    warm-up form of the cosine triplet loss (mean over negatives instead of the hardest one). Distance losses see
    the distance ``-sim``.
    """
    if loss == "triplet":
        return triplet_hardest(sim, margin=margin, hardest=not warm, weight=weight)
    if loss in ("wtriplet", "etriplet"):
        return distance_triplet(-sim, margin=margin, weight=weight)
    if loss in ("wcontrastive", "econtrastive"):
        return distance_contrastive(-sim, margin=margin, weight=weight)
    return info_nce(sim, temperature=temperature, weight=weight)
