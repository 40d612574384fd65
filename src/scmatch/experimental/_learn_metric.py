"""learn_metric (experimental): deep metric learning within one modality from cell-type labels (cell similarity)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._keys import Key
from .._utils import _check_finite, _dense, _device, _get_matrix, _get_modality, _rng, logger
from ..model.nn._losses import distance_contrastive, distance_triplet
from ..model.nn._metric import cdf, pairwise_distance
from ._label_coreset import LABEL_CORESETS, stratified_coreset

#: loss -> (distance of the learned space, loss function)
METRIC_LOSSES = {
    "etriplet": ("euclidean", distance_triplet),
    "econtrastive": ("euclidean", distance_contrastive),
    "wtriplet": ("wasserstein", distance_triplet),
    "wcontrastive": ("wasserstein", distance_contrastive),
}


class _Encoder(nn.Module):
    def __init__(self, n_in: int, d_embed: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.head = nn.Linear(hidden, d_embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.net(x)), dim=-1)


def learn_metric(
    data: AnnData | MuData,
    *,
    labels_key: str,
    mod: str | None = None,
    use_rep: str = "X_pca",
    loss: str = "etriplet",
    train_key: str | None = None,
    d_embed: int = 32,
    hidden: int = 128,
    dropout: float = 0.1,
    margin: float = 0.2,
    histogram_temperature: float = 0.1,
    epochs: int = 50,
    batch_size: int = 128,
    lr: float = 1e-3,
    coreset: str | None = None,
    coreset_fraction: float = 0.1,
    coreset_every: int = 5,
    device: str = "auto",
    random_state: int | None = 0,
    progress_bar: bool = True,
    key_added: str = "metric",
    copy: bool = False,
) -> AnnData | MuData | None:
    """Learn an embedding in which cells of the same type are close, and write it for scanpy to use.

    An MLP maps ``.obsm[use_rep]`` to unit vectors ``z``, trained on minibatches with a distance loss whose
    positives are cells of the same ``labels_key`` value and negatives cells of other values: ``"etriplet"`` /
    ``"econtrastive"`` on the Euclidean distance, ``"wtriplet"`` / ``"wcontrastive"`` on the Wasserstein-1
    distance between the histograms ``softmax(z / histogram_temperature)`` on the ordered dimensions (see
    :mod:`scmatch.model.nn._metric`; losses in :mod:`scmatch.model.nn._losses`).

    The written embedding is chosen so that an off-the-shelf metric recovers the learned distance: ``z`` itself
    for Euclidean losses (``metric="euclidean"``), the scaled cumulative histograms for Wasserstein losses, whose
    Manhattan distance *is* W1 (``metric="manhattan"``). Use it with
    ``sc.pp.neighbors(adata, use_rep="X_metric", metric=adata.uns["metric"]["neighbors_metric"])``, then UMAP or
    Leiden as usual.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` naming the modality.
    labels_key
        ``.obs`` column with the cell-type labels to learn from (missing values: cell not used for training).
    mod
        Modality of a MuData.
    use_rep
        ``.obsm`` key of the input representation.
    loss
        ``"etriplet"``, ``"econtrastive"``, ``"wtriplet"`` or ``"wcontrastive"``.
    train_key
        Optional boolean ``.obs`` column: only cells marked True are used for training (e.g. to hold out cells
        for evaluation); every cell is embedded.
    d_embed, hidden, dropout
        Embedding size, hidden width and dropout of the MLP.
    margin
        Margin ``gamma`` of the losses.
    histogram_temperature
        Softmax temperature of the histograms (Wasserstein losses).
    epochs, batch_size, lr
        Optimisation: epochs, minibatch size, AdamW learning rate.
    coreset
        Train each epoch on a weighted subset of the training cells instead of all of them:

        - ``"wasserstein"``: per label, greedy facility location on the Wasserstein-1 distance between the
          cells' current embedding histograms;
        - ``"craig"``: the same on the distance between per-cell gradients of the loss (CRAIG);
        - ``"random"``: a uniform random subset with equal weights (a control).

        The two facility-location methods are stratified by label (every label keeps at least one cell) and
        weight each chosen cell by the number of cells it represents; see :mod:`scmatch.experimental._label_coreset`.
        ``None`` (default) trains on every cell. On 25,000 simulated reference cells of 24 types
        (``benchmarks/README.md``, Label coreset) a 10% Wasserstein coreset kept 97% of the full-data
        precision@10 at an eighth of the time, but one or two epochs over every cell did as well in the same
        time: to fit faster, lower ``epochs`` first.
    coreset_fraction
        Share of the training cells in the subset, in (0, 1].
    coreset_every
        Re-select the subset every this many epochs (1 re-draws it every epoch).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    random_state
        Seed of initialisation and minibatches.
    progress_bar
        Show a tqdm progress bar over the epochs, with the current loss.
    key_added
        Prefix of the written keys.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    ``None``, or a copy of ``data`` if ``copy=True``. Written fields (in the modality's AnnData):

    - ``.obsm[f"X_{key_added}"]``: the embedding (cells x ``d_embed``; ``d_embed - 1`` for Wasserstein losses).
    - ``.uns[key_added]``: ``params``, ``neighbors_metric`` (``"euclidean"`` or ``"manhattan"``),
      ``train_loss`` per epoch, ``fit_seconds``, ``n_steps`` (optimizer steps) and, with a coreset,
      ``coreset_seconds`` (time spent selecting) and ``coreset_size``.

    Examples
    --------
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> import scmatch as scm
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, 300)
    >>> adata = ad.AnnData(obs=pd.DataFrame({"ct": labels.astype(str)}, index=[f"c{i}" for i in range(300)]))
    >>> adata.obsm["X_pca"] = rng.normal(size=(300, 10)) + labels[:, None]
    >>> scm.experimental.learn_metric(adata, labels_key="ct", epochs=3, progress_bar=False)
    >>> adata.obsm["X_metric"].shape
    (300, 32)
    """
    adata = _get_modality(data, mod)
    _check_settings(adata, loss=loss, labels_key=labels_key, d_embed=d_embed, epochs=epochs, batch_size=batch_size)
    _check_coreset(coreset, coreset_fraction, coreset_every, histogram_temperature)
    X, codes, use = _training_cells(adata, use_rep=use_rep, labels_key=labels_key, train_key=train_key)
    rng, dev = _rng(random_state), _device(device)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        enc = _Encoder(X.shape[1], d_embed, hidden, dropout).to(dev)
        fit = _fit(
            enc, X, codes, use, loss=loss, margin=margin, temperature=histogram_temperature, epochs=epochs,
            batch_size=batch_size, lr=lr, coreset=(coreset, coreset_fraction, coreset_every), rng=rng, dev=dev,
            progress_bar=progress_bar,
        )  # fmt: skip
    logger.info("learn_metric: %s, final loss %.4f", loss, fit["train_loss"][-1])
    params = {
        "labels_key": labels_key, "use_rep": use_rep, "loss": loss, "train_key": train_key, "d_embed": d_embed,
        "margin": margin, "histogram_temperature": histogram_temperature, "epochs": epochs, "batch_size": batch_size,
        "coreset": coreset, "coreset_fraction": coreset_fraction if coreset is not None else None,
        "coreset_every": coreset_every if coreset is not None else None, "random_state": random_state,
    }  # fmt: skip
    target = data.copy() if copy else data
    out = _get_modality(target, mod)
    out.obsm[Key.embedding(key_added)] = fit.pop("embedding")
    neighbors_metric = "manhattan" if METRIC_LOSSES[loss][0] == "wasserstein" else "euclidean"
    out.uns[key_added] = {"params": params, "neighbors_metric": neighbors_metric, **fit}
    return target if copy else None


def _check_settings(adata: AnnData, *, loss, labels_key, d_embed, epochs, batch_size) -> None:
    if loss not in METRIC_LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; use one of {tuple(METRIC_LOSSES)}.")
    if labels_key not in adata.obs:
        raise ValueError(f"`labels_key={labels_key!r}` is not a column of .obs; pass the column with cell types.")
    if d_embed < 2 or epochs < 1 or batch_size < 2:
        raise ValueError("Need `d_embed` >= 2, `epochs` >= 1, `batch_size` >= 2 and `histogram_temperature` > 0.")


def _check_coreset(coreset, coreset_fraction, coreset_every, histogram_temperature) -> None:
    if histogram_temperature <= 0:
        raise ValueError("Need `d_embed` >= 2, `epochs` >= 1, `batch_size` >= 2 and `histogram_temperature` > 0.")
    if coreset is not None and coreset not in (*LABEL_CORESETS, "random"):
        raise ValueError(f"Unknown coreset {coreset!r}; use None, 'wasserstein', 'craig' or 'random'.")
    if not 0 < coreset_fraction <= 1 or coreset_every < 1:
        raise ValueError(
            f"Need 0 < `coreset_fraction` <= 1 and `coreset_every` >= 1, got {coreset_fraction} and {coreset_every}."
        )


def _training_cells(adata: AnnData, *, use_rep, labels_key, train_key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The representation, the label codes and the mask of the labelled training cells."""
    X = np.asarray(_dense(_get_matrix(adata, obsm=use_rep)), dtype=np.float32)
    _check_finite(X, what=f".obsm[{use_rep!r}]")
    labels = pd.Series(adata.obs[labels_key])
    use = labels.notna().to_numpy()
    if train_key is not None:
        if train_key not in adata.obs or adata.obs[train_key].dtype != bool:
            raise ValueError(f"`train_key={train_key!r}` must name a boolean .obs column (True = train).")
        use &= adata.obs[train_key].to_numpy()
    codes = pd.Categorical(labels.astype(str)).codes
    if use.sum() < 2 or len(np.unique(codes[use])) < 2:
        raise ValueError("Need at least 2 labelled training cells of at least 2 different labels.")
    return X, codes, use


def _fit(enc, X, codes, use, *, loss, margin, temperature, epochs, batch_size, lr, coreset, rng, dev, progress_bar):
    """Train the encoder; returns the embedding of every cell and the record written to ``.uns``."""
    metric, loss_fn = METRIC_LOSSES[loss]
    method, fraction, every = coreset
    mean, scale = X[use].mean(0), float(np.sqrt(max(X[use].var(0).mean(), 1e-12)))
    Xs, y = torch.as_tensor((X - mean) / scale), torch.as_tensor(codes.astype(np.int64))
    train_idx = np.flatnonzero(use)
    history, n_steps, select_seconds, started = [], 0, 0.0, time.perf_counter()
    opt = torch.optim.AdamW(enc.parameters(), lr=lr, weight_decay=1e-4)
    max_bs = min(batch_size, len(train_idx))

    def embedding_loss(z, yy, weight=None):
        same = yy[:, None] == yy[None, :]
        eye = torch.eye(len(yy), dtype=torch.bool, device=dev)
        dist = pairwise_distance(z, z, metric=metric, temperature=temperature)
        return loss_fn(dist, margin=margin, positive=same & ~eye, negative=~same, weight=weight)

    pool, pool_weight = train_idx, None
    bar = tqdm(range(epochs), desc="learn_metric", unit="epoch", disable=not progress_bar, leave=False)
    for epoch in bar:
        if method is not None and epoch % every == 0:
            t0 = time.perf_counter()
            pool, pool_weight = _select(
                enc, Xs, y, train_idx, method, fraction=fraction, loss=embedding_loss, batch_size=max_bs,
                temperature=temperature, rng=rng, dev=dev,
            )  # fmt: skip
            select_seconds += time.perf_counter() - t0
        losses = _epoch(enc, opt, Xs, y, pool, pool_weight, embedding_loss, batch_size=max_bs, rng=rng, dev=dev)
        n_steps += len(losses)
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    bar.close()
    fit_seconds = time.perf_counter() - started
    enc.eval()
    with torch.no_grad():
        z = torch.cat([enc(Xs[s : s + 4096].to(dev)).cpu() for s in range(0, len(Xs), 4096)])
        emb = (cdf(z, temperature=temperature) if metric == "wasserstein" else z).numpy()
    record = {"embedding": emb.astype(np.float32), "train_loss": np.asarray(history), "fit_seconds": fit_seconds}
    record["n_steps"] = n_steps
    if method is not None:
        record.update(coreset_seconds=select_seconds, coreset_size=len(pool))
    return record


def _epoch(enc, opt, Xs, y, pool, pool_weight, embedding_loss, *, batch_size, rng, dev) -> list[float]:
    """One pass over ``pool`` in shuffled minibatches; returns each step's loss."""
    enc.train()
    bs = min(batch_size, len(pool))  # a subset smaller than a minibatch is one minibatch
    perm = rng.permutation(len(pool))
    losses = []
    for start in range(0, len(perm) - bs + 1, bs):
        batch = perm[start : start + bs]
        weight = None if pool_weight is None else pool_weight[batch].to(dev)
        value = embedding_loss(enc(Xs[pool[batch]].to(dev)), y[pool[batch]].to(dev), weight)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        losses.append(value.item())
    return losses


def _embed(enc, Xs, rows, dev) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([enc(Xs[rows[s : s + 4096]].to(dev)) for s in range(0, len(rows), 4096)])


def _select(enc, Xs, y, train_idx, method, *, fraction, loss, batch_size, temperature, rng, dev):
    """(Re-)select the training subset: its cell indices and per-cell weights (a tensor of mean 1).

    ``"wasserstein"`` selects on the cumulative histograms of the current embeddings (Manhattan = W1);
    ``"craig"`` on each cell's gradient of the loss with respect to its embedding, taken in shuffled minibatches
    of the training size (the network is not differentiated, so this costs a forward pass and the loss).
    """
    n = len(train_idx)
    if method == "random":
        idx = np.sort(rng.choice(train_idx, size=max(2, round(fraction * n)), replace=False))
        return idx, torch.ones(len(idx))
    enc.eval()
    z = _embed(enc, Xs, train_idx, dev)
    if method == "wasserstein":
        feats = cdf(z, temperature=temperature).cpu().numpy()
    else:
        feats = np.zeros(tuple(z.shape), dtype=np.float32)
        labels = y[train_idx].to(dev)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            if len(rows) < 2:
                continue
            zb = z[rows].detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(zb, labels[rows]) * len(rows), zb)
            feats[rows] = grad.cpu().numpy()
    local, weight = stratified_coreset(feats, y[train_idx].numpy(), fraction=fraction, method=method, rng=rng)
    return train_idx[local], torch.as_tensor(weight / weight.mean(), dtype=torch.float32)
