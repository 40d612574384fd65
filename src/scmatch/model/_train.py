"""The training loop: minibatches streamed from (possibly sparse) inputs, warm-up, early stopping."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from .._utils import _dense, logger
from ._coreset import CORESETS, select_coreset_indices
from ._losses import distance_contrastive, distance_triplet, info_nce, triplet_hardest
from ._modules import CrossAttentionMatcher
from ._scoring import candidate_similarities, encode
from ._wasserstein import distance_candidates, metric_similarity, pairwise_distance

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
#: validation slices larger than this are ranked on each cell's best candidates only
VAL_CANDIDATES = 100
#: weight of the previous value in the moving average of the validation score that early stopping follows
VAL_SMOOTHING = 0.7


@dataclass
class TrainConfig:
    """Optimisation settings of :class:`~scmatch.model.MatchModel`."""

    loss: str = "infonce"
    margin: float = 0.2
    temperature: float = 0.1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    patience: int = 20
    noise: float = 0.3
    hist_temperature: float = 0.1
    coreset: str | None = None
    coreset_fraction: float = 0.3
    coreset_every: int = 5
    cross_candidates: int | None = 32
    max_steps: int | None = 4000

    @property
    def metric(self) -> str:
        """Metric of the joint space: ``"cosine"``, ``"euclidean"`` or ``"wasserstein"``."""
        return LOSS_METRIC[self.loss]

    def similarity(
        self, module: CrossAttentionMatcher, x1: torch.Tensor, x2: torch.Tensor, *, training: bool = False
    ) -> torch.Tensor:
        """In-batch similarity under this configuration's metric; in training, the cross term only on candidates."""
        n_cross = self.cross_candidates if training else None
        return metric_similarity(module, x1, x2, metric=self.metric, temperature=self.hist_temperature, n_cross=n_cross)


@dataclass
class History:
    """Per-epoch training record.

    Mean training loss, validation score, its moving average (what early stopping follows), and wall seconds of
    the training steps (with any coreset re-selection) and of the validation scoring.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    val_smoothed: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    epoch_budget: int = -1
    steps_per_epoch: int = -1

    def as_dict(self) -> dict:
        """Plain-dict form, as stored in ``.uns`` and in saved models."""
        return {
            "epoch": list(self.epoch),
            "train_loss": list(self.train_loss),
            "val_score": list(self.val_score),
            "val_smoothed": list(self.val_smoothed),
            "seconds": list(self.seconds),
            "val_seconds": list(self.val_seconds),
            "best_epoch": int(self.best_epoch),
            "epoch_budget": int(self.epoch_budget),
            "steps_per_epoch": int(self.steps_per_epoch),
        }


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingCancelledError(RuntimeError):
    """Training was stopped from outside (another ensemble member failed, or the fit was interrupted)."""


def _batch(X: np.ndarray | sp.spmatrix, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(_dense(X[idx]), dtype=torch.float32, device=device)


def _loss(sim: torch.Tensor, cfg: TrainConfig, *, warm: bool, weight: torch.Tensor | None) -> torch.Tensor:
    if cfg.loss == "triplet":
        return triplet_hardest(sim, margin=cfg.margin, hardest=not warm, weight=weight)
    if cfg.loss in ("wtriplet", "etriplet"):
        return distance_triplet(-sim, margin=cfg.margin, weight=weight)
    if cfg.loss in ("wcontrastive", "econtrastive"):
        return distance_contrastive(-sim, margin=cfg.margin, weight=weight)
    return info_nce(sim, temperature=cfg.temperature, weight=weight)


@torch.no_grad()
def validation_score(
    module: CrossAttentionMatcher, X1, X2, device: torch.device, chunk: int = 512, *, cfg: TrainConfig | None = None
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
        return _candidate_mrr(module, X1, X2, device, cfg or TrainConfig())
    sims = []
    x2 = _batch(X2, np.arange(n), device)
    for start in range(0, n, chunk):
        x1 = _batch(X1, np.arange(start, min(start + chunk, n)), device)
        sims.append((cfg or TrainConfig()).similarity(module, x1, x2).cpu())
    sim = torch.cat(sims)
    positive = sim.diagonal()
    rank_rows = (sim > positive[:, None]).sum(1) + 1
    rank_cols = (sim > positive[None, :]).sum(0) + 1
    return float(((1.0 / rank_rows).mean() + (1.0 / rank_cols).mean()) / 2)


class _PairLoss(torch.nn.Module):
    """The training loss as a module's ``forward``, so DistributedDataParallel can wrap it."""

    def __init__(self, module: CrossAttentionMatcher, cfg: TrainConfig) -> None:
        super().__init__()
        self.module, self.cfg = module, cfg

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, warm: bool, weight: torch.Tensor | None) -> torch.Tensor:
        return _loss(self.cfg.similarity(self.module, x1, x2, training=True), self.cfg, warm=warm, weight=weight)


