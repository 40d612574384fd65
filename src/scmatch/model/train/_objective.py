"""The training objective: a loss on the in-batch similarity under the model's metric."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nn._losses import pair_loss
from ..nn._metric import Metric
from ..nn._modules import CrossAttentionMatcher


@dataclass(frozen=True)
class Objective:
    """What training minimises: the model's ``loss`` on the in-batch similarity under its ``metric``.

    ``margin`` and ``temperature`` are the loss's (triplet margin, InfoNCE temperature); ``n_cross`` restricts the
    cross term of the training similarity to each row's best columns.
    """

    loss: str
    metric: Metric
    margin: float = 0.2
    temperature: float = 0.1
    n_cross: int | None = None

    def similarity(
        self, module: CrossAttentionMatcher, x1: torch.Tensor, x2: torch.Tensor, *, training: bool = False
    ) -> torch.Tensor:
        """In-batch similarity under the model's metric; in training, the cross term only on candidates."""
        return self.metric.similarity(module, x1, x2, n_cross=self.n_cross if training else None)

    def __call__(self, sim: torch.Tensor, *, warm: bool = False, weight: torch.Tensor | None = None) -> torch.Tensor:
        return pair_loss(
            sim, loss=self.loss, margin=self.margin, temperature=self.temperature, warm=warm, weight=weight
        )


class PairLoss(torch.nn.Module):
    """The training loss as a module's ``forward``, so DistributedDataParallel can wrap it."""

    def __init__(self, module: CrossAttentionMatcher, objective: Objective) -> None:
        super().__init__()
        self.module, self.objective = module, objective

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, warm: bool, weight: torch.Tensor | None) -> torch.Tensor:
        return self.objective(self.objective.similarity(self.module, x1, x2, training=True), warm=warm, weight=weight)
