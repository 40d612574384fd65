"""Coreset training (experimental): each epoch trains on a weighted subset of the reference pairs.

Public as :class:`scmatch.experimental.CoresetPlan`. Measured on a 20,000-pair simulated reference
(benchmarks/README.md, Coreset), neither subset beats training on every pair for fewer epochs at the same fit time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..._utils import logger
from .._numbers import check_choice, check_numbers
from ..solvers._coreset import CORESETS, select_coreset_indices
from ._objective import Objective
from ._plan import TrainingPlan
from ._sampling import Pairs
from ._stopping import _batch


@dataclass(frozen=True, kw_only=True)
class CoresetPlan(TrainingPlan):
    """A :class:`~scmatch.model.TrainingPlan` that trains each epoch on a coreset of the reference pairs.

    Experimental: on a 20,000-pair simulated reference (benchmarks/README.md, Coreset) neither coreset beats
    training on every pair for fewer epochs at the same fit time; if you want a subset anyway,
    ``CoresetPlan(coreset="random", coreset_every=1)`` (a fresh subset each epoch) scored best of the subset
    options.

    Parameters
    ----------
    coreset
        ``"craig"``: greedy facility location (:mod:`scmatch.model.solvers._coreset`) on each pair's gradient
        proxy, the gradient of the loss with respect to its own ``i0`` and ``c0`` (on the standardised inputs for
        the first selection, before any training); each selected pair is weighted by the number of pairs it
        represents. ``"random"``: a uniform random subset of the same size, equal weights; the control.
    coreset_fraction
        Share of the training pairs in the coreset, in (0, 1].
    coreset_every
        Epochs between re-selections (1, or 0: every epoch).
    **kwargs
        The settings of :class:`~scmatch.model.TrainingPlan`.

    Examples
    --------
    >>> from scmatch.experimental import CoresetPlan
    >>> CoresetPlan(coreset="random", coreset_every=1, max_epochs=5).coreset_fraction
    0.3
    """

    coreset: str = "craig"
    coreset_fraction: float = 0.3
    coreset_every: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("coreset", self.coreset, CORESETS)
        if not 0 < self.coreset_fraction <= 1:
            raise ValueError(f"`coreset_fraction` must be in (0, 1], got {self.coreset_fraction}.")
        check_numbers(counts_or_zero={"coreset_every": self.coreset_every})

    def _pairs(self, n: int, *, sample_weight: np.ndarray | None, objective: Objective) -> Pairs:
        return CoresetPairs(n, plan=self, sample_weight=sample_weight, objective=objective)


class CoresetPairs(Pairs):
    """The pairs of each epoch: a coreset of the training pairs, re-selected every ``coreset_every`` epochs."""

    def __init__(self, n: int, *, plan: CoresetPlan, sample_weight: np.ndarray | None, objective: Objective) -> None:
        super().__init__(n, batch_size=plan.batch_size, sample_weight=sample_weight)
        self.plan, self.objective = plan, objective
        self.batch_size = min(plan.batch_size, max(2, round(plan.coreset_fraction * n)))
        self.weight: np.ndarray | None = None
        self.position: dict[int, int] = {}

    @property
    def per_epoch(self) -> int:
        # the coreset's size does not change between re-selections
        return max(1, round(self.plan.coreset_fraction * self.n_all))

    def describe(self) -> str:
        return f"a {self.plan.coreset} coreset of {self.per_epoch} pairs"

    def refresh(self, epoch: int, *, module, X1, X2, rng: np.random.Generator, device) -> None:
        if epoch % max(1, self.plan.coreset_every) == 0:
            self.subset, self.weight = self._select(module, X1, X2, rng, device, first=epoch == 0)
            self.position = {int(c): i for i, c in enumerate(self.subset)}

    def weights(self, idx: np.ndarray) -> np.ndarray | None:
        return self.weight[[self.position[int(c)] for c in idx]]

    def _select(self, module, X1, X2, rng, device, *, first: bool) -> tuple[np.ndarray, np.ndarray]:
        """The coreset and its weights (the user's ``sample_weight`` multiplies the coreset weights).

        Selection space (CRAIG): before training (``first``), the standardised inputs of both modalities side by
        side; afterwards, each pair's gradient proxy (:func:`gradient_proxies`), so that pairs whose gradients are
        alike are represented by one of them and pairs the model already matches collapse onto a few
        representatives.
        """
        n, fraction = X1.shape[0], self.plan.coreset_fraction
        if self.plan.coreset == "random":
            idx, weight = select_coreset_indices(np.empty((n, 0)), fraction=fraction, method="random", random_state=rng)
        else:
            z1, z2 = _embeddings(module, X1, X2, device, standardised=first)
            if first:
                feats = torch.cat([z1, z2], dim=1).cpu().numpy()
            else:
                feats = gradient_proxies(z1, z2, self.objective, batch_size=self.plan.batch_size, rng=rng)
            idx, weight = select_coreset_indices(feats, fraction=fraction, method="craig", random_state=rng)
        if self.sample_weight is not None:
            weight = weight * self.sample_weight[idx]
        logger.info("coreset (%s): %d of %d cells", self.plan.coreset, len(idx), n)
        return idx, weight.astype(np.float32)


def _embeddings(module, X1, X2, device, *, standardised: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair's standardised inputs, or its joint-space embeddings ``(i0, c0)``, 4096 pairs at a time."""
    z1, z2 = [], []
    module.eval()
    with torch.no_grad():
        for start in range(0, X1.shape[0], 4096):
            idx = np.arange(start, min(start + 4096, X1.shape[0]))
            x1, x2 = _batch(X1, idx, device), _batch(X2, idx, device)
            if standardised:
                z1.append((x1 - module.shift1) / module.scale1)
                z2.append((x2 - module.shift2) / module.scale2)
            else:
                z1.append(module.embed(module.tokens(x1, 1), 1))
                z2.append(module.embed(module.tokens(x2, 2), 2))
    return torch.cat(z1), torch.cat(z2)


def gradient_proxies(
    emb1: torch.Tensor, emb2: torch.Tensor, objective: Objective, *, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-pair gradient of the training loss with respect to the pair's own joint-space embeddings ``(i0, c0)``.

    CRAIG's last-layer proxy: the pairs are put in random minibatches of ``batch_size`` (the negatives they meet in
    training), the loss is taken on the ``i0, c0`` part of the similarity only (no cross term), and row ``i`` is
    ``[dL/di0_i, dL/dc0_i]`` times the batch size. A pair the model already matches with confidence has a gradient
    near zero.
    """
    n = emb1.shape[0]
    out = np.empty((n, emb1.shape[1] + emb2.shape[1]), dtype=np.float32)
    order = rng.permutation(n)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:  # a lone pair has no negatives: give it a neighbour's batch
        batches = [*batches[:-2], np.concatenate(batches[-2:])]
    for idx in batches:
        z1 = emb1[idx].detach().clone().requires_grad_(True)
        z2 = emb2[idx].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            sim = z1 @ z2.T if objective.metric.is_cosine else -objective.metric.pairwise(z1, z2)
            g1, g2 = torch.autograd.grad(objective(sim) * len(idx), [z1, z2])
        out[idx] = torch.cat([g1, g2], dim=1).cpu().numpy()
    return out
