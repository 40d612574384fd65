"""Early stopping: a score of the held-out pairs every epoch, and when to stop and which weights to keep."""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..._utils import _dense, logger
from ..nn._modules import CrossAttentionMatcher
from ..solvers._search import Search, encode, search_candidates
from ._objective import Objective

#: validation slices larger than this are ranked on each cell's best candidates only
VAL_CANDIDATES = 100
#: weight of the previous value in the moving average of the validation score that early stopping follows
VAL_SMOOTHING = 0.7


def _batch(X, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(_dense(X[idx]), dtype=torch.float32, device=device)


@torch.no_grad()
def validation_score(
    module: CrossAttentionMatcher, X1, X2, device: torch.device, chunk: int = 512, *, objective: Objective
) -> float:
    """Mean reciprocal rank of the true partner among the validation cells (both directions).

    Up to ``VAL_CANDIDATES`` cells every pair is scored. Above that, the held-out cells are scored the way a
    query is matched, on each cell's ``VAL_CANDIDATES`` best candidates (then re-ranked by the cross term): a
    partner outside its row's candidates counts as rank infinity, and a column ranks its partner among the rows
    that proposed it. This keeps the per-epoch cost O(n * VAL_CANDIDATES) instead of O(n^2) cross terms.
    """
    module.eval()
    n = X1.shape[0]
    if n > VAL_CANDIDATES:
        return _candidate_mrr(module, X1, X2, device, objective)
    sims = []
    x2 = _batch(X2, np.arange(n), device)
    for start in range(0, n, chunk):
        x1 = _batch(X1, np.arange(start, min(start + chunk, n)), device)
        sims.append(objective.similarity(module, x1, x2).cpu())
    sim = torch.cat(sims)
    positive = sim.diagonal()
    rank_rows = (sim > positive[:, None]).sum(1) + 1
    rank_cols = (sim > positive[None, :]).sum(0) + 1
    return float(((1.0 / rank_rows).mean() + (1.0 / rank_cols).mean()) / 2)


def _candidate_mrr(module: CrossAttentionMatcher, X1, X2, device: torch.device, objective: Objective) -> float:
    """Mean reciprocal rank (both directions) on each row's best ``VAL_CANDIDATES`` candidates."""
    n = X1.shape[0]
    emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=bool(module.alpha))
    emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=bool(module.alpha))
    S = search_candidates(
        module, emb1, emb2, metric=objective.metric, search=Search(), n_candidates=VAL_CANDIDATES,
        tokens1=tok1, tokens2=tok2, device=device,
    )  # fmt: skip
    rows, cols, vals = np.repeat(np.arange(n), np.diff(S.indptr)), S.indices, S.data
    partner = np.full(n, np.nan)
    hit = rows == cols
    partner[rows[hit]] = vals[hit]
    found = ~np.isnan(partner)
    rank_rows = 1 + np.bincount(rows[vals > partner[rows]], minlength=n)
    rank_cols = 1 + np.bincount(cols[vals > partner[cols]], minlength=n)
    return float((np.where(found, 1.0 / rank_rows, 0.0).mean() + np.where(found, 1.0 / rank_cols, 0.0).mean()) / 2)


class EarlyStopping:
    """Follows the validation score; says when to stop and keeps the weights of the best epoch.

    Training stops once an exponential moving average of the score (weight ``1 - VAL_SMOOTHING`` on the newest
    epoch) has not risen for ``patience`` epochs: on a slice of a few dozen held-out pairs one epoch's score is
    noisy, and a noise peak of the raw score would restart the patience. The weights kept are those of the epoch
    with the best score itself. Epochs of the warm-up do not count.
    """

    def __init__(self, *, patience: int, warmup_epochs: int) -> None:
        self.patience, self.warmup_epochs = patience, warmup_epochs
        self.best_score, self.best_state, self.best_epoch = -np.inf, None, -1
        self.best_smoothed, self.since_best, self.smoothed = -np.inf, 0, None

    def update(self, epoch: int, score: float, module: torch.nn.Module) -> bool:
        """Record epoch ``epoch``'s score; True when training should stop."""
        self.smoothed = score if self.smoothed is None else VAL_SMOOTHING * self.smoothed + (1 - VAL_SMOOTHING) * score
        if epoch < self.warmup_epochs:
            return False
        if score > self.best_score:
            self.best_score, self.best_state = score, copy.deepcopy(module.state_dict())
            self.best_epoch = epoch
        if self.smoothed > self.best_smoothed:
            self.best_smoothed, self.since_best = self.smoothed, 0
            return False
        self.since_best += 1
        if self.since_best >= self.patience:
            logger.info("early stopping at epoch %d (best %d)", epoch, self.best_epoch)
            return True
        return False