def _candidate_mrr(module: CrossAttentionMatcher, X1, X2, device: torch.device, cfg: TrainConfig) -> float:
    """Mean reciprocal rank (both directions) on each row's best ``VAL_CANDIDATES`` candidates."""
    n = X1.shape[0]
    emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=bool(module.alpha))
    emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=bool(module.alpha))
    kw = {"tokens1": tok1, "tokens2": tok2, "n_candidates": VAL_CANDIDATES, "device": device}
    if cfg.metric == "cosine":
        S = candidate_similarities(module, emb1, emb2, **kw)
    else:
        S = distance_candidates(module, emb1, emb2, metric=cfg.metric, temperature=cfg.hist_temperature, **kw)
    rows, cols, vals = np.repeat(np.arange(n), np.diff(S.indptr)), S.indices, S.data
    partner = np.full(n, np.nan)
    hit = rows == cols
    partner[rows[hit]] = vals[hit]
    found = ~np.isnan(partner)
    rank_rows = 1 + np.bincount(rows[vals > partner[rows]], minlength=n)
    rank_cols = 1 + np.bincount(cols[vals > partner[cols]], minlength=n)
    return float((np.where(found, 1.0 / rank_rows, 0.0).mean() + np.where(found, 1.0 / rank_cols, 0.0).mean()) / 2)


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised torch.distributed process group, else ``(0, 1)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(
    module: CrossAttentionMatcher,
    X1: np.ndarray | sp.spmatrix,
    X2: np.ndarray | sp.spmatrix,
    *,
    cfg: TrainConfig,
    rng: np.random.Generator,
    device: torch.device,
    sample_weight: np.ndarray | None = None,
    validation: tuple | None = None,
    progress_bar: bool = True,
    generator: torch.Generator | None = None,
    stop: threading.Event | None = None,
    desc: str = "training",
    bar_position: int | None = None,
) -> History:
    """Train ``module`` in place on the paired rows of ``X1`` and ``X2``; returns the history.

    The weights of the epoch with the best validation score are restored at the end. Training stops once an
    exponential moving average of that score (weight ``1 - VAL_SMOOTHING`` on the newest epoch) has not risen for
    ``cfg.patience`` epochs: on a slice of a few dozen held-out pairs one epoch's score is noisy, and a noise peak
    of the raw score would restart the patience.

    ``rng`` draws the minibatches (and coresets), ``generator`` the input noise and the dropout masks (torch's
    global generator when ``None``): with both given, training touches no global random state, so several networks
    can train at once in threads. Raises :class:`TrainingDivergedError` if the loss becomes NaN or infinite, and
    :class:`TrainingCancelledError` once ``stop`` is set (checked before every step).
    """
    n_all = X1.shape[0]
    if cfg.coreset is not None and cfg.coreset not in CORESETS:
        raise ValueError(f"Unknown coreset {cfg.coreset!r}; use None or one of {CORESETS}.")
    subset, subset_weight = np.arange(n_all), sample_weight
    n = n_all
    batch_size = min(cfg.batch_size, n)
    if cfg.coreset is not None:
        batch_size = min(cfg.batch_size, max(2, round(cfg.coreset_fraction * n_all)))
    rank, world = _distributed()
    # pairs per epoch: the whole reference, or the coreset (its size does not change between re-selections)
    n_epoch = max(1, round(cfg.coreset_fraction * n_all)) if cfg.coreset is not None else n_all
    if world > 1 and n_epoch // batch_size < world:
        what = f"a {cfg.coreset} coreset of {n_epoch} pairs" if cfg.coreset is not None else f"{n_epoch} pairs"
        raise ValueError(
            f"{what} give {n_epoch // batch_size} minibatches of {batch_size}, too few for {world} processes; "
            "lower `batch_size`, raise `coreset_fraction`, or use fewer processes."
        )
    step_loss = _PairLoss(module, cfg)
    if world > 1:
        # data parallel: every process holds the same data and draws the same minibatch order; process r takes
        # minibatches r, r + world, ...; DDP averages the gradients, so the weights stay identical everywhere
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
        # with alpha = 0 the cross-attention weights get no gradient
        step_loss = DistributedDataParallel(step_loss, device_ids=device_ids, find_unused_parameters=not module.alpha)
        logger.info("data-parallel training: process %d of %d", rank, world)
    # the fused kernel updates every parameter in one call: 0.5 ms against 1.9 ms per step on CPU (measured)
    fused = True if device.type in ("cpu", "cuda") else None
    optimizer = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    history = History()
    epochs, warmup_epochs = _budget(cfg, n_steps=max(1, (n_epoch // batch_size) // world))
    history.epoch_budget, history.steps_per_epoch = epochs, max(1, (n_epoch // batch_size) // world)
    best_score, best_state, best_smoothed, since_best, smoothed = -np.inf, None, -np.inf, 0, None
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress_bar, leave=False, position=bar_position)
    module.generator = generator
    try:
        for epoch in bar:
            started = time.perf_counter()
            if cfg.coreset is not None and epoch % max(1, cfg.coreset_every) == 0:
                subset, subset_weight = _coreset(module, X1, X2, cfg, rng, device, sample_weight, first=epoch == 0)
                n = subset.shape[0]
            module.train()
            order = subset[rng.permutation(n)]
            position = {int(c): i for i, c in enumerate(subset)} if subset_weight is not sample_weight else None
            losses = []
            starts = range(0, n - batch_size + 1, batch_size)
            if world > 1:  # the same number of steps in every process, or the gradient all-reduce would wait forever
                starts = starts[rank : len(starts) - len(starts) % world : world]
            for start in starts:
                if stop is not None and stop.is_set():
                    raise TrainingCancelledError(f"Training stopped from outside at epoch {epoch}.")
                idx = np.sort(order[start : start + batch_size])
                x1, x2 = _batch(X1, idx, device), _batch(X2, idx, device)
                if cfg.noise:
                    x1 = x1 + cfg.noise * torch.randn(x1.shape, generator=generator, device=device)
                    x2 = x2 + cfg.noise * torch.randn(x2.shape, generator=generator, device=device)
                if position is not None:
                    w = subset_weight[[position[int(c)] for c in idx]]
                else:
                    w = None if sample_weight is None else sample_weight[idx]
                weight = None if w is None else torch.as_tensor(w, dtype=torch.float32, device=device)
                loss = step_loss(x1, x2, epoch < warmup_epochs, weight)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"Training diverged: the loss became {loss.item()} at epoch {epoch}. "
                        "Lower `lr`, check the inputs for extreme values, or standardise them."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
                optimizer.step()
                losses.append(loss.item())
            history.epoch.append(epoch)
            history.train_loss.append(float(np.mean(losses)))
            history.seconds.append(time.perf_counter() - started)  # minibatch steps (and coreset selection)
            if validation is not None:
                started = time.perf_counter()
                score = validation_score(module, *validation, device, cfg=cfg)
                smoothed = score if smoothed is None else VAL_SMOOTHING * smoothed + (1 - VAL_SMOOTHING) * score
                history.val_score.append(score)
                history.val_smoothed.append(smoothed)
                history.val_seconds.append(time.perf_counter() - started)
                bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val=f"{score:.3f}")
                # early stopping only counts once the warm-up is over
                if epoch >= warmup_epochs and score > best_score:
                    best_score, best_state = score, copy.deepcopy(module.state_dict())
                    history.best_epoch = epoch
                if epoch >= warmup_epochs and smoothed > best_smoothed:
                    best_smoothed, since_best = smoothed, 0
                elif epoch >= warmup_epochs:
                    since_best += 1
                    if since_best >= cfg.patience:
                        logger.info("early stopping at epoch %d (best %d)", epoch, history.best_epoch)
                        break
            else:
                bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}")
                history.best_epoch = epoch
    finally:
        module.generator = None
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    elif history.epoch:  # no epoch after the warm-up (or no validation): the last weights are kept
        history.best_epoch = history.epoch[-1]
    module.eval()
    return history


def _budget(cfg: TrainConfig, *, n_steps: int) -> tuple[int, int]:
    """Epochs to run and warm-up epochs, given ``n_steps`` optimizer steps per epoch.

    ``cfg.max_steps`` caps the total number of steps, so a larger reference takes more steps per epoch but not
    more steps overall: the epoch budget is ``min(epochs, ceil(max_steps / n_steps))``. When the cap binds, the
    warm-up shrinks with it (to a quarter of the budget at most) so that early stopping and the hardest-negative
    triplet still get their share of the epochs.
    """
    epochs = cfg.epochs
    if cfg.max_steps is not None:
        epochs = min(epochs, max(1, -(-cfg.max_steps // n_steps)))
    warmup = cfg.warmup_epochs if epochs == cfg.epochs else min(cfg.warmup_epochs, epochs // 4)
    return epochs, warmup


def _coreset(module, X1, X2, cfg: TrainConfig, rng, device, sample_weight, *, first: bool):
    """(Re-)select the training subset and its weights (user ``sample_weight`` multiplies the coreset weights).

    Selection space (CRAIG): before training (``first``), the standardised inputs of both modalities side by side;
    afterwards, each pair's gradient proxy (:func:`_gradient_proxies`), so that pairs whose gradients are alike
    are represented by one of them and pairs the model already matches collapse onto a few representatives.
    """
    n = X1.shape[0]
    if cfg.coreset == "random":
        idx, weight = select_coreset_indices(
            np.empty((n, 0)), fraction=cfg.coreset_fraction, method="random", random_state=rng
        )
    else:
        z1, z2 = [], []
        module.eval()
        with torch.no_grad():
            for start in range(0, n, 4096):
                idx = np.arange(start, min(start + 4096, n))
                x1, x2 = _batch(X1, idx, device), _batch(X2, idx, device)
                if first:
                    z1.append((x1 - module.shift1) / module.scale1)
                    z2.append((x2 - module.shift2) / module.scale2)
                else:
                    z1.append(module.embed(module.tokens(x1, 1), 1))
                    z2.append(module.embed(module.tokens(x2, 2), 2))
        if first:
            feats = torch.cat([torch.cat(z1), torch.cat(z2)], dim=1).cpu().numpy()
        else:
            feats = _gradient_proxies(torch.cat(z1), torch.cat(z2), cfg, rng=rng)
        idx, weight = select_coreset_indices(feats, fraction=cfg.coreset_fraction, method="craig", random_state=rng)
    if sample_weight is not None:
        weight = weight * sample_weight[idx]
    logger.info("coreset (%s): %d of %d cells", cfg.coreset, len(idx), n)
    return idx, weight.astype(np.float32)


def _gradient_proxies(emb1: torch.Tensor, emb2: torch.Tensor, cfg: TrainConfig, *, rng) -> np.ndarray:
    """Per-pair gradient of the training loss with respect to the pair's own joint-space embeddings ``(i0, c0)``.

    CRAIG's last-layer proxy: the pairs are put in random minibatches of ``cfg.batch_size`` (the negatives they
    meet in training), the loss is taken on the ``i0, c0`` part of the similarity only (no cross term), and row
    ``i`` is ``[dL/di0_i, dL/dc0_i]`` times the batch size. A pair the model already matches with confidence has
    a gradient near zero.
    """
    n = emb1.shape[0]
    out = np.empty((n, emb1.shape[1] + emb2.shape[1]), dtype=np.float32)
    order = rng.permutation(n)
    batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:  # a lone pair has no negatives: give it a neighbour's batch
        batches = [*batches[:-2], np.concatenate(batches[-2:])]
    for idx in batches:
        z1 = emb1[idx].detach().clone().requires_grad_(True)
        z2 = emb2[idx].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            if cfg.metric == "cosine":
                sim = z1 @ z2.T
            else:
                sim = -pairwise_distance(z1, z2, metric=cfg.metric, temperature=cfg.hist_temperature)
            g1, g2 = torch.autograd.grad(_loss(sim, cfg, warm=False, weight=None) * len(idx), [z1, z2])
        out[idx] = torch.cat([g1, g2], dim=1).cpu().numpy()
    return out
